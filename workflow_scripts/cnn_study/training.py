"""One training run: build, train phase by phase with per-epoch backups, write history, model and provenance.

Each phase (frozen warm-up, fine-tuning) is one ``fit`` call. The training set is fed in an order
drawn from (seed, epoch), and the random layers (augmentation, dropout) are re-seeded from
(seed, epoch) at each epoch's start. An epoch's data order and random draws therefore do not depend
on how many epochs ran before in this process, and a run resumed from its backup (weights and
optimizer state) continues exactly as an uninterrupted run would: its history is bit-identical,
timing columns aside.

The backup is written after every epoch by a background thread, so that a kill at any instant leaves
a usable state: each epoch's state goes to a new file, and the small metadata file naming it (the
commit point) is replaced atomically once that file is complete (cnn_study.training_callbacks).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from cnn_study.backend import configure_backend
from cnn_study.files import write_table
from cnn_study.image_cache import load_split
from cnn_study.provenance import Provenance
from cnn_study.resume_state import completed_epochs, first_start, keep_history_rows, prepare_resume_dir
from cnn_study.run_layout import PARTIAL_HISTORY, backup_folder
from cnn_study.run_model import save_run_model
from cnn_study.schedule import FINE_TUNE, phase_plan, phase_spans, steps_per_execution_for

log = logging.getLogger(__name__)

HISTORY_COLUMNS = [
    "epoch",
    "phase",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "learning_rate",
    "epoch_seconds",
    "epoch_cpu_seconds",
    "images_per_second",
]
TIMING_COLUMNS = ["epoch_seconds", "epoch_cpu_seconds", "images_per_second"]


def phase_learning_rate(keras, settings: dict, phase: str, phases: list[str], steps_per_epoch: int):
    """A phase's learning rate: the grid's, or protocol.fine_tune_learning_rate after the warm-up. With
    lr_schedule cosine, a schedule that decays it to 0 over the phase's steps (it reads the optimizer's step
    count, which the backup restores, so a resumed run follows the same curve)."""
    rate = settings["learning_rate"]
    if phase == FINE_TUNE and settings["protocol"]["fine_tune_learning_rate"] is not None:
        rate = float(settings["protocol"]["fine_tune_learning_rate"])
    if settings["lr_schedule"] == "cosine":
        return keras.optimizers.schedules.CosineDecay(rate, decay_steps=phases.count(phase) * steps_per_epoch)
    return rate


def write_history(partial_history: Path, history_path: Path) -> pd.DataFrame:
    rows = pd.read_csv(partial_history)
    rows["epoch"] = rows["epoch"] + 1  # CSVLogger counts from 0; the paper's figures from 1
    rows = rows[HISTORY_COLUMNS]
    write_table(rows, history_path)
    return rows


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
    gpus: int = 0,
    keep: str = "model",
) -> pd.DataFrame:
    """Train one run of the grid and write its outputs; resumes from `resume_dir` after a kill.

    settings: the run's resolved settings (cnn_study.settings.run_settings), recorded in run.json.
    data: paths of the decode-once cache (train_images, train_labels, val_images, val_labels).
    weights_file: the backbone's ImageNet weights, or None for random initial weights.
    history_path, model_path, provenance_path: the run's outputs (history.csv, model.keras, run.json),
    each written to a partial file and renamed.
    resume_dir: where the resume state (backup, partial history, settings) lives between attempts;
    removed once the run is complete, discarded if its settings differ from these.
    threads: CPU threads for the backend. verbose: Keras' progress output (2: a line per epoch).
    Returns the history (one row per epoch, HISTORY_COLUMNS)."""
    provenance = Provenance.start(settings)
    keras = configure_backend(threads, settings["seed"], settings["deterministic"], settings["backend"], gpus)
    provenance.extra["gpus_requested"] = gpus
    from cnn_study.models import build_model, fuse_batch_norm, set_phase_trainability
    from cnn_study.optimizers import build_optimizer
    from cnn_study.training_callbacks import (
        AsyncBackup,
        BatchNormStatistics,
        EpochProgress,
        EpochSeeds,
        EpochStats,
        plateau_callback,
        training_batches,
    )

    history_path, resume_dir = Path(history_path), Path(resume_dir)
    backup_dir, partial_history = backup_folder(resume_dir), resume_dir / PARTIAL_HISTORY
    prepare_resume_dir(resume_dir, settings, HISTORY_COLUMNS)
    provenance.first_started_at = first_start(resume_dir, provenance.started_at)

    x_train, y_train = load_split(data["train_images"], data["train_labels"])
    x_val, y_val = load_split(data["val_images"], data["val_labels"])
    classes = len(settings["classes"])
    # float32 one-hot labels (to_categorical gives float64, which every batch would otherwise carry and cast)
    y_train = keras.utils.to_categorical(y_train, classes).astype("float32")
    validation = (np.asarray(x_val), keras.utils.to_categorical(y_val, classes).astype("float32"))

    precision = settings["precision"]
    if precision != "float32":
        keras.config.set_dtype_policy(precision)  # before the model is built; the output layer stays float32
    model, base = build_model(settings, weights_file)
    provenance.extra["fused_batch_norm_layers"] = fuse_batch_norm(model)
    phases = phase_plan(settings["protocol"], settings["epochs"])
    batch_size = settings["batch_size"]
    if batch_size > len(x_train):
        raise ValueError(
            f"training.batch_size = {batch_size} is larger than the training set ({len(x_train)} images in "
            f"{data['train_images']}); lower it"
        )
    steps = -(-len(x_train) // batch_size)
    steps_per_execution = steps_per_execution_for(settings["steps_per_execution"], steps)
    if steps_per_execution != settings["steps_per_execution"]:
        log.info(
            "steps_per_execution %d: lowered to %d, a divisor of the %d steps of an epoch",
            settings["steps_per_execution"],
            steps_per_execution,
            steps,
        )
    backup = AsyncBackup(backup_dir)
    # Order matters: EpochStats fills the logs that CSVLogger writes; the backup follows the row.
    # After EpochStats, whose clock stops where the training steps end; before the validation that uses them.
    recompute = [BatchNormStatistics(x_train, batch_size)] if settings["batch_norm_statistics"] == "recomputed" else []
    callbacks = [
        EpochProgress(len(phases)),
        EpochSeeds(settings["seed"]),
        EpochStats(phases, len(x_train)),
        *recompute,
        keras.callbacks.CSVLogger(str(partial_history), append=True),
        backup,
    ]

    def enter_phase(phase: str) -> None:
        protocol = settings["protocol"]
        set_phase_trainability(base, phase, protocol["unfreeze_top_layers"], protocol["batch_norm"])
        rate = phase_learning_rate(keras, settings, phase, phases, steps)
        model.compile(
            optimizer=build_optimizer(settings["optimizer"], rate, settings["optimizer_params"]),
            loss=settings["loss"],
            metrics=settings["metrics"],
            jit_compile=settings["jit_compile"],
            steps_per_execution=steps_per_execution,
        )

    start = min(completed_epochs(backup_dir), len(phases))
    keep_history_rows(partial_history, start)
    if settings["lr_schedule"] == "reduce_on_plateau":
        rates = {phase: phase_learning_rate(keras, settings, phase, phases, steps) for phase in set(phases)}
        callbacks.insert(0, plateau_callback(rates, phases, partial_history))
    current = None
    if start:
        # The backup holds the state at the end of epoch `start`: restore it into that epoch's phase,
        # whose trainable variables match the optimizer state saved with it.
        current = phases[start - 1]
        enter_phase(current)
        backup.restore(model)
        log.info("resuming at epoch %d of %d from %s", start + 1, len(phases), backup_dir)
        provenance.resumed_at_epoch = start + 1
    for first, end in phase_spans(phases, start):
        if phases[first] != current:
            if current is not None:
                log.info("epoch %d: entering phase %s (recompiling with a fresh optimizer)", first + 1, phases[first])
            current = phases[first]
            enter_phase(current)
        model.fit(
            training_batches(x_train, y_train, batch_size, settings["seed"], first, end),
            steps_per_epoch=steps,
            shuffle=False,  # the feed gives each epoch's order
            initial_epoch=first,
            epochs=end,
            validation_data=validation,
            validation_batch_size=batch_size,
            callbacks=callbacks,
            verbose=verbose,
        )
    backup.wait()

    history = write_history(partial_history, history_path)
    provenance.extra["model_file"] = save_run_model(model, keep, model_path)
    provenance.extra["training_seconds"] = round(float(history["epoch_seconds"].sum()), 3)
    provenance.finish(provenance_path, keras)
    shutil.rmtree(resume_dir)
    return history
