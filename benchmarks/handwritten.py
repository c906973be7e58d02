"""The anchor of the training benchmarks: what a user would write by hand for one run of the study, in plain Keras
(keras.applications, the paper's head, model.fit(x, y, shuffle=True)), on the workflow's decode-once cache (feed
"arrays") or decoding the JPEGs every epoch (feed "decode"). Rule handwritten gives it the train job's own settings,
and nothing else of the workflow's; it writes per epoch the timing columns of history.csv."""

import csv
import os
import sys
import time
import zipfile

import numpy as np

IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)  # caffe-style preprocessing (ResNet50)
TIMING = ["epoch", "epoch_seconds", "epoch_cpu_seconds", "images_per_second", "loss"]


def import_keras(settings: dict, threads: int):
    """Keras on the run's backend, with its threads and op determinism as the workflow's job sets them."""
    backend = settings["backend"]
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
        if settings["deterministic"]:
            tf.config.experimental.enable_op_determinism()
    elif backend == "torch":
        import torch

        torch.set_num_threads(threads)
        if settings["deterministic"]:
            torch.use_deterministic_algorithms(True, warn_only=True)
    import keras

    keras.utils.set_random_seed(settings["seed"])
    if settings["precision"] != "float32":
        keras.config.set_dtype_policy(settings["precision"])
    return keras


def build(keras, settings: dict):
    """The paper's model as one would write it: augmentation, preprocessing, backbone, GAP-BN-dropout-softmax."""
    from keras import layers, ops

    size, seed = settings["input_size"], settings["seed"]
    inputs = keras.Input((size, size, 3))
    x = inputs
    augmentation = settings["augmentation"]
    if augmentation["enabled"]:
        x = layers.RandomFlip(augmentation["flip"], seed=seed)(x)
        x = layers.RandomRotation(augmentation["rotation"], seed=seed + 1)(x)
        x = layers.RandomZoom(augmentation["zoom"], seed=seed + 2)(x)
    if settings["model"] == "resnet50":
        mean = np.array(IMAGENET_MEAN_BGR, dtype="float32")
        # output_shape given: the torch backend cannot infer a Lambda's
        x = layers.Lambda(lambda t: ops.flip(t, axis=-1) - ops.convert_to_tensor(mean), output_shape=(size, size, 3))(x)
        base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(size, size, 3))
    else:
        x = layers.Rescaling(1 / 127.5, offset=-1.0)(x)
        base = keras.applications.InceptionV3(include_top=False, weights=None, input_shape=(size, size, 3))
    base.trainable = settings["protocol"]["mode"] != "transfer"
    x = base(x)
    x = layers.GlobalAveragePooling2D()(x)
    if settings["head"]["batch_norm"]:
        x = layers.BatchNormalization()(x)
    x = layers.Dropout(settings["head"]["dropout"], seed=seed + 3)(x)
    outputs = layers.Dense(len(settings["classes"]), activation="softmax", dtype="float32")(x)
    model = keras.Model(inputs, outputs)
    optimizers = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}
    model.compile(
        optimizer=optimizers[settings["optimizer"]](learning_rate=settings["learning_rate"]),
        loss=settings["loss"],
        metrics=settings["metrics"],
    )
    return model


def decoding_loader(keras, archive: str, rows: list[dict], settings: dict, shuffle: bool):
    """The naive input path: every batch reads its JPEGs from the archive and decodes and resizes them, every
    epoch (PIL, bilinear, as the cache does once)."""
    from PIL import Image

    size, batch, classes = settings["input_size"], settings["batch_size"], settings["classes"]

    class Decoding(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.zip = zipfile.ZipFile(archive)
            self.rows, self.order = rows, np.arange(len(rows))
            self.rng = np.random.default_rng(settings["seed"])
            self.on_epoch_end()

        def __len__(self):
            return -(-len(self.rows) // batch)

        def __getitem__(self, index):
            picked = [self.rows[i] for i in self.order[index * batch : (index + 1) * batch]]
            images = np.stack([self.decode(row["file"]) for row in picked])
            labels = keras.utils.to_categorical([classes.index(row["label"]) for row in picked], len(classes))
            return images, labels

        def decode(self, name: str) -> np.ndarray:
            with self.zip.open(name) as handle, Image.open(handle) as image:
                return np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.uint8)

        def on_epoch_end(self):
            if shuffle:
                self.order = self.rng.permutation(len(self.rows))

    return Decoding()


def epoch_clock(keras, images: int, rows: list):
    """A callback adding a row per epoch: wall and CPU seconds (all threads), and the training steps' images per
    second (the clock stops where validation starts; no per-batch hook, which turns off async batch ends)."""
    clock = {}

    def begin(epoch, logs=None):
        clock.update(wall=time.perf_counter(), cpu=time.process_time(), steps_ended=None)

    def steps_end(logs=None):
        clock["steps_ended"] = clock["steps_ended"] or time.perf_counter()

    def end(epoch, logs=None):
        now = time.perf_counter()
        steps = (clock["steps_ended"] or now) - clock["wall"]
        rows.append([epoch + 1, now - clock["wall"], time.process_time() - clock["cpu"], images / steps, logs["loss"]])

    return keras.callbacks.LambdaCallback(on_epoch_begin=begin, on_epoch_end=end, on_test_begin=steps_end)


def train(settings: dict, data: dict, feed: str, epochs_csv: str, threads: int) -> None:
    """One run by hand; writes epochs_csv (TIMING columns, one row per epoch)."""
    keras = import_keras(settings, threads)
    classes = len(settings["classes"])
    x_val = np.load(data["val_images"])
    y_val = keras.utils.to_categorical(np.load(data["val_labels"]), classes)
    model = build(keras, settings)
    fit, rows = {"epochs": settings["epochs"], "validation_data": (x_val, y_val), "verbose": 2}, []
    if feed == "arrays":
        x, y = np.load(data["train_images"]), keras.utils.to_categorical(np.load(data["train_labels"]), classes)
        clock = epoch_clock(keras, len(x), rows)
        model.fit(x, y, batch_size=settings["batch_size"], shuffle=True, callbacks=[clock], **fit)
    elif feed == "decode":
        with open(data["manifest"], newline="") as handle:
            files = [row for row in csv.DictReader(handle) if row["split"] == "train"]
        loader = decoding_loader(keras, data["archive"], files, settings, shuffle=True)
        model.fit(loader, callbacks=[epoch_clock(keras, len(files), rows)], **fit)
    else:
        raise ValueError(f"feed {feed!r}: use arrays or decode")
    partial = f"{epochs_csv}.partial"
    with open(partial, "w", newline="") as handle:
        csv.writer(handle).writerows([TIMING, *rows])
    os.replace(partial, epochs_csv)


if "snakemake" in globals():  # run by the rule
    with open(snakemake.log[0], "w") as log:  # noqa: F821 - the rule's script object
        sys.stderr = sys.stdout = log
        train(
            snakemake.params.settings,  # noqa: F821
            dict(snakemake.input),  # noqa: F821
            snakemake.wildcards.feed,  # noqa: F821
            snakemake.output.epochs,  # noqa: F821
            snakemake.threads,  # noqa: F821
        )
