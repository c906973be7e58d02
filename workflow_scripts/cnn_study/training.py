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

import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from cnn_study.backend import configure_backend
from cnn_study.files import atomic_write, write_table
from cnn_study.image_cache import load_split
from cnn_study.provenance import Provenance
from cnn_study.run_model import save_run_model

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
    "images_per_second",
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


def phase_learning_rate(keras, settings: dict, phase: str, phases: list[str], steps_per_epoch: int):
    """A phase's learning rate: the grid's, or protocol.fine_tune_learning_rate after the warm-up. With
    lr_schedule cosine, a schedule that decays it to 0 over the phase's steps (it reads the optimizer's step
    count, which the backup restores, so a resumed run follows the same curve)."""
    rate = settings["learning_rate"]
    if phase == "fine_tune" and settings["protocol"].get("fine_tune_learning_rate") is not None:
        rate = float(settings["protocol"]["fine_tune_learning_rate"])
    if settings.get("lr_schedule", "none") == "cosine":
        return keras.optimizers.schedules.CosineDecay(rate, decay_steps=phases.count(phase) * steps_per_epoch)
    return rate


PLATEAU_FACTOR, PLATEAU_PATIENCE, PLATEAU_MIN_DELTA = 0.5, 3, 1e-4


def plateau_learning_rate(rate: float, val_losses: list[float]) -> float:
    """Keras ReduceLROnPlateau's rule (monitor val_loss, cooldown 0) replayed over a phase's validation losses:
    after PLATEAU_PATIENCE epochs without a new best, the rate is multiplied by PLATEAU_FACTOR."""
    best, wait = math.inf, 0
    for loss in val_losses:
        if loss < best - PLATEAU_MIN_DELTA:
            best, wait = loss, 0
            continue
        wait += 1
        if wait >= PLATEAU_PATIENCE:
            rate, wait = rate * PLATEAU_FACTOR, 0
    return rate


def plateau_callback(keras, rates: dict[str, float], phases: list[str], partial_history: Path):
    """lr_schedule reduce_on_plateau: before each epoch, the rate follows from the phase's validation losses so
    far (the resumed epochs' rows included). Replayed from the history instead of Keras' callback state, so a
    resumed run uses exactly the rates of an uninterrupted one, however the fit calls are cut."""
    losses = []
    if partial_history.exists():
        done = pd.read_csv(partial_history)
        losses += list(zip(done["phase"], done["val_loss"].astype(float)))

    def set_rate(epoch, logs=None):
        phase = phases[epoch]
        callback.model.optimizer.learning_rate = plateau_learning_rate(
            rates[phase], [v for p, v in losses if p == phase]
        )

    def record(epoch, logs=None):
        losses.append((phases[epoch], float(logs["val_loss"])))

    callback = keras.callbacks.LambdaCallback(on_epoch_begin=set_rate, on_epoch_end=record)
    return callback


def epoch_order(seed: int, epoch: int, count: int) -> np.ndarray:
    """The training set's order in one epoch: a function of (seed, epoch) alone."""
    return np.random.default_rng([seed, epoch]).permutation(count)


def steps_per_execution_for(requested: int, steps: int) -> int:
    """The largest divisor of an epoch's steps that is at most `requested`: an execution (several
    steps in one device call) then never crosses an epoch's end, where validation and the backup run."""
    return max(d for d in range(1, min(requested, steps) + 1) if steps % d == 0)


# The resume folder of an unfinished run: Keras backup state, the history rows so far, the settings it belongs to.
BACKUP_FOLDER = "backup"
PARTIAL_HISTORY = "history.csv"
RESUME_SETTINGS = "settings.json"
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
    with atomic_write(path, durable=True) as partial:
        partial.write_text(text)


def reseed_random_layers(model, seed: int, epoch: int) -> None:
    """Set every random layer's generator (augmentation, dropout) to a state drawn from (seed, epoch, layer),
    so an epoch's random draws do not depend on the epochs run before it in this process."""
    states = [v for v in model.variables if v.name == "seed_generator_state"]
    for index, state in enumerate(states):
        value = int(np.random.default_rng([seed, epoch, index]).integers(1, 2**31 - 1))
        state.assign(np.array([value, 0], dtype=state.dtype))


def phase_spans(phases: list[str], start: int) -> list[tuple[int, int]]:
    """[first, end) epoch ranges of equal phase from epoch `start` on: one fit call each."""
    spans = []
    for epoch in range(start, len(phases)):
        if spans and phases[epoch] == phases[spans[-1][0]]:
            spans[-1] = (spans[-1][0], epoch + 1)
        else:
            spans.append((epoch, epoch + 1))
    return spans


def prepare_resume_dir(resume_dir: Path, settings: dict) -> None:
    """Keep the resume folder only if it belongs to these settings; a changed config starts afresh."""
    recorded = resume_dir / RESUME_SETTINGS
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
    write_table(rows, history_path)
    return rows


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
    keras = configure_backend(threads, settings["seed"], settings["deterministic"], settings.get("backend"), gpus)
    provenance.extra["gpus_requested"] = gpus
    from cnn_study.models import build_model, set_phase_trainability
    from cnn_study.optimizers import build_optimizer
    from cnn_study.training_callbacks import AsyncBackup, EpochBatches, EpochProgress, EpochSeeds, EpochStats

    history_path, resume_dir = Path(history_path), Path(resume_dir)
    backup_dir, partial_history = resume_dir / BACKUP_FOLDER, resume_dir / PARTIAL_HISTORY
    prepare_resume_dir(resume_dir, settings)
    provenance.first_started_at = first_start(resume_dir, provenance.started_at)

    x_train, y_train = load_split(data["train_images"], data["train_labels"])
    x_val, y_val = load_split(data["val_images"], data["val_labels"])
    classes = len(settings["classes"])
    y_train = keras.utils.to_categorical(y_train, classes)
    validation = (np.asarray(x_val), keras.utils.to_categorical(y_val, classes))

    precision = settings.get("precision", "float32")
    if precision != "float32":
        keras.config.set_dtype_policy(precision)  # before the model is built; the output layer stays float32
    model, base = build_model(settings, weights_file)
    phases = phase_plan(settings["protocol"], settings["epochs"])
    batch_size = settings["batch_size"]
    steps = -(-len(x_train) // batch_size)
    steps_per_execution = steps_per_execution_for(settings.get("steps_per_execution", 1), steps)
    if steps_per_execution != settings.get("steps_per_execution", 1):
        log.info(
            "steps_per_execution %d: lowered to %d, a divisor of the %d steps of an epoch",
            settings["steps_per_execution"],
            steps_per_execution,
            steps,
        )
    backup = AsyncBackup(backup_dir)
    # Order matters: EpochStats fills the logs that CSVLogger writes; the backup follows the row.
    callbacks = [
        EpochProgress(len(phases)),
        EpochSeeds(settings["seed"]),
        EpochStats(phases, len(x_train)),
        keras.callbacks.CSVLogger(str(partial_history), append=True),
        backup,
    ]

    def enter_phase(phase: str) -> None:
        protocol = settings["protocol"]
        set_phase_trainability(base, phase, protocol["unfreeze_top_layers"], protocol.get("batch_norm", "frozen"))
        rate = phase_learning_rate(keras, settings, phase, phases, steps)
        model.compile(
            optimizer=build_optimizer(settings["optimizer"], rate, settings["optimizer_params"]),
            loss=settings["loss"],
            metrics=settings["metrics"],
            jit_compile=settings.get("jit_compile", "auto"),
            steps_per_execution=steps_per_execution,
        )

    start = min(completed_epochs(backup_dir), len(phases))
    keep_history_rows(partial_history, start)
    if settings.get("lr_schedule") == "reduce_on_plateau":
        rates = {phase: phase_learning_rate(keras, settings, phase, phases, steps) for phase in set(phases)}
        callbacks.insert(0, plateau_callback(keras, rates, phases, partial_history))
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
            EpochBatches(x_train, y_train, batch_size, settings["seed"], first),
            steps_per_epoch=steps,
            shuffle=False,  # EpochBatches gives each epoch's order
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
