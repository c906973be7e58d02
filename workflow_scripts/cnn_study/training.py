"""One training run: build, train phase by phase with per-epoch backups, write history, model and provenance.

Each epoch is one ``fit`` call on the training set in an order drawn from (seed, epoch), and the
random layers (augmentation, dropout) are re-seeded from (seed, epoch) before it. An epoch's data
order and random draws therefore do not depend on how many epochs ran before in this process, and a
run resumed from its BackupAndRestore state (weights and optimizer state) continues exactly as an
uninterrupted run would: its history is bit-identical, timing columns aside.

The backup is written so that a kill at any instant leaves a usable state: each epoch's weights go
to a new file, and the small metadata file naming it (the commit point) is replaced atomically.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cnn_study.backend import configure_backend
from cnn_study.image_cache import load_split
from cnn_study.provenance import Provenance
from cnn_study.run_model import save_run_model

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


BACKUP_METADATA = "training_metadata.json"


def backup_metadata(backup_dir: Path) -> dict | None:
    """The committed backup: {"epoch": epochs done, "weights": file name}, or None if there is none."""
    metadata = Path(backup_dir) / BACKUP_METADATA
    if not metadata.exists():
        return None
    record = json.loads(metadata.read_text())
    if not (Path(backup_dir) / record.get("weights", "")).is_file():
        return None
    return record


def completed_epochs(backup_dir: Path) -> int:
    record = backup_metadata(backup_dir)
    return int(record["epoch"]) if record else 0


def write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)


def fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def reseed_random_layers(model, seed: int, epoch: int) -> None:
    """Set every random layer's generator (augmentation, dropout) to a state drawn from (seed, epoch, layer),
    so an epoch's random draws do not depend on the epochs run before it in this process."""
    states = [v for v in model.variables if v.name == "seed_generator_state"]
    for index, state in enumerate(states):
        value = int(np.random.default_rng([seed, epoch, index]).integers(1, 2**31 - 1))
        state.assign(np.array([value, 0], dtype=state.dtype))


def prepare_resume_dir(resume_dir: Path, settings: dict) -> None:
    """Keep the resume folder only if it belongs to these settings; a changed config starts afresh."""
    recorded = resume_dir / "settings.json"
    if recorded.exists() and json.loads(recorded.read_text()) != json.loads(json.dumps(settings)):
        log.warning("settings changed since the interrupted attempt: discarding %s and starting afresh", resume_dir)
        shutil.rmtree(resume_dir)
    resume_dir.mkdir(parents=True, exist_ok=True)
    if not recorded.exists():
        write_atomic(recorded, json.dumps(settings, indent=2, sort_keys=True))


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
        """BackupAndRestore for one fit call per epoch: saves after every epoch, restores once when asked,
        keeps the backup until the run is complete.

        Keras' own save writes the weights in place and then the metadata, so a kill in between leaves
        weights one epoch ahead of the metadata (or a half-written file). Here each epoch's weights go
        to a new file and the metadata naming it is replaced atomically afterwards: whatever instant the
        kill lands on, the metadata names a complete file of the epoch it states. Keras' restore also
        sets ``model._initial_epoch``, which every later ``fit`` call would start from; it is not used."""

        def __init__(self, directory):
            super().__init__(str(directory), delete_checkpoint=False)

        def on_train_begin(self, logs=None):
            pass  # restore() does it once, before the first fit

        def on_train_end(self, logs=None):
            pass  # train_run removes the resume folder once the run is complete

        def _save_model(self):
            directory = Path(self.backup_dir)
            directory.mkdir(parents=True, exist_ok=True)
            weights = directory / f"epoch-{self._current_epoch:04d}.weights.h5"
            self.model.save_weights(str(weights), overwrite=True)
            fsync_file(weights)
            record = {"epoch": self._current_epoch, "batch": 0, "weights": weights.name}
            write_atomic(directory / BACKUP_METADATA, json.dumps(record))
            for stale in directory.glob("*.weights.h5"):
                if stale != weights:
                    stale.unlink()

        def restore(self, model) -> int:
            """Load the committed backup into the compiled model; returns the epochs it covers."""
            self.set_model(model)
            record = backup_metadata(Path(self.backup_dir))
            if record is None:
                return 0
            if model.optimizer is not None and not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            model.load_weights(str(Path(self.backup_dir) / record["weights"]))
            self._current_epoch = int(record["epoch"])
            return self._current_epoch

    progress = EpochProgress()
    csv_logger = keras.callbacks.CSVLogger(str(partial_history), append=True)
    backup = EpochBackup(backup_dir)
    # Order matters: EpochStats fills the logs that CSVLogger writes; the backup follows the row.
    return [progress, EpochStats(), csv_logger, backup], backup


def first_start(resume_dir: Path, started_at: str) -> str:
    """When the run's first attempt started (kept in the resume folder across attempts)."""
    path = resume_dir / "started_at"
    if not path.exists():
        write_atomic(path, started_at)
    return path.read_text().strip()


def train_run(
    settings: dict,
    data: dict,
    weights_file: str | None,
    history_path: str | Path,
    model_path: str | Path | None,
    provenance_path: str | Path,
    resume_dir: str | Path,
    threads: int = 1,
    verbose: int = 2,
    keep: str = "model",
) -> pd.DataFrame:
    provenance = Provenance.start(settings)
    keras = configure_backend(threads, settings["seed"], settings["deterministic"])
    from cnn_study.models import build_model, set_phase_trainability
    from cnn_study.optimizers import build_optimizer

    history_path, resume_dir = Path(history_path), Path(resume_dir)
    backup_dir, partial_history = resume_dir / "backup", resume_dir / "history.csv"
    prepare_resume_dir(resume_dir, settings)
    provenance.first_started_at = first_start(resume_dir, provenance.started_at)

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

    start = min(completed_epochs(backup_dir), len(phases))
    keep_history_rows(partial_history, start)
    # The backup holds the state at the end of epoch `start`: restore it into that epoch's phase,
    # whose trainable variables match the optimizer state saved with it.
    current = phases[start - 1] if start else phases[0]
    enter_phase(current)
    if start:
        backup.restore(model)
        log.info("resuming at epoch %d of %d from %s", start + 1, len(phases), backup_dir)
        provenance.resumed_at_epoch = start + 1
    for epoch in range(start, len(phases)):
        if phases[epoch] != current:
            current = phases[epoch]
            log.info("epoch %d: entering phase %s (recompiling with a fresh optimizer)", epoch + 1, current)
            enter_phase(current)
        reseed_random_layers(model, settings["seed"], epoch)
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
    provenance.extra["model_file"] = save_run_model(model, keep, model_path)
    provenance.extra["training_seconds"] = round(float(history["epoch_seconds"].sum()), 3)
    provenance.finish(provenance_path, keras)
    shutil.rmtree(resume_dir)
    return history
