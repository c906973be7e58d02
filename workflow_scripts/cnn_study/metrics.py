"""The metrics stage: every run's history gathered into tidy tables, the only input of figures, tables and claims.

- ``epochs.csv``: one row per (run, epoch).
- ``runs.csv``: one row per run with every per-run value (:func:`run_metrics`), computed here once.
- ``summary.csv``: one row per (arm, model, optimizer, lr) over seeds (:func:`cnn_study.summary_stats.summarize_runs`).
- ``arms.csv``: one row per arm: whether it is the reference arm, and the settings it changes against it.

A run's keys (arm, model, optimizer, lr, seed) come from the run grid that the rule passes forward, and an arm's
changes from the study's config, never from the folder a file lies in.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from cnn_study.files import write_table
from cnn_study.metric_columns import CI_LEVEL, CURVES, EARLY_HORIZON, EPOCH_COLUMNS, RUN_KEYS, horizon_suffix
from cnn_study.schedule import warmup_length
from cnn_study.summary_stats import summarize_runs

#: "Stable after 15 epochs" is judged on the epochs after this one; runs need at least MIN_EPOCHS_FOR_STABILITY.
STABLE_AFTER_EPOCH = 15
MIN_EPOCHS_FOR_STABILITY = 20
#: "Slower": judged on the first EARLY_EPOCHS epochs after the warm-up (frozen epochs are not judged).
EARLY_EPOCHS = 10


def _curve_values(history: pd.DataFrame, final_epochs: int, suffix: str) -> dict:
    values = {}
    for curve in CURVES:
        series = history[curve].astype(float)
        best = series.min() if "loss" in curve else series.max()
        values[f"last_{curve}{suffix}"] = float(series.iloc[-1]) if len(series) else math.nan
        # The mean of the last k epochs: one noisy epoch (dropout, augmentation) does not decide.
        values[f"final_{curve}{suffix}"] = float(series.iloc[-final_epochs:].mean()) if len(series) else math.nan
        values[f"best_{curve}{suffix}"] = float(best) if len(series) else math.nan
    return values


def _after_warmup(history: pd.DataFrame, warmup: int, target_accuracy: float, horizon: int) -> dict:
    """Epochs to the target counted from the end of the warm-up (never reached: horizon - warmup + 1) and the
    mean training accuracy and loss of the first EARLY_EPOCHS epochs after it (NaN when the horizon ends sooner,
    or the history lacks one of them)."""
    after = history[(history["epoch"] > warmup) & (history["epoch"] <= horizon)]
    hit = after.loc[after["accuracy"] >= target_accuracy, "epoch"]
    early = after[after["epoch"] <= warmup + EARLY_EPOCHS]
    # Distinct whole epochs (run_metrics refuses duplicates): all of them only when the horizon reaches them.
    complete = len(early) == EARLY_EPOCHS
    return {
        "epochs_to_target_after_warmup": float(hit.min() - warmup) if len(hit) else float(horizon - warmup + 1),
        "early_accuracy": float(early["accuracy"].mean()) if complete else math.nan,
        "early_loss": float(early["loss"].mean()) if complete else math.nan,
    }


def swing(values: np.ndarray) -> float:
    """Epoch-to-epoch swings of a curve: the mean absolute change per epoch beyond its net change, i.e. 0 for a
    curve that only rises (or only falls), and twice its falls per epoch for one that rises overall (NaN for
    fewer than 2 values)."""
    if values.size < 2:
        return math.nan
    changes = np.diff(values)
    return float((np.abs(changes).sum() - abs(changes.sum())) / changes.size)


def _after_epoch_15(history: pd.DataFrame, values: dict) -> dict:
    """Has training settled after epoch STABLE_AFTER_EPOCH (C4)?  Training accuracy: its largest fall below an
    earlier peak and its rise from epoch 15 to the end (final value minus the final value at epoch 15); training
    loss: its largest rise above an earlier low and its fall from epoch 15 to the end."""
    after = history[history["epoch"] > STABLE_AFTER_EPOCH]
    suffix = horizon_suffix(EARLY_HORIZON)
    return {
        "max_drop_after_15": max_drop(after["accuracy"].to_numpy(float)),
        "rise_after_15": values["final_accuracy"] - values[f"final_accuracy{suffix}"],
        "loss_max_rise_after_15": max_drop(-after["loss"].to_numpy(float)),
        "loss_fall_after_15": values[f"final_loss{suffix}"] - values["final_loss"],
    }


def _overfitting_and_swings(history: pd.DataFrame, warmup: int, values: dict) -> dict:
    """C7's overfitting (the train-validation accuracy gap of the final values, and the rise of the final
    validation loss above its lowest epoch) and C9's swings of accuracy after the warm-up (:func:`swing`)."""
    after = history[history["epoch"] > warmup]
    return {
        "generalization_gap": values["final_accuracy"] - values["final_val_accuracy"],
        "val_loss_rise": values["final_val_loss"] - values["best_val_loss"],
        "accuracy_swing": swing(after["accuracy"].to_numpy(float)),
        "val_accuracy_swing": swing(after["val_accuracy"].to_numpy(float)),
    }


def max_drop(values: np.ndarray) -> float:
    """The largest fall of a curve below its earlier peak: a smooth rise, however slow, has none."""
    return float((np.maximum.accumulate(values) - values).max()) if values.size else math.nan


def run_metrics(epochs: pd.DataFrame, target_accuracy: float, final_epochs: int = 5) -> pd.DataFrame:
    """One row per run: every per-run value that tables, figures and claims use.

    For the run's last epoch (no suffix) and for epoch EARLY_HORIZON (suffix ``_e15``; NaN when the run is
    shorter), per curve (accuracy, loss, val_accuracy, val_loss): ``last_*`` (that epoch), ``final_*`` (mean
    of the ``final_epochs`` epochs ending there) and ``best_*`` (max accuracy, min loss up to there). Also
    ``warmup_epochs`` (leading frozen epochs), ``epochs_to_target`` (first epoch whose training accuracy
    reaches ``target_accuracy``, NaN if never), ``epochs_to_target_after_warmup``, ``early_accuracy`` and
    ``early_loss`` (see :func:`_after_warmup`; per horizon), ``max_drop_after_15``, ``rise_after_15``,
    ``loss_max_rise_after_15`` and ``loss_fall_after_15`` (see :func:`_after_epoch_15`; NaN for runs shorter than
    MIN_EPOCHS_FOR_STABILITY), ``generalization_gap``, ``val_loss_rise``, ``accuracy_swing`` and
    ``val_accuracy_swing`` (see :func:`_overfitting_and_swings`), ``diverged`` / ``diverged_epoch`` (first epoch
    with a NaN loss) and ``total_train_seconds``.
    """
    missing = [c for c in RUN_KEYS + ["phase", "epoch", *CURVES, "epoch_seconds"] if c not in epochs.columns]
    if missing:
        raise ValueError(f"epochs table lacks columns: {', '.join(missing)}")
    duplicated = epochs.duplicated(subset=RUN_KEYS + ["epoch"], keep=False)
    if duplicated.any():
        first = epochs.loc[duplicated, RUN_KEYS + ["epoch"]].iloc[0].to_dict()
        raise ValueError(f"epochs table has duplicate (run, epoch) rows, e.g. {first}")
    rows = []
    for key, history in epochs.sort_values(RUN_KEYS + ["epoch"]).groupby(RUN_KEYS, sort=True):
        row = dict(zip(RUN_KEYS, key, strict=True))
        n_epochs = int(history["epoch"].max())
        warmup = warmup_length(history["phase"].tolist())
        nan_loss = history.loc[history["loss"].isna(), "epoch"]
        row.update(
            n_epochs=n_epochs,
            warmup_epochs=warmup,
            target_accuracy=float(target_accuracy),
            final_epochs=int(final_epochs),
            diverged=bool(len(nan_loss)),
            diverged_epoch=float(nan_loss.min()) if len(nan_loss) else math.nan,
        )
        for horizon in (None, EARLY_HORIZON):
            suffix = horizon_suffix(horizon)
            upto = history if horizon is None else history[history["epoch"] <= horizon]
            reached = horizon is None or n_epochs >= horizon
            values = {**_curve_values(upto, final_epochs, suffix)}
            for name, value in _after_warmup(history, warmup, target_accuracy, horizon or n_epochs).items():
                values[f"{name}{suffix}"] = value
            row.update(values if reached else {name: math.nan for name in values})
        hit = history.loc[history["accuracy"] >= target_accuracy, "epoch"]
        row["epochs_to_target"] = float(hit.min()) if len(hit) else math.nan
        settled = _after_epoch_15(history, row)
        row.update(settled if n_epochs >= MIN_EPOCHS_FOR_STABILITY else dict.fromkeys(settled, math.nan))
        row.update(_overfitting_and_swings(history, warmup, row))
        row["total_train_seconds"] = float(history["epoch_seconds"].astype(float).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def binomial_ci(correct: int, total: int, level: float = CI_LEVEL) -> tuple[float, float]:
    """Wilson interval of one run's test accuracy (correct of total images)."""
    if total <= 0:
        return math.nan, math.nan
    interval = stats.binomtest(int(correct), int(total)).proportion_ci(confidence_level=level, method="wilson")
    return float(interval.low), float(interval.high)


def add_test_results(runs: pd.DataFrame, test_results: list[dict]) -> pd.DataFrame:
    """Join each run's test evaluation (keys + test_loss, test_accuracy, test_correct, test_images)."""
    if not test_results:
        return runs
    tests = pd.DataFrame(test_results)
    bounds = [binomial_ci(c, n) for c, n in zip(tests["test_correct"], tests["test_images"], strict=True)]
    tests["test_accuracy_ci95_low"], tests["test_accuracy_ci95_high"] = zip(*bounds, strict=True)
    tests["lr"] = tests["lr"].astype(float)
    tests["seed"] = tests["seed"].astype(int)
    return runs.merge(tests, on=RUN_KEYS, how="left", validate="one_to_one")


def collect_epochs(history_paths: list[str | Path], runs: list[dict]) -> pd.DataFrame:
    """The histories, each tagged with the keys of its run (``runs[i]`` describes ``history_paths[i]``)."""
    if len(history_paths) != len(runs):
        raise ValueError(f"{len(history_paths)} histories but {len(runs)} runs: the rule must pass one run per file")
    frames = []
    for path, run in zip(history_paths, runs, strict=True):
        history = pd.read_csv(path)
        missing = [column for column in EPOCH_COLUMNS if column not in RUN_KEYS and column not in history.columns]
        if missing:
            raise ValueError(f"{path}: lacks the column(s) {', '.join(missing)}; delete it to train the run again")
        for key in RUN_KEYS:
            history[key] = run[key]
        frames.append(history)
    epochs = pd.concat(frames, ignore_index=True)
    epochs["lr"], epochs["seed"] = epochs["lr"].astype(float), epochs["seed"].astype(int)
    return epochs[EPOCH_COLUMNS].sort_values(RUN_KEYS + ["epoch"], kind="stable").reset_index(drop=True)


def read_test_results(test_paths: list[str | Path], runs: list[dict]) -> list[dict]:
    """Each run's test evaluation with its keys (``runs[i]`` describes ``test_paths[i]``); none without a test split."""
    if not test_paths:
        return []
    if len(test_paths) != len(runs):
        raise ValueError(f"{len(test_paths)} test results but {len(runs)} runs: the rule must pass one run per file")
    return [
        {**{key: run[key] for key in RUN_KEYS}, **json.loads(Path(path).read_text())}
        for path, run in zip(test_paths, runs, strict=True)
    ]


ARM_COLUMNS = ["arm", "reference", "changes", "described"]


def arm_table(arm_changes: dict[str, dict], reference_arm: str) -> pd.DataFrame:
    """One row per arm (in the study's order): ``reference`` (the arm the others are compared with),
    ``changes`` (JSON: {setting: value} that differ from the reference arm) and ``described`` (the same, for
    people: ``training.augmentation.enabled=false``; empty for the reference)."""
    rows = [
        {
            "arm": arm,
            "reference": arm == reference_arm,
            "changes": json.dumps(changes, sort_keys=True),
            "described": "; ".join(f"{key}={json.dumps(value)}" for key, value in sorted(changes.items())),
        }
        for arm, changes in arm_changes.items()
    ]
    return pd.DataFrame(rows, columns=ARM_COLUMNS)


def write_metrics(
    history_paths: list[str],
    runs: list[dict],
    outputs: dict,
    target_accuracy: float,
    final_epochs: int,
    arm_changes: dict[str, dict],
    reference_arm: str,
    test_paths: list[str] = (),
) -> None:
    """outputs: {'epochs': epochs.csv, 'runs': runs.csv, 'summary': summary.csv, 'arms': arms.csv}."""
    epochs = collect_epochs(history_paths, runs)
    per_run = add_test_results(run_metrics(epochs, target_accuracy, final_epochs), read_test_results(test_paths, runs))
    write_table(epochs, outputs["epochs"])
    write_table(per_run, outputs["runs"])
    write_table(summarize_runs(per_run), outputs["summary"])
    write_table(arm_table(arm_changes, reference_arm), outputs["arms"])
