"""cnn_study.models: every architecture at its minimum size, the head, preprocessing, augmentation,
trainability per phase and weight-file loading (Keras' published notop layout and Keras 3 files)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cnn_study.model_specs import MODEL_SPECS  # noqa: E402
from cnn_study.models import (  # noqa: E402
    APPLICATIONS,
    AUGMENTATION_LAYERS,
    build_backbone,
    build_model,
    fuse_batch_norm,
    nested_layers,
    preprocessing_layer,
    recompute_batch_norm_statistics,
    set_phase_trainability,
)
from conftest import run_settings_for  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def make_settings(model="alexnet", size=None, weights="none", classes=None, **training):
    """A model's settings as the train rule builds them (conftest.run_settings_for); seed 0."""
    return run_settings_for(model, size, weights=weights, classes=classes, **training)


def images(count, size, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3)).astype("float32")


def as_numpy(variables):
    return [keras.ops.convert_to_numpy(v) for v in variables]


def write_published_notop(model: keras.Model, path) -> None:
    """Write a base's weights in the layout of Keras' published *_notop.h5 files (Keras 2's
    save_weights): root attributes layer_names/backend/keras_version, one group per layer with a
    weight_names attribute and one dataset per weight, named '<layer>/<weight>:0'."""
    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        handle.attrs["backend"] = b"tensorflow"
        handle.attrs["keras_version"] = b"2.2.4"
        for layer in model.layers:
            group = handle.create_group(layer.name)
            weights = layer.trainable_weights + layer.non_trainable_weights
            names = [f"{layer.name}/{weight.name}:0" for weight in weights]
            group.attrs["weight_names"] = [name.encode() for name in names]
            for name, value in zip(names, as_numpy(weights), strict=True):
                group.create_dataset(name, data=value)


# --- architectures --------------------------------------------------------------------------


def test_default_and_minimum_sizes():
    assert {name: spec.default_size for name, spec in MODEL_SPECS.items()} == {
        "resnet50": 224,
        "inceptionv3": 299,
        "vgg16": 224,
        "alexnet": 227,
        "mobilenetv2": 224,
    }
    assert set(APPLICATIONS) | {"alexnet"} == set(MODEL_SPECS)


# The Keras application behind each model, and the module whose preprocess_input its ImageNet weights expect.
KERAS_APPLICATIONS = {
    "resnet50": (keras.applications.ResNet50, keras.applications.resnet50),
    "inceptionv3": (keras.applications.InceptionV3, keras.applications.inception_v3),
    "vgg16": (keras.applications.VGG16, keras.applications.vgg16),
    "mobilenetv2": (keras.applications.MobileNetV2, keras.applications.mobilenet_v2),
}


@pytest.mark.parametrize("model", sorted(KERAS_APPLICATIONS))
def test_registry_names_the_keras_application_and_its_preprocessing(model):
    application, module = KERAS_APPLICATIONS[model]
    assert APPLICATIONS[model] is application
    x = images(2, 8)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(preprocessing_layer(MODEL_SPECS[model].preprocessing)(x)),
        module.preprocess_input(x.copy()),
        rtol=1e-6,
        atol=1e-4,
    )


@pytest.mark.parametrize("model", sorted(MODEL_SPECS))
def test_model_builds_at_minimum_size_and_predicts(model):
    size = MODEL_SPECS[model].min_size
    classifier, base = build_model(make_settings(model, size, classes=["a", "b", "c"]))
    assert classifier.input_shape == (None, size, size, 3)
    probabilities = keras.ops.convert_to_numpy(classifier(images(2, size), training=False))
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert base.output_shape[1] >= 1 and base.output_shape[2] >= 1


@pytest.mark.parametrize("model", sorted(MODEL_SPECS))
def test_below_minimum_size_is_one_line_error(model):
    spec = MODEL_SPECS[model]
    with pytest.raises(ValueError) as error:
        build_backbone(model, spec.min_size - 1, None)
    assert str(error.value) == (
        f"{spec.display_name} needs an input size of at least {spec.min_size} px, got {spec.min_size - 1}"
    )


def test_alexnet_is_five_convolutions_with_classic_feature_map():
    base = build_backbone("alexnet", 227, None)
    convolutions = [layer for layer in base.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [(c.filters, c.kernel_size[0], c.strides[0]) for c in convolutions] == [
        (96, 11, 4),
        (256, 5, 1),
        (384, 3, 1),
        (384, 3, 1),
        (256, 3, 1),
    ]
    assert base.output_shape == (None, 6, 6, 256)  # AlexNet's 6x6x256 before the dense layers
    # Random init only: two builds with different seeds differ.
    keras.utils.set_random_seed(1)
    other = build_backbone("alexnet", 227, None)
    assert not np.array_equal(as_numpy(base.weights)[0], as_numpy(other.weights)[0])


def test_head_is_pool_bn_dropout_softmax():
    classifier, base = build_model(make_settings("alexnet", classes=["a", "b", "c", "d"], head={"dropout": 0.3}))
    head = classifier.layers[-4:]
    assert [type(layer) for layer in head] == [
        keras.layers.GlobalAveragePooling2D,
        keras.layers.BatchNormalization,
        keras.layers.Dropout,
        keras.layers.Dense,
    ]
    assert head[2].rate == 0.3
    assert head[3].units == 4 and head[3].activation is keras.activations.softmax
    assert classifier.get_layer("alexnet") is base
    without, _ = build_model(make_settings("alexnet", head={"batch_norm": False}))
    assert [type(layer) for layer in without.layers[-3:]] == [
        keras.layers.GlobalAveragePooling2D,
        keras.layers.Dropout,
        keras.layers.Dense,
    ]


def test_augmentation_layers_are_switchable_and_inactive_at_inference():
    classifier, _ = build_model(make_settings("alexnet"))
    random_layers = [layer for layer in classifier.layers if layer.name.startswith("random_")]
    assert [type(layer) for layer in random_layers] == [
        keras.layers.RandomFlip,
        keras.layers.RandomRotation,
        keras.layers.RandomZoom,
    ]
    x = images(2, 67)
    augmentation = keras.Sequential(random_layers)
    # Training transforms the images; inference passes them through untouched.
    assert not np.allclose(keras.ops.convert_to_numpy(augmentation(x, training=True)), x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(augmentation(x, training=False)), x)
    plain, _ = build_model(
        make_settings("alexnet", augmentation={"enabled": False, "flip": "horizontal", "rotation": 0.1, "zoom": 0.1})
    )
    assert not any(isinstance(layer, keras.layers.RandomFlip) for layer in plain.layers)
    # The same weights without the augmentation layers predict the same at inference.
    plain.set_weights(classifier.get_weights())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(plain(x, training=False)),
        keras.ops.convert_to_numpy(classifier(x, training=False)),
        rtol=1e-6,
    )
    no_zoom, _ = build_model(
        make_settings("alexnet", augmentation={"enabled": True, "flip": "vertical", "rotation": 0.0, "zoom": 0.0})
    )
    kinds = [type(layer) for layer in no_zoom.layers]
    assert keras.layers.RandomFlip in kinds and keras.layers.RandomZoom not in kinds
    assert no_zoom.get_layer(index=1).mode == "vertical"


@pytest.mark.parametrize(
    "mode, reference",
    [
        ("caffe", keras.applications.resnet50.preprocess_input),
        ("tf", keras.applications.inception_v3.preprocess_input),
    ],
)
def test_preprocessing_layer_matches_keras_preprocess_input(mode, reference):
    x = images(2, 8)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(preprocessing_layer(mode)(x)), reference(x.copy()), rtol=1e-6, atol=1e-4
    )


# --- trainability per phase -----------------------------------------------------------------


def batch_norms(base):
    return [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]


def test_trainability_per_phase_alexnet():
    classifier, base = build_model(make_settings("alexnet"))
    head_weights = len(classifier.get_layer("predictions").trainable_weights) + len(
        classifier.get_layer("head_bn").trainable_weights
    )

    set_phase_trainability(base, "frozen", "all")
    assert base.trainable_weights == [] and len(classifier.trainable_weights) == head_weights

    set_phase_trainability(base, "fine_tune", "all")
    convolutions = [layer for layer in base.layers if isinstance(layer, keras.layers.Conv2D)]
    assert all(layer.trainable for layer in convolutions)
    assert batch_norms(base) and not any(layer.trainable for layer in batch_norms(base))
    assert len(base.trainable_weights) == 2 * len(convolutions)

    set_phase_trainability(base, "full", "all")
    assert all(layer.trainable for layer in base.layers)

    set_phase_trainability(base, "fine_tune", 3)  # conv5, its BN (kept frozen) and the last pool
    trainable = [layer.name for layer in base.layers if layer.trainable and layer.weights]
    assert trainable == [convolutions[-1].name]

    set_phase_trainability(base, "frozen", "all")  # back to frozen after fine_tune
    assert base.trainable_weights == []


def test_fine_tune_top_layers_resnet50():
    _, base = build_model(make_settings("resnet50"))
    set_phase_trainability(base, "fine_tune", 10)
    top = base.layers[-10:]
    assert all(layer.trainable != isinstance(layer, keras.layers.BatchNormalization) for layer in top)
    assert not any(layer.trainable for layer in base.layers[:-10] if layer.weights)
    assert not any(layer.trainable for layer in batch_norms(base))


def test_frozen_batch_norm_runs_in_inference_mode():
    _, base = build_model(make_settings("alexnet"))
    x = images(4, 67)
    bn = batch_norms(base)[0]
    moving_mean = as_numpy([bn.moving_mean])[0]
    for phase in ("frozen", "fine_tune"):
        set_phase_trainability(base, phase, "all")
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(base(x, training=True)), keras.ops.convert_to_numpy(base(x, training=False))
        )
        np.testing.assert_array_equal(as_numpy([bn.moving_mean])[0], moving_mean)
    set_phase_trainability(base, "full", "all")
    assert not np.array_equal(
        keras.ops.convert_to_numpy(base(x, training=True)), keras.ops.convert_to_numpy(base(x, training=False))
    )


# --- weight files ---------------------------------------------------------------------------


@pytest.mark.parametrize("model", sorted(APPLICATIONS))
def test_published_notop_file_loads(model, tmp_path):
    """keras.applications.X(include_top=False, weights=<local .h5>) and build_backbone both load a file
    in the published notop layout, here written from a seeded random base at the minimum size."""
    size = MODEL_SPECS[model].min_size
    keras.utils.set_random_seed(1)
    source = APPLICATIONS[model](include_top=False, weights=None, input_shape=(size, size, 3))
    path = tmp_path / f"{model}_notop.h5"
    write_published_notop(source, path)
    expected = as_numpy(source.weights)

    keras.utils.set_random_seed(2)
    direct = APPLICATIONS[model](include_top=False, weights=str(path), input_shape=(size, size, 3))
    keras.utils.set_random_seed(3)
    ours = build_backbone(model, size, str(path))
    # Both start from other seeds than the source: equal weights mean the file was loaded.
    for loaded in (direct, ours):
        assert len(loaded.weights) == len(expected)
        assert all(np.array_equal(a, b) for a, b in zip(as_numpy(loaded.weights), expected, strict=True))


def test_weights_file_through_build_model_and_keras3_format(tmp_path):
    keras.utils.set_random_seed(1)
    source = build_backbone("alexnet", 67, None)
    path = tmp_path / "alexnet.weights.h5"
    source.save_weights(str(path))
    keras.utils.set_random_seed(2)
    _, base = build_model(make_settings("alexnet", weights=str(path)), str(path))
    assert all(np.array_equal(a, b) for a, b in zip(as_numpy(base.weights), as_numpy(source.weights), strict=True))


def test_weights_errors_are_one_line(tmp_path):
    vgg = APPLICATIONS["vgg16"](include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "vgg16_notop.h5"
    write_published_notop(vgg, path)
    with pytest.raises(ValueError) as error:
        build_backbone("mobilenetv2", 32, str(path))
    assert "\n" not in str(error.value)
    assert str(error.value).startswith(f"MobileNetV2 weight file {path} does not fit the model: ")
    missing = tmp_path / "missing.h5"
    with pytest.raises(FileNotFoundError) as error:
        build_backbone("vgg16", 32, str(missing))
    assert str(error.value) == f"VGG16 weight file {missing} does not exist"
    with pytest.raises(ValueError, match="no weight file"):
        build_model(make_settings("vgg16", weights="imagenet"), None)


def head_features(model, x):
    """The features that enter the head's batch normalization, in inference mode (no augmentation)."""
    return keras.Model(model.input, model.get_layer("pool").output).predict(x, verbose=0)


def test_recomputed_statistics_are_the_mean_of_the_training_batches_statistics_under_the_current_weights():
    """Frozen base (its normalization in inference mode): the head's statistics become the mean over the batches
    of each batch's mean and variance of the unaugmented images' features; the base's stay as they were."""
    model, base = build_model(make_settings("alexnet"))
    set_phase_trainability(base, "frozen", "all")
    x = images(12, 67)
    base_before = [as_numpy(n.weights) for n in nested_layers(base) if isinstance(n, keras.layers.BatchNormalization)]
    recompute_batch_norm_statistics(model, x, batch_size=4)
    features = head_features(model, x).reshape(3, 4, -1)
    head = model.get_layer("head_bn")
    np.testing.assert_allclose(as_numpy([head.moving_mean])[0], features.mean(axis=1).mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(as_numpy([head.moving_variance])[0], features.var(axis=1).mean(axis=0), rtol=1e-3)
    assert head.momentum == 0.99  # restored
    base_after = [as_numpy(n.weights) for n in nested_layers(base) if isinstance(n, keras.layers.BatchNormalization)]
    assert all(
        np.array_equal(a, b)
        for before, after in zip(base_before, base_after, strict=True)
        for a, b in zip(before, after, strict=True)
    )


def test_recomputed_statistics_make_inference_match_training_mode_on_the_same_batch():
    """Every layer training (the base's normalization too): statistics recomputed on one batch make inference
    on that batch compute what training mode computes on it, layer by layer up to the head."""
    model, base = build_model(make_settings("alexnet"))
    set_phase_trainability(base, "full", "all")
    x = images(6, 67, seed=1)
    recompute_batch_norm_statistics(model, x, batch_size=6)
    training_mode = x
    for layer in model.layers[1:]:
        if isinstance(layer, AUGMENTATION_LAYERS):
            continue
        training_mode = layer(training_mode, training=True)
        if layer.name == "head_bn":
            break
    inference = keras.Model(model.input, model.get_layer("head_bn").output).predict(x, verbose=0)
    np.testing.assert_allclose(inference, keras.ops.convert_to_numpy(training_mode), rtol=1e-3, atol=1e-3)


def batch_norm_pair(rng, **options):
    """A Keras BatchNormalization and one given the fused training step, with equal random weights (4-D inputs)."""
    keras_norm = keras.layers.BatchNormalization(momentum=0.9, **options)
    fused_norm = keras.layers.BatchNormalization(momentum=0.9, **options)
    model = keras.Sequential([keras.Input((4, 4, 8)), fused_norm])
    keras_norm.build((None, 4, 4, 8))
    for plain, fused in zip(keras_norm.weights, fused_norm.weights, strict=True):
        value = rng.uniform(0.5, 1.5, plain.shape).astype("float32")
        plain.assign(value)
        fused.assign(value)
    assert fuse_batch_norm(model) == 1
    return keras_norm, fused_norm


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the fused step is TensorFlow's kernel")
@pytest.mark.parametrize("options", [{}, {"scale": False}, {"center": False}], ids=["both", "no_scale", "no_center"])
def test_fused_batch_norm_trains_as_keras_does(options):
    """Same outputs, gradients (inputs, scale, offset) and moving statistics as Keras' own training step, to float32
    rounding; inference is Keras' own, unchanged."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(3.0, 2.0, (6, 4, 4, 8)).astype("float32"))
    weights = tf.constant(rng.normal(size=(6, 4, 4, 8)).astype("float32"))
    results = []
    for norm in batch_norm_pair(rng, **options):
        inference = norm(x, training=False)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = norm(x, training=True)
            loss = tf.reduce_sum(tf.sin(y) * weights)
        gradients = tape.gradient(loss, [x, *norm.trainable_weights])
        results.append([inference, y, *gradients, norm.moving_mean, norm.moving_variance])
    keras_results, fused_results = results
    np.testing.assert_array_equal(keras_results[0], fused_results[0])
    for plain, fused in zip(keras_results[1:], fused_results[1:], strict=True):
        np.testing.assert_allclose(as_numpy([fused])[0], as_numpy([plain])[0], rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the fused step is TensorFlow's kernel")
def test_fused_batch_norm_reaches_nested_layers_and_saves_as_plain_keras(tmp_path):
    """Every normalization layer of the classifier (the backbone's and the head's) is given the step; 2-D inputs (the
    head's) and frozen layers keep Keras' computation; the saved model needs nothing of this project to load."""
    model, base = build_model(make_settings())
    norms = [layer for layer in nested_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    assert fuse_batch_norm(model) == len(norms) >= 3
    head = model.get_layer("head_bn")
    before = as_numpy([head.moving_mean])[0]
    model(images(4, MODEL_SPECS["alexnet"].min_size), training=True)
    assert not np.array_equal(as_numpy([head.moving_mean])[0], before)  # Keras' 2-D step ran
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert {type(layer) for layer in nested_layers(loaded) if "batch_normalization" in layer.name} == {
        keras.layers.BatchNormalization
    }


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the fused step is TensorFlow's kernel")
def test_a_frozen_layer_given_the_fused_step_still_runs_in_inference_mode():
    keras_norm, fused_norm = batch_norm_pair(np.random.default_rng(1))
    fused_norm.trainable = False
    x = np.random.default_rng(2).normal(size=(3, 4, 4, 8)).astype("float32")
    statistics = as_numpy([fused_norm.moving_mean, fused_norm.moving_variance])
    np.testing.assert_array_equal(fused_norm(x, training=True), keras_norm(x, training=False))
    for before, after in zip(statistics, as_numpy([fused_norm.moving_mean, fused_norm.moving_variance]), strict=True):
        np.testing.assert_array_equal(before, after)
