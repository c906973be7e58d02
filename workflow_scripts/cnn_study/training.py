"""One training run: build, train phase by phase with per-epoch backups, write history, model and provenance.

Each epoch is one ``fit`` call on the training set in an order drawn from (seed, epoch). The order
therefore does not depend on how many epochs ran before in this process, and a run resumed from its
BackupAndRestore state (weights, optimizer and the layers' random-generator states) continues exactly
as an uninterrupted run would: its history is bit-identical, timing columns aside.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cnn_study.backend import configure_backend
from cnn_study.image_cache import load_split
from cnn_study.provenance import Provenance

log = logging.getLogger(__name__)

HISTORY_COLUMNS = [
    "epoch", "phase", "loss", "accuracy", "val_loss", "val_accuracy",
    "learning_rate", "epoch_seconds", "images_per_second",
]
TIMING_COLUMNS = ["epoch_seconds", "images_per_second"]


def phase_plan(protocol: dict, epochs: int) -> list[str]:
    """The phase of every epoch: frozen (base frozen), fine_tune (base unfrozen after a warm-up) or full."""
    if protocol["mode"] == "transfer":
        return ["frozen"] * epochs
    if protocol["mode"] == "full":
        return ["full"] * epochs
    warmup = min(protocol["warmup_epochs"], epochs)
    return ["frozen"] * warmup + ["fine_tune"] * (epochs - warmup)


def epoch_order(seed: int, epoch: int, count: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(count)


def completed_epochs(backup_dir: Path) -> int:
    metadata = backup_dir / "training_metadata.json"
    if not metadata.exists():
        return 0
    return int(json.loads(metadata.read_text())["epoch"])


def keep_history_rows(partial_history: Path, epochs_done: int) -> None:
    """Drop rows of epochs the backup does not cover (a kill between CSV row and backup)."""
    if not partial_history.exists():
        return
    if epochs_done == 0:
        partial_history.unlink()
        return
    rows = pd.read_csv(partial_history)
    rows[rows["epoch"] < epochs_done].to_csv(partial_history, index=False)


def write_history(partial_history: Path, history_path: Path) -> pd.DataFrame:
    rows = pd.read_csv(partial_history)
    rows["epoch"] = rows["epoch"] + 1  # CSVLogger counts from 0; the paper's figures from 1
    rows = rows[HISTORY_COLUMNS]
    partial = history_path.with_name(history_path.name + ".partial")
    rows.to_csv(partial, index=False)
    partial.replace(history_path)
    return rows


def make_callbacks(keras, phases: list[str], train_images: int, partial_history: Path, backup_dir: Path):
    class EpochStats(keras.callbacks.Callback):
        """Adds phase, learning rate and timing to the epoch's logs, before CSVLogger writes them."""

        def on_epoch_begin(self, epoch, logs=None):
            self.started = self.last_batch = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.last_batch = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs["phase"] = phases[epoch]
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            logs["epoch_seconds"] = time.perf_counter() - self.started
            logs["images_per_second"] = train_images / max(self.last_batch - self.started, 1e-9)

    class EpochProgress(keras.callbacks.ProgbarLogger):
        """Keras' progress bar, numbering epochs across the one-epoch fit calls."""

        def set_params(self, params):
            super().set_params(params)
            self.epochs = len(phases)

    class EpochBackup(keras.callbacks.BackupAndRestore):
        """BackupAndRestore for one fit call per epoch: saves every epoch, restores when asked, keeps
        the backup until the run is complete."""

        def __init__(self, directory):
            super().__init__(str(directory), delete_checkpoint=False)

        def on_train_begin(self, logs=None):
            pass  # restore() does it once, before the phase's first fit

        def restore(self, model):
            self.set_model(model)
            super().on_train_begin()

    progress = EpochProgress()
    csv_logger = keras.callbacks.CSVLogger(str(partial_history), append=True)
    backup = EpochBackup(backup_dir)
    # Order matters: EpochStats fills the logs that CSVLogger writes; the backup follows the row.
    return [progress, EpochStats(), csv_logger, backup], backup


def train_run(
    settings: dict,
    data: dict,
    weights_file: str | None,
    history_path: str | Path,
    model_path: str | Path,
    provenance_path: str | Path,
    resume_dir: str | Path,
    threads: int = 1,
    verbose: int = 2,
) -> pd.DataFrame:
    provenance = Provenance.start(settings)
    keras = configure_backend(threads, settings["seed"], settings["deterministic"])
    from cnn_study.models import build_model, set_phase_trainability
    from cnn_study.optimizers import build_optimizer

    history_path, model_path, resume_dir = Path(history_path), Path(model_path), Path(resume_dir)
    backup_dir, partial_history = resume_dir / "backup", resume_dir / "history.csv"
    resume_dir.mkdir(parents=True, exist_ok=True)
    (resume_dir / "settings.json").write_text(json.dumps(settings, indent=2, sort_keys=True))

    x_train, y_train = load_split(data["train_images"], data["train_labels"])
    x_val, y_val = load_split(data["val_images"], data["val_labels"])
    classes = len(settings["classes"])
    y_train = keras.utils.to_categorical(y_train, classes)
    validation = (np.asarray(x_val), keras.utils.to_categorical(y_val, classes))

    model, base = build_model(settings, weights_file)
    phases = phase_plan(settings["protocol"], settings["epochs"])
    callbacks, backup = make_callbacks(keras, phases, len(x_train), partial_history, backup_dir)

    def enter_phase(phase: str) -> None:
        set_phase_trainability(base, phase, settings["protocol"]["unfreeze_top_layers"])
        model.compile(
            optimizer=build_optimizer(settings["optimizer"], settings["learning_rate"], settings["optimizer_params"]),
            loss=settings["loss"],
            metrics=settings["metrics"],
            jit_compile=settings.get("jit_compile", "auto"),
        )

    start = completed_epochs(backup_dir)
    keep_history_rows(partial_history, start)
    current = phases[start - 1] if start else phases[0]
    enter_phase(current)
    if start:
        backup.restore(model)
        log.info("resuming at epoch %d of %d from %s", start + 1, len(phases), backup_dir)
        provenance.resumed_at_epoch = start + 1
    for epoch in range(start, len(phases)):
        if phases[epoch] != current:
            current = phases[epoch]
            log.info("epoch %d: entering phase %s", epoch + 1, current)
            enter_phase(current)
        order = epoch_order(settings["seed"], epoch, len(x_train))
        model.fit(
            x=x_train[order],
            y=y_train[order],
            batch_size=settings["batch_size"],
            initial_epoch=epoch,
            epochs=epoch + 1,
            shuffle=False,
            validation_data=validation,
            callbacks=callbacks,
            verbose=verbose,
        )

    history = write_history(partial_history, history_path)
    partial_model = model_path.with_name(model_path.stem + ".partial.keras")
    model.save(partial_model)
    partial_model.replace(model_path)
    provenance.finish(provenance_path, keras)
    shutil.rmtree(resume_dir)
    return history
