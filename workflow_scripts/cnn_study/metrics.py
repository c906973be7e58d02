"""Tidy metrics from the runs' history files: the only input of figures and tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cnn_study.files import write_table

RUN_KEYS = ["model", "optimizer", "lr", "seed"]
EPOCH_COLUMNS = RUN_KEYS + [
    "phase", "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds", "images_per_second",
]


def run_from_path(history_path: str | Path) -> dict:
    """results/runs/{model}/{optimizer}/lr{lr}/seed{seed}/history.csv -> the run's keys."""
    parts = Path(history_path).parts
    model, optimizer, lr, seed = parts[-5], parts[-4], parts[-3], parts[-2]
    return {"model": model, "optimizer": optimizer, "lr": float(lr.removeprefix("lr")), "seed": int(seed.removeprefix("seed"))}


def collect_epochs(history_paths: list[str | Path]) -> pd.DataFrame:
    frames = []
    for path in history_paths:
        history = pd.read_csv(path)
        for key, value in run_from_path(path).items():
            history[key] = value
        frames.append(history)
    epochs = pd.concat(frames, ignore_index=True)[EPOCH_COLUMNS]
    return epochs.sort_values(RUN_KEYS + ["epoch"], kind="stable").reset_index(drop=True)


def write_metrics(history_paths: list[str], epochs_path: str, summary_path: str, target_accuracy: float) -> None:
    from cnn_study.summary_stats import summarize_runs

    epochs = collect_epochs(history_paths)
    write_table(epochs, epochs_path)
    write_table(summarize_runs(epochs, target_accuracy), summary_path)
