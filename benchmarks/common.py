"""Shared pieces of the benchmarks: synthetic photos and caches, the workflow's settings, the
hand-written baseline model, and the in-process epoch timer.

Nothing here imports a deep-learning backend at module level, so the CPU driver (TensorFlow) and the
GPU driver (KERAS_BACKEND=torch, no TensorFlow installed) share it.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import os
import sys
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "workflow_scripts"))

RESULT_PREFIX = "BENCH_RESULT "


# ---- data -----------------------------------------------------------------------------------


def _jpeg(args) -> bytes:
    """One synthetic 'photo': the workflow's synthetic class pattern, at a photo-like size."""
    from PIL import Image

    from cnn_study.synthetic import synthetic_image

    seed, class_index, width, height = args
    rng = np.random.default_rng([seed, class_index, width, height])
    side = max(width, height)
    image = synthetic_image(rng, class_index, side).resize((width, height), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def make_dataset(
    directory: str | Path,
    n_train: int,
    n_val: int,
    width: int = 400,
    height: int = 350,
    seed: int = 0,
    processes: int = 1,
) -> dict:
    """A train.zip in the competition layout (cat.N.jpg, dog.N.jpg) and a manifest.csv of the pick.

    n_train and n_val are totals (half per class). The Kaggle photos average about 400x360 px; the
    default size keeps the JPEG decode cost of the naive loader realistic.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    per_class = {"train": n_train // 2, "val": n_val // 2}
    jobs, rows = [], []
    for class_index, label in enumerate(classes()):
        number = 0
        for split in ("train", "val"):
            for _ in range(per_class[split]):
                # Vary the size a little, as photos do.
                w = width + (number * 37) % 61 - 30
                h = height + (number * 53) % 61 - 30
                jobs.append((seed * 100003 + number, class_index, w, h))
                rows.append({"file": f"train/{label}.{number}.jpg", "label": label, "split": split})
                number += 1
    if processes > 1:
        with ProcessPoolExecutor(processes) as pool:
            blobs = list(pool.map(_jpeg, jobs, chunksize=8))
    else:
        blobs = [_jpeg(job) for job in jobs]
    archive = directory / "train.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as handle:
        for row, blob in zip(rows, blobs, strict=True):
            handle.writestr(row["file"], blob)
            row["sha256"] = hashlib.sha256(blob).hexdigest()
    manifest = directory / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "sha256", "label", "split"])
        writer.writeheader()
        # Shuffle-free but interleaved: the pick order of the workflow does not matter here.
        writer.writerows(rows)
    return {"archive": str(archive), "manifest": str(manifest), "rows": rows}


def cache_paths(directory: str | Path, size: int) -> dict:
    from cnn_study.image_cache import cache_paths as workflow_cache_paths

    return workflow_cache_paths(Path(directory) / "cache" / f"{size}px")


def build_cache(directory: str | Path, dataset: dict, size: int) -> tuple[dict, float]:
    """The workflow's decode-once cache (cnn_study.image_cache.build_cache); returns paths, seconds."""
    from cnn_study.image_cache import build_cache as workflow_build_cache

    paths = cache_paths(directory, size)
    started = time.perf_counter()
    workflow_build_cache(dataset["archive"], dataset["manifest"], classes(), size, paths)
    return paths, time.perf_counter() - started


# ---- the workflow's settings -------------------------------------------------------------------


def apply_schema_defaults(config: dict, schema: dict) -> dict:
    """Fill defaults the way Snakemake's validate(set_default=True) does, for nested objects."""
    properties = schema.get("properties", {})
    for key, sub in properties.items():
        if key not in config and "default" in sub:
            config[key] = copy.deepcopy(sub["default"])
        if isinstance(config.get(key), dict) and "properties" in sub:
            apply_schema_defaults(config[key], sub)
    return config


def deep_update(base: dict, overrides: dict) -> dict:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def workflow_config(overrides: dict) -> dict:
    """config.yaml with the overrides, then the schema's defaults: what a rule's params see."""
    import yaml

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    deep_update(config, overrides)
    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    return apply_schema_defaults(config, schema)


def classes() -> list[str]:
    """The class names, in label order, from config.yaml."""
    return list(workflow_config({})["dataset"]["classes"])


def workflow_settings(overrides: dict, model: str, optimizer: str, lr: str, seed: int) -> dict:
    """The settings dict the train rule hands to train_run (cnn_study.settings.run_settings)."""
    try:
        from cnn_study import settings as settings_module
    except ImportError:  # jsonschema missing (a bare GPU machine): run_settings itself does not need it
        import types

        sys.modules.setdefault("jsonschema", types.ModuleType("jsonschema"))
        from cnn_study import settings as settings_module
    # The benchmarks pick their backend with KERAS_BACKEND; training.backend would override it in train_run.
    backend = {"training": {"backend": os.environ.get("KERAS_BACKEND", "tensorflow")}}
    return settings_module.run_settings(workflow_config(deep_update(backend, overrides)), model, optimizer, lr, seed)


# ---- the hand-written baseline -----------------------------------------------------------------


def hand_model(keras, model: str, size: int, seed: int, augmentation: bool = True, dropout: float = 0.5):
    """What one would write by hand for the paper's model: augmentation, the backbone's
    preprocess_input, the backbone with random weights, and the head (GAP, BN, dropout, softmax).
    Returns (model, base)."""
    from keras import layers, ops

    from cnn_study.models import APPLICATIONS, CAFFE_MEAN_BGR

    inputs = keras.Input((size, size, 3))
    x = inputs
    if augmentation:
        x = layers.RandomFlip("horizontal", seed=seed)(x)
        x = layers.RandomRotation(0.1, seed=seed + 1)(x)
        x = layers.RandomZoom(0.1, seed=seed + 2)(x)
    if model == "resnet50":  # caffe: RGB->BGR, minus the ImageNet mean
        mean = np.array(CAFFE_MEAN_BGR, dtype="float32")
        # For the torch backend: output_shape given (it cannot infer it), the mean made a tensor on
        # the inputs' device.
        x = layers.Lambda(
            lambda t: ops.flip(ops.cast(t, "float32"), axis=-1) - ops.convert_to_tensor(mean),
            output_shape=(size, size, 3),
        )(x)
    else:  # tf: [-1, 1]
        x = layers.Rescaling(1 / 127.5, offset=-1.0)(x)
    base = APPLICATIONS[model](include_top=False, weights=None, input_shape=(size, size, 3))
    x = base(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(dropout, seed=seed + 3)(x)
    outputs = layers.Dense(len(classes()), activation="softmax")(x)
    return keras.Model(inputs, outputs), base


def optimizer(keras, name: str, lr: float):
    return {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}[name](
        learning_rate=lr
    )


# ---- timing ------------------------------------------------------------------------------------


class Timeline:
    """Epoch-level timestamps gathered around and inside model.fit, the same way for every trainer.

    install() wraps keras.Model.fit: each call records its entry and exit and adds two probe
    callbacks, one first and one last in the list, so that the time spent in the other callbacks'
    on_epoch_end (CSV row, backup) is measured. No probe overrides a per-batch hook: a callback that
    does turns off Keras' asynchronous batch-end dispatch and would change what is measured.
    Optionally appends one JSON line per epoch to a file as it goes (partial results on a kill).
    """

    def __init__(self, keras, jsonl: str | Path | None = None, images_per_epoch: int | None = None):
        self.keras = keras
        self.events: list[tuple[str, int, float, float]] = []  # (event, epoch, wall, cpu)
        self.callback_seconds: dict[str, float] = {}
        self.jsonl = Path(jsonl) if jsonl else None
        self.images = images_per_epoch
        self.epoch_logs: list[dict] = []
        self.params: int | None = None
        self.tracer: EpochTracer | None = None

    def mark(self, event: str, epoch: int = -1) -> None:
        self.events.append((event, epoch, time.perf_counter(), time.process_time()))
        if self.tracer is not None:
            self.tracer.mark(event, epoch)

    def _probe(self, position: str):
        timeline = self

        class Probe(self.keras.callbacks.Callback):
            async_safe = True

            def on_train_begin(self, logs=None):
                timeline.mark(f"train_begin_{position}")

            def on_epoch_begin(self, epoch, logs=None):
                timeline.mark(f"epoch_begin_{position}", epoch)

            def on_test_begin(self, logs=None):
                timeline.mark(f"test_begin_{position}")

            def on_test_end(self, logs=None):
                timeline.mark(f"test_end_{position}")

            def on_epoch_end(self, epoch, logs=None):
                timeline.mark(f"epoch_end_{position}", epoch)
                if position == "last":
                    timeline._epoch_done(epoch, logs or {})

        return Probe()

    def _epoch_done(self, epoch: int, logs: dict) -> None:
        row = {"event": "epoch_end", "epoch": epoch, "wall": time.perf_counter(), "cpu": time.process_time()}
        for key, value in logs.items():
            if isinstance(value, (int, float, np.floating)):
                row[key] = float(value)
            elif isinstance(value, str):
                row[key] = value
        self.epoch_logs.append(row)
        self._write(row)

    def _write(self, row: dict) -> None:
        if self.jsonl:
            with open(self.jsonl, "a") as handle:
                handle.write(json.dumps(row) + "\n")

    def _timed(self, callback):
        name = type(callback).__name__
        original = callback.on_epoch_end

        def on_epoch_end(epoch, logs=None):
            started = time.perf_counter()
            try:
                return original(epoch, logs)
            finally:
                self.callback_seconds[name] = self.callback_seconds.get(name, 0.0) + time.perf_counter() - started

        callback.on_epoch_end = on_epoch_end
        callback._bench_timed = True
        return callback

    def install(self) -> None:
        timeline = self
        original_fit = self.keras.Model.fit

        def fit(model, *args, callbacks=None, **kwargs):
            callbacks = [c if getattr(c, "_bench_timed", False) else timeline._timed(c) for c in (callbacks or [])]
            callbacks = [timeline._probe("first"), *callbacks, timeline._probe("last")]
            timeline.mark("fit_enter")
            if timeline.params is None:
                timeline.params = int(model.count_params())
                timeline._write({"event": "first_fit", "wall": time.perf_counter(), "params": timeline.params})
            try:
                return original_fit(model, *args, callbacks=callbacks, **kwargs)
            finally:
                timeline.mark("fit_exit")

        self.keras.Model.fit = fit

    def summary(self, train_images: int, setup_started: float) -> dict:
        """First epoch, steady epochs and a breakdown of the steady epochs, in seconds."""
        ends = [(e, w, c) for ev, e, w, c in self.events if ev == "epoch_end_last"]
        enters = [w for ev, _, w, _ in self.events if ev == "fit_enter"]
        if not ends or not enters:
            return {"epochs_done": 0}
        first_wall = ends[0][1] - enters[0]
        first_cpu = ends[0][2] - next(c for ev, _, w, c in self.events if ev == "fit_enter")
        steady = [(ends[i][1] - ends[i - 1][1], ends[i][2] - ends[i - 1][2]) for i in range(1, len(ends))]
        result = {
            "params": self.params,
            "epochs_done": len(ends),
            "setup_s": enters[0] - setup_started,
            "first_epoch_s": first_wall,
            "first_epoch_cpu_s": first_cpu,
            "steady_epoch_s": [s for s, _ in steady],
            "steady_epoch_cpu_s": [c for _, c in steady],
        }
        if steady:
            wall = float(np.mean([s for s, _ in steady]))
            cpu = float(np.mean([c for _, c in steady]))
            result.update(
                steady_mean_s=wall,
                images_per_s=train_images / wall,
                images_per_cpu_s=train_images / cpu,
                breakdown=self.breakdown(),
            )
        return result

    SEGMENTS = {
        "epoch_begin_last": "train_steps",
        "test_begin_first": "validation",
        "test_begin_last": "validation",
        "test_end_first": "validation",
        "test_end_last": "validation",
        "epoch_end_first": "epoch_end_callbacks",
    }

    def breakdown(self) -> dict:
        """Mean seconds per steady epoch (epochs after the first) in each part of an epoch.

        Each interval between two consecutive events is named after the event that opens it and
        belongs to the epoch whose end follows; the parts add up to the epoch's wall time.
        train_steps: the training batches; validation; epoch_end_callbacks: the other callbacks'
        on_epoch_end (CSV row, backup); between_epochs: the rest (a new fit call's set-up, the
        shuffle or the x[order] copy, Python in between)."""
        per_epoch: dict[int, dict[str, float]] = {}
        pending: dict[str, float] = {}
        previous = None
        for event, number, wall, _ in self.events:
            if previous is not None:
                segment = self.SEGMENTS.get(previous[0], "between_epochs")
                pending[segment] = pending.get(segment, 0.0) + wall - previous[1]
            previous = (event, wall)
            if event == "epoch_end_last":
                per_epoch[number] = pending
                pending = {}
        steady = [parts for epoch, parts in per_epoch.items() if epoch >= 1]
        names = ["train_steps", "validation", "epoch_end_callbacks", "between_epochs"]
        result = {
            name: float(np.mean([parts.get(name, 0.0) for parts in steady])) if steady else None for name in names
        }
        epochs = max(1, len(per_epoch))
        result["per_callback_on_epoch_end"] = {k: v / epochs for k, v in sorted(self.callback_seconds.items())}
        return result


class EpochTracer:
    """Profiles one epoch, from its first callback to its last (epoch 0 from the fit call's entry, so with the
    graph tracing): the TensorFlow profiler's trace of every op and thread (TensorFlow backend only) and cProfile
    of the training thread's Python, into `directory` (benchmarks/epoch_profile.py reads both). Tracing slows
    the epoch it traces: traced runs are not timed."""

    def __init__(self, directory: str | Path, epoch: int, backend: str):
        self.directory, self.epoch, self.backend = Path(directory), epoch, backend
        self.profiler = None
        self.done = False
        self.window: tuple[float, float] | None = None

    def mark(self, event: str, epoch: int) -> None:
        # The first epoch from the fit call's entry: the data adapter's set-up and the graph tracing are in it.
        opens = "fit_enter" if self.epoch == 0 else "epoch_begin_first"
        if self.done:
            return
        if event == opens and (self.epoch == 0 or epoch == self.epoch) and self.profiler is None:
            self.start()
        elif event == "epoch_end_last" and epoch == self.epoch and self.profiler is not None:
            self.stop()

    def start(self) -> None:
        import cProfile

        self.directory.mkdir(parents=True, exist_ok=True)
        if self.backend == "tensorflow":
            import tensorflow as tf

            tf.profiler.experimental.start(str(self.directory / "tf"))
        self.profiler = cProfile.Profile()
        self.window = (time.perf_counter(), time.process_time())
        self.profiler.enable()

    def stop(self) -> None:
        self.profiler.disable()
        wall, cpu = time.perf_counter() - self.window[0], time.process_time() - self.window[1]
        if self.backend == "tensorflow":
            import tensorflow as tf

            tf.profiler.experimental.stop()
        self.profiler.dump_stats(str(self.directory / "python.pstats"))
        (self.directory / "window.json").write_text(json.dumps({"epoch": self.epoch, "wall_s": wall, "cpu_s": cpu}))
        self.done = True  # one epoch only


def emit(result: dict) -> None:
    """The worker's result, as one line the driver picks out of its output."""
    sys.stdout.flush()
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def parse_result(output: str) -> dict | None:
    for line in reversed(output.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    return None


def child_cpu_seconds() -> float:
    """User + system CPU seconds of this process's finished children (getrusage): the workers' whole cost."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"
