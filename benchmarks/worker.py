"""One measured training process, started by benchmarks/run.py or benchmarks/gpu_paper_grid.py.

    python benchmarks/worker.py '<json spec>'

Tasks (spec["task"]):
  train  trainer=workflow: cnn_study.training.train_run, exactly as the Snakemake job calls it
         trainer=minimal:  a hand-written model.fit(x, y, epochs=N, shuffle=True, validation_data=...)
  input  the same hand-written fit with the backbone frozen, fed by loader=cache (the decode-once
         arrays), decode (a PyDataset that decodes and resizes the JPEGs every epoch with PIL) or
         tfdata (keras.utils.image_dataset_from_directory without cache; TensorFlow only)

Everything is timed inside the process (imports, set-up, each epoch) and printed as one
BENCH_RESULT line of JSON; with spec["jsonl"] each finished epoch is also appended to that file.
"""

from __future__ import annotations

import json
import os
import sys
import time

STARTED = time.perf_counter()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
import numpy as np  # noqa: E402


def import_keras(spec: dict):
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend == "tensorflow":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    if spec.get("trainer") != "workflow" and spec.get("precision", "float32") != "float32":
        keras.config.set_dtype_policy(spec["precision"])  # the workflow's train_run sets it from its settings
    return keras


def set_minimal_threads(spec: dict) -> None:
    """A hand-written script leaves the backend's threading alone unless spec['threads'] says so."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if spec.get("deterministic") and backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    if backend == "torch":
        import torch

        if spec.get("threads"):
            torch.set_num_threads(spec["threads"])
        if spec.get("deterministic"):
            torch.use_deterministic_algorithms(True, warn_only=True)


def device_info() -> dict:
    """The workflow's own device names (cnn_study.backend), the backend, and the GPU memory peak on torch."""
    from cnn_study.backend import device_names

    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    info = {"backend": backend, "tensorflow_imported": "tensorflow" in sys.modules, **device_names(backend)}
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            info["max_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return info


def workflow_train(spec: dict, keras, timeline) -> dict:
    from cnn_study.training import train_run

    training = {
        "epochs": spec["epochs"],
        "batch_size": spec["batch"],
        "protocol": {"mode": spec.get("protocol", "full")},
        "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
    }
    for key in ("deterministic", "jit_compile", "steps_per_execution", "precision"):
        if spec.get(key) is not None:
            training[key] = spec[key]
    if spec.get("augmentation") is False:
        training["augmentation"] = {"enabled": False}
    overrides = {
        "models": {spec["model"]: {"input_size": spec["size"], "weights": "none"}},
        "training": training,
    }
    settings = common.workflow_settings(overrides, spec["model"], spec["optimizer"], str(spec["lr"]), spec["seed"])
    run_dir = spec.get("run_dir") or os.path.join(spec["workdir"], f"run_{os.getpid()}")
    os.makedirs(run_dir, exist_ok=True)
    started = time.perf_counter()
    history = train_run(
        settings,
        spec["data"],
        None,
        os.path.join(run_dir, "history.csv"),
        os.path.join(run_dir, "model.keras"),
        os.path.join(run_dir, "run.json"),
        os.path.join(run_dir, "resume"),
        threads=spec.get("threads", 2),
        verbose=spec.get("verbose", 2),
    )
    exits = [w for ev, _, w, _ in timeline.events if ev == "fit_exit"]
    return {
        "settings": settings,
        "train_run_s": time.perf_counter() - started,
        "after_last_fit_s": time.perf_counter() - exits[-1] if exits else None,
        # train_run's own train-only images/s (first batch to last batch), from its history.csv
        "history_images_per_second": [float(v) for v in history["images_per_second"]],
        "history_loss": [float(v) for v in history["loss"]],
    }


def compile_hand_model(keras, model, spec: dict) -> None:
    """compile() as a hand-written script would call it."""
    model.compile(
        optimizer=common.optimizer(keras, spec["optimizer"], float(spec["lr"])),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=spec.get("jit_compile") if spec.get("jit_compile") is not None else "auto",
    )


def minimal_train(spec: dict, keras, timeline) -> dict:
    set_minimal_threads(spec)
    keras.utils.set_random_seed(spec["seed"])
    data = spec["data"]
    x, y = np.load(data["train_images"]), np.load(data["train_labels"])
    xv, yv = np.load(data["val_images"]), np.load(data["val_labels"])
    y, yv = keras.utils.to_categorical(y, 2), keras.utils.to_categorical(yv, 2)
    model, base = common.hand_model(
        keras, spec["model"], spec["size"], spec["seed"], augmentation=spec.get("augmentation", True)
    )
    if spec.get("protocol") == "transfer":
        base.trainable = False
    compile_hand_model(keras, model, spec)
    history = model.fit(
        x,
        y,
        batch_size=spec["batch"],
        epochs=spec["epochs"],
        shuffle=True,
        validation_data=(xv, yv),
        verbose=spec.get("verbose", 2),
    )
    return {"history_loss": [float(v) for v in history.history["loss"]]}


class DecodingDataset:
    """The naive loader: every batch decodes its JPEGs from the archive and resizes them (PIL
    bilinear: the cache's resize_rgb), every epoch, in the training process."""

    @staticmethod
    def make(keras, archive: str, rows: list[dict], size: int, batch: int, shuffle: bool, seed: int, workers: int):
        import zipfile

        from cnn_study.image_cache import resize_rgb
        from cnn_study.screening import decode_rgb

        classes = common.classes()

        class Decoding(keras.utils.PyDataset):
            def __init__(self):
                super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=10)
                self.zip = zipfile.ZipFile(archive)
                self.files = [r["file"] for r in rows]
                self.labels = np.array([classes.index(r["label"]) for r in rows])
                self.order = np.arange(len(rows))
                self.rng = np.random.default_rng(seed)
                self.epoch_shuffle()

            def epoch_shuffle(self):
                if shuffle:
                    self.order = self.rng.permutation(len(self.files))

            def __len__(self):
                return -(-len(self.files) // batch)

            def __getitem__(self, index):
                picked = self.order[index * batch : (index + 1) * batch]
                images = np.empty((len(picked), size, size, 3), dtype=np.uint8)
                for slot, item in enumerate(picked):
                    data = self.zip.read(self.files[item])  # one shared handle: fine for workers=1
                    images[slot] = resize_rgb(decode_rgb(data), size)
                return images, keras.utils.to_categorical(self.labels[picked], len(classes))

            def on_epoch_end(self):
                self.epoch_shuffle()

        return Decoding()


def input_train(spec: dict, keras, timeline) -> dict:
    set_minimal_threads(spec)
    keras.utils.set_random_seed(spec["seed"])
    loader, batch, size = spec["loader"], spec["batch"], spec["size"]
    model, base = common.hand_model(keras, spec["model"], size, spec["seed"])
    base.trainable = False
    compile_hand_model(keras, model, spec)
    fit = {"epochs": spec["epochs"], "verbose": spec.get("verbose", 2)}
    if loader == "cache":
        data = spec["data"]
        x, y = np.load(data["train_images"]), keras.utils.to_categorical(np.load(data["train_labels"]), 2)
        xv, yv = np.load(data["val_images"]), keras.utils.to_categorical(np.load(data["val_labels"]), 2)
        model.fit(x, y, batch_size=batch, shuffle=True, validation_data=(xv, yv), **fit)
    elif loader == "decode":
        import csv

        with open(spec["manifest"], newline="") as handle:
            rows = list(csv.DictReader(handle))
        workers = spec.get("decode_workers", 1)
        train = DecodingDataset.make(
            keras, spec["archive"], [r for r in rows if r["split"] == "train"], size, batch, True, spec["seed"], workers
        )
        val = DecodingDataset.make(
            keras, spec["archive"], [r for r in rows if r["split"] == "val"], size, batch, False, spec["seed"], workers
        )
        model.fit(train, validation_data=val, **fit)
    elif loader == "tfdata":
        options = dict(
            label_mode="categorical",
            image_size=(size, size),
            batch_size=batch,
            interpolation="bilinear",
            class_names=common.classes(),
        )
        train = keras.utils.image_dataset_from_directory(
            os.path.join(spec["folders"], "train"), shuffle=True, seed=spec["seed"], **options
        )
        val = keras.utils.image_dataset_from_directory(os.path.join(spec["folders"], "val"), shuffle=False, **options)
        model.fit(train, validation_data=val, **fit)
    else:
        raise ValueError(f"unknown loader {loader}")
    return {}


def main() -> None:
    spec = json.loads(sys.argv[1])
    result = {"spec": spec, "pid": os.getpid()}
    try:
        keras = import_keras(spec)
        if spec["task"] == "train" and spec["trainer"] == "workflow":
            # train_run imports its own modules; count them with the imports
            import cnn_study.training  # noqa: F401
        result["import_s"] = time.perf_counter() - STARTED
        timeline = common.Timeline(keras, spec.get("jsonl"))
        if spec.get("trace_dir"):
            backend = os.environ.get("KERAS_BACKEND", "tensorflow")
            timeline.tracer = common.EpochTracer(spec["trace_dir"], spec.get("trace_epoch", 1), backend)
        timeline.install()
        setup_started = time.perf_counter()
        if spec["task"] == "train":
            extra = (workflow_train if spec["trainer"] == "workflow" else minimal_train)(spec, keras, timeline)
        else:
            extra = input_train(spec, keras, timeline)
        result.update(extra)
        result.update(timeline.summary(spec["train_images"], setup_started))
        result["epoch_logs"] = timeline.epoch_logs
        result["device"] = device_info()
        result["ok"] = True
    except BaseException as error:  # report what was measured, then fail
        import traceback

        traceback.print_exc()
        result["ok"] = False
        result["error"] = f"{type(error).__name__}: {error}"
        try:
            result.update(timeline.summary(spec["train_images"], setup_started))
        except Exception:  # noqa: BLE001
            pass
    result["process_s"] = time.perf_counter() - STARTED
    common.emit(result)
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
