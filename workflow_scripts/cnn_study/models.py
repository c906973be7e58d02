"""Model factory: an ImageNet backbone (or AlexNet), in-model augmentation and preprocessing, and the
paper's head (global average pooling, batch normalization, dropout, dense softmax). Keras 3 API only,
so every backend trains it."""

from __future__ import annotations

import types
from pathlib import Path

import keras
import numpy as np
from keras import layers

from cnn_study.errors import one_line
from cnn_study.model_specs import MODEL_SPECS

APPLICATIONS = {
    name: getattr(keras.applications, spec.keras_application)
    for name, spec in MODEL_SPECS.items()
    if spec.keras_application is not None
}

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN_RGB, TORCH_STD_RGB = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def divide_by(value: float, name: str) -> layers.Normalization:
    return layers.Normalization(mean=0.0, variance=value**2, name=name)


def preprocessing_layer(mode: str, name: str = "preprocessing") -> keras.Sequential:
    """Keras' preprocess_input as built-in layers, so the saved model takes raw 0-255 RGB images and
    loads in any Keras without this project's code. Each step is the same float32 operation as in
    preprocess_input, in the same order, so the outputs are identical. caffe: RGB -> BGR (a fixed channel permutation),
    minus the ImageNet mean; tf: [-1, 1]; torch: ImageNet mean and std on [0, 1]."""
    if mode == "caffe":
        to_bgr = layers.Dense(3, use_bias=False, kernel_initializer="zeros", trainable=False, name="rgb_to_bgr")
        to_bgr.build((3,))
        to_bgr.kernel.assign(np.eye(3, dtype="float32")[::-1])
        stack = [to_bgr, layers.Normalization(mean=CAFFE_MEAN_BGR, variance=(1.0, 1.0, 1.0), name="mean")]
    elif mode == "tf":
        stack = [divide_by(127.5, "scale"), layers.Normalization(mean=1.0, variance=1.0, name="shift")]
    elif mode == "torch":
        # Squares of the float32 std, so that the layer's sqrt gives back exactly the std Keras divides by.
        variance = [float(np.float32(s)) ** 2 for s in TORCH_STD_RGB]
        stack = [
            divide_by(255.0, "scale"),
            layers.Normalization(mean=TORCH_MEAN_RGB, variance=variance, name="mean_std"),
        ]
    else:
        raise ValueError(f"unknown preprocessing mode {mode!r}; expected caffe, tf or torch")
    return keras.Sequential(stack, name=name)


def alexnet_base(input_shape: tuple[int, int, int]) -> keras.Model:
    """AlexNet's five convolutions (Krizhevsky et al., 2012), batch normalization in place of LRN.
    No Keras application exists, so it always starts from random weights."""
    inputs = keras.Input(input_shape)
    x = inputs
    for filters, kernel, strides, pool in (
        (96, 11, 4, True),
        (256, 5, 1, True),
        (384, 3, 1, False),
        (384, 3, 1, False),
        (256, 3, 1, True),
    ):
        padding = "valid" if strides > 1 else "same"
        x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, activation="relu")(x)
        if pool:
            x = layers.BatchNormalization()(x)
            x = layers.MaxPooling2D(3, strides=2)(x)
    return keras.Model(inputs, x, name="alexnet")


def build_backbone(model: str, size: int, weights_file: str | None) -> keras.Model:
    """The convolutional base, from random weights (weights_file None) or a local weight file.

    A weight file is either Keras' published "notop" .h5 (the legacy HDF5 layout: root attribute
    ``layer_names``, one group per layer with ``weight_names``; matched layer by layer in order, as
    Keras' own ``weights="imagenet"`` does with the same file) or a Keras 3 ``.weights.h5`` of the same
    base. Either is loaded by ``Model.load_weights``. The workflow fetches ImageNet files beforehand:
    a training job never downloads."""
    if model not in MODEL_SPECS:
        raise ValueError(f"unknown model {model!r}; expected one of {', '.join(MODEL_SPECS)}")
    spec = MODEL_SPECS[model]
    if size < spec.min_size:
        raise ValueError(f"{spec.display_name} needs an input size of at least {spec.min_size} px, got {size}")
    shape = (size, size, 3)
    if weights_file is not None and not Path(weights_file).is_file():
        raise FileNotFoundError(f"{spec.display_name} weight file {weights_file} does not exist")
    if model == "alexnet":
        base = alexnet_base(shape)
    else:
        base = APPLICATIONS[model](include_top=False, weights=None, input_shape=shape)
    if weights_file is not None:
        try:
            base.load_weights(str(weights_file))
        except ValueError as error:
            raise ValueError(
                f"{spec.display_name} weight file {weights_file} does not fit the model: {one_line(error)}"
            ) from None
    return base


def augmentation_layers(augmentation: dict, seed: int) -> list[layers.Layer]:
    if not augmentation["enabled"]:
        return []
    stack = [layers.RandomFlip(augmentation["flip"], seed=seed)]
    if augmentation["rotation"]:
        stack.append(layers.RandomRotation(augmentation["rotation"], seed=seed + 1))
    if augmentation["zoom"]:
        stack.append(layers.RandomZoom(augmentation["zoom"], seed=seed + 2))
    return stack


def build_model(settings: dict, weights_file: str | None = None) -> tuple[keras.Model, keras.Model]:
    """The full classifier and its backbone (for freezing). Inputs are uint8-range RGB images."""
    spec = MODEL_SPECS[settings["model"]]
    size, seed = settings["input_size"], settings["seed"]
    if settings["weights"] != "none" and weights_file is None:
        raise ValueError(
            f"{spec.display_name}: weights = {settings['weights']} but no weight file was given "
            "(the workflow fetches it first; a training job never downloads)"
        )
    inputs = keras.Input((size, size, 3), name="image")
    x = inputs
    for layer in augmentation_layers(settings["augmentation"], seed):
        x = layer(x)
    x = preprocessing_layer(spec.preprocessing)(x)
    base = build_backbone(settings["model"], size, weights_file)
    # The applications build their batch normalization with Keras' default momentum (0.99).
    momentum = settings["batch_norm_momentum"]
    for layer in base.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = momentum
    x = base(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if settings["head"]["batch_norm"]:
        x = layers.BatchNormalization(momentum=momentum, name="head_bn")(x)
    x = layers.Dropout(settings["head"]["dropout"], seed=seed + 3, name="head_dropout")(x)
    # float32 softmax also under a mixed precision policy (numerically safe probabilities and loss)
    outputs = layers.Dense(len(settings["classes"]), activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"{settings['model']}_classifier"), base


def fuse_batch_norm(model: keras.Model) -> int:
    """On TensorFlow, let every batch-normalization layer of `model` (nested ones included) take its training
    steps on image tensors with TensorFlow's fused kernel (FusedBatchNormV3: oneDNN on a CPU, cuDNN on a GPU)
    instead of Keras' chain of means, squares and broadcasts, forward and backward: about a fifth less CPU
    time per step for ResNet50 on a CPU (docs/benchmarks.md). The same normalization and moving averages, to float32
    rounding. Each layer stays a Keras BatchNormalization (the saved model is plain Keras); inference, masks,
    renorm, synchronized layers and other ranks keep Keras' own computation, as do the other backends (XLA
    fuses JAX's). Returns the number of layers given the fused step."""
    if keras.backend.backend() != "tensorflow":
        return 0
    norms = [
        layer
        for layer in nested_layers(model)
        if isinstance(layer, layers.BatchNormalization) and not layer.renorm and not layer.synchronized
    ]
    for norm in norms:
        norm.call = types.MethodType(_fused_training_call(norm.call), norm)
    return len(norms)


def _fused_training_call(keras_call):
    import tensorflow as tf

    def call(self, inputs, training=None, mask=None):
        channel_last = self.axis in (-1, len(inputs.shape) - 1)
        if not (training and self.trainable) or mask is not None or len(inputs.shape) != 4 or not channel_last:
            return keras_call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, "float32")  # as Keras does: statistics in float32 under a mixed precision policy
        channels = x.shape[-1]
        scale = tf.cast(self.gamma, "float32") if self.scale else tf.ones([channels])
        offset = tf.cast(self.beta, "float32") if self.center else tf.zeros([channels])
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x, scale, offset, epsilon=self.epsilon, data_format="NHWC", is_training=True
        )
        # The kernel returns the variance with Bessel's correction; Keras averages the plain one.
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), "float32")
        variance = variance * (count - 1.0) / tf.maximum(count, 1.0)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(y, self.compute_dtype)

    return call


def set_phase_trainability(base: keras.Model, phase: str, unfreeze_top_layers, batch_norm: str = "frozen") -> None:
    """frozen: base frozen. fine_tune: the whole base or its top N layers train, batch normalization
    stays frozen unless batch_norm is "trainable" (a frozen BN layer runs in inference mode in Keras 3).
    full: everything trains."""
    if phase == "full":
        base.trainable = True
        for layer in base.layers:
            layer.trainable = True
        return
    if phase == "frozen":
        base.trainable = False
        return
    base.trainable = True
    first = 0 if unfreeze_top_layers == "all" else max(0, len(base.layers) - int(unfreeze_top_layers))
    for index, layer in enumerate(base.layers):
        frozen_norm = batch_norm == "frozen" and isinstance(layer, layers.BatchNormalization)
        layer.trainable = index >= first and not frozen_norm


AUGMENTATION_LAYERS = (layers.RandomFlip, layers.RandomRotation, layers.RandomZoom)


def nested_layers(layer: layers.Layer) -> list[layers.Layer]:
    """The layer and, for a model, every layer inside it."""
    return [layer, *(inner for child in getattr(layer, "layers", []) for inner in nested_layers(child))]


def recompute_batch_norm_statistics(model: keras.Model, images: np.ndarray, batch_size: int) -> None:
    """Set the moving statistics of every batch-normalization layer that trains in this phase to their mean
    over the training images, batch by batch, with the model's current weights (precise batch norm).

    Keras' moving averages describe the weights of the last steps before them: where one step moves a
    layer's outputs by more than their spread (random weights fine-tuned by an adaptive optimizer), inference
    then sees shifted features and scores a whole validation set as one class. The images pass unaugmented,
    as in validation and prediction; the layers run in training mode (the trainable normalization layers
    normalize by the batch and update their statistics, with a momentum that makes them the running mean of the
    batches' statistics). Works on build_model's classifier: a chain of layers from the input to the head."""
    chain = [layer for layer in model.layers[1:] if not isinstance(layer, AUGMENTATION_LAYERS)]
    holders = [
        [n for n in nested_layers(layer) if isinstance(n, layers.BatchNormalization) and n.trainable] for layer in chain
    ]
    norms = [norm for held in holders for norm in held]
    if not norms:
        return
    last = max(index for index, held in enumerate(holders) if held)  # the forward pass stops there
    momenta = [norm.momentum for norm in norms]
    try:
        for count, start in enumerate(range(0, len(images), batch_size), 1):
            for norm in norms:
                norm.momentum = (count - 1) / count  # moving = mean of the batches' statistics so far
            x = np.asarray(images[start : start + batch_size], dtype="float32")
            for layer in chain[: last + 1]:
                x = layer(x, training=True)
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
