"""The model registry: every fact about a supported architecture, in one place.

Importable without Keras (Snakemake reads it at parse time): the Keras application is named by its
attribute of ``keras.applications``, and ``cnn_study.models`` looks it up.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class ImagenetWeights:
    """Keras' published ImageNet "notop" weight file, exactly as the installed Keras names and checks it
    (``keras/src/applications/*.py``), so a file fetched here is the file Keras would cache."""

    folder: str  # sub-folder of the keras-applications root
    file_name: str
    # Keras' file_hash (md5: 32 hex characters); None where Keras downloads the file unchecked.
    file_hash: str | None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    display_name: str
    default_size: int
    min_size: int
    # Keras' preprocess_input mode for the ImageNet weights: "caffe" (BGR, mean-centred), "tf" ([-1, 1]) or "torch".
    preprocessing: str
    keras_application: str | None  # attribute of keras.applications; None: built by cnn_study.models
    imagenet_weights: ImagenetWeights | None  # None: random initial weights only

    @property
    def has_imagenet_weights(self) -> bool:
        return self.imagenet_weights is not None

    @property
    def has_verified_weights(self) -> bool:
        """ImageNet weights with a published hash: the only ones the workflow fetches."""
        return self.imagenet_weights is not None and self.imagenet_weights.file_hash is not None


MODEL_SPECS = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="resnet50",
            display_name="ResNet50",
            default_size=224,
            min_size=32,
            preprocessing="caffe",
            keras_application="ResNet50",
            # resnet.py: WEIGHTS_HASHES["resnet50"][1]
            imagenet_weights=ImagenetWeights(
                "resnet", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", "4d473c1dd8becc155b73f8504c6f6626"
            ),
        ),
        ModelSpec(
            name="inceptionv3",
            display_name="InceptionV3",
            default_size=299,
            min_size=75,
            preprocessing="tf",
            keras_application="InceptionV3",
            # inception_v3.py: file_hash of the notop get_file call
            imagenet_weights=ImagenetWeights(
                "inception_v3",
                "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
                "bcbd6486424b2319ff4ef7d526e38f63",
            ),
        ),
        ModelSpec(
            name="vgg16",
            display_name="VGG16",
            default_size=224,
            min_size=32,
            preprocessing="caffe",
            keras_application="VGG16",
            # vgg16.py: file_hash of the notop get_file call
            imagenet_weights=ImagenetWeights(
                "vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "6d6bbae143d832006294945121d1f1fc"
            ),
        ),
        ModelSpec(
            name="alexnet",
            display_name="AlexNet",
            default_size=227,
            # Valid convolutions and three 3x3/2 poolings need at least 67 px to leave a 1x1 map.
            min_size=67,
            preprocessing="tf",
            keras_application=None,  # not a Keras application: cnn_study.models builds it
            imagenet_weights=None,
        ),
        ModelSpec(
            name="mobilenetv2",
            display_name="MobileNetV2",
            default_size=224,
            min_size=32,
            preprocessing="tf",
            keras_application="MobileNetV2",
            # mobilenet_v2.py (alpha=1.0, rows=224): Keras passes no file_hash, so the config check
            # refuses weights: imagenet for it (the download could not be verified).
            imagenet_weights=ImagenetWeights(
                "mobilenet_v2", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5", None
            ),
        ),
    )
}
