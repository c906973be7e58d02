"""Facts about each supported architecture, importable without Keras (Snakemake reads them at parse time)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    name: str
    display_name: str
    default_size: int
    min_size: int
    has_imagenet_weights: bool
    # Keras' preprocess_input mode for the ImageNet weights: "caffe" (BGR, mean-centred), "tf" ([-1, 1]) or "torch".
    preprocessing: str


MODEL_SPECS = {
    spec.name: spec
    for spec in (
        ModelSpec("resnet50", "ResNet50", 224, 32, True, "caffe"),
        ModelSpec("inceptionv3", "InceptionV3", 299, 75, True, "tf"),
        ModelSpec("vgg16", "VGG16", 224, 32, True, "caffe"),
        # Valid convolutions and three 3x3/2 poolings need at least 67 px to leave a 1x1 map.
        ModelSpec("alexnet", "AlexNet", 227, 67, False, "tf"),
        ModelSpec("mobilenetv2", "MobileNetV2", 224, 32, True, "tf"),
    )
}
