"""Where every run of the grid stands, read from what training writes while it runs.

A finished run has history.csv and run.json. An unfinished one has its resume/ folder (see
cnn_study.training): settings.json (the run's settings, so its epochs and phases), history.csv
(CSVLogger's rows so far, epochs counted from 0) and backup/training_metadata.json (epochs whose state
is saved). Nothing else is needed, so it works the same on a workstation and on a cluster's shared
file system while jobs run.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import pandas as pd
import yaml

from cnn_study.settings import run_grid
from cnn_study.training import BACKUP_FOLDER, BACKUP_METADATA, PARTIAL_HISTORY, RESUME_SETTINGS, phase_plan

RUNS_DIR = Path("results/runs")
RUN_PATH = "{model}/{optimizer}/lr{lr}/seed{seed}"
# A run whose resume files have not changed for this many epochs' time (at least STALE_SECONDS)
# is not training now: its job failed, was killed or waits in a queue.
STALE_EPOCHS = 3
STALE_SECONDS = 600
COLUMNS = ["run", "state", "epoch", "epochs", "phase", "seconds_per_epoch", "eta_seconds", "accuracy", "val_accuracy"]


def _read_csv(path: Path) -> pd.DataFrame | None:
    try:
        rows = pd.read_csv(path)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return None
    return rows if len(rows) else None


def seconds_per_epoch(history: pd.DataFrame | None) -> float:
    """Median epoch time: the first epoch of an attempt (graph tracing) does not skew it."""
    if history is None or "epoch_seconds" not in history:
        return math.nan
    return float(history["epoch_seconds"].median())


def run_status(run_dir: Path, now: float | None = None) -> dict:
    """One run's row: state (finished, training, stalled, starting, waiting), epochs done of all,
    phase, seconds per epoch, ETA and the last accuracies."""
    now = time.time() if now is None else now
    row = dict.fromkeys(COLUMNS, math.nan)
    row.update(state="waiting", epoch=0, phase="")
    record_path, resume = run_dir / "run.json", run_dir / "resume"
    if record_path.is_file() and (run_dir / "history.csv").is_file():
        settings = json.loads(record_path.read_text())["settings"]
        history = _read_csv(run_dir / "history.csv")
        row.update(
            state="finished",
            epochs=settings["epochs"],
            epoch=len(history),
            phase=history["phase"].iloc[-1],
            seconds_per_epoch=seconds_per_epoch(history),
            eta_seconds=0.0,
            accuracy=history["accuracy"].iloc[-1],
            val_accuracy=history["val_accuracy"].iloc[-1],
        )
        return row
    if not (resume / RESUME_SETTINGS).is_file():
        return row
    settings = json.loads((resume / RESUME_SETTINGS).read_text())
    phases = phase_plan(settings["protocol"], settings["epochs"])
    history = _read_csv(resume / PARTIAL_HISTORY)
    saved = resume / BACKUP_FOLDER / BACKUP_METADATA
    backed_up = json.loads(saved.read_text())["epoch"] if saved.is_file() else 0
    done = max(backed_up, 0 if history is None else len(history))
    per_epoch = seconds_per_epoch(history)
    row.update(
        epochs=len(phases),
        epoch=done,
        phase=phases[min(done, len(phases) - 1)],
        seconds_per_epoch=per_epoch,
        eta_seconds=(len(phases) - done) * per_epoch,
    )
    if history is not None:
        row.update(accuracy=history["accuracy"].iloc[-1], val_accuracy=history["val_accuracy"].iloc[-1])
    last_change = max(path.stat().st_mtime for path in [resume, *resume.rglob("*")])
    quiet_limit = max(STALE_SECONDS, STALE_EPOCHS * per_epoch) if not math.isnan(per_epoch) else STALE_SECONDS
    if now - last_change > quiet_limit:
        row["state"] = "stalled"
    else:
        row["state"] = "training" if history is not None else "starting"
    return row


def grid_progress(runs: list[dict], epochs: int, runs_dir: Path = RUNS_DIR, now: float | None = None) -> pd.DataFrame:
    """A row per run of the grid. Runs not started yet get the grid's epochs and, as their time per
    epoch, the median of the same model's runs that have one."""
    rows = []
    for run in runs:
        row = run_status(runs_dir / RUN_PATH.format(**run), now)
        row.update(run=RUN_PATH.format(**run), model=run["model"])
        if row["state"] == "waiting":
            row["epochs"] = epochs
        rows.append(row)
    table = pd.DataFrame(rows, columns=[*COLUMNS, "model"])
    typical = table.groupby("model")["seconds_per_epoch"].median()
    table["seconds_per_epoch"] = table["seconds_per_epoch"].fillna(table["model"].map(typical))
    table["eta_seconds"] = table["eta_seconds"].fillna((table["epochs"] - table["epoch"]) * table["seconds_per_epoch"])
    return table.drop(columns="model")


def grid_eta(table: pd.DataFrame) -> tuple[float, int]:
    """(seconds until the grid is done, runs training side by side): the epochs left of every run,
    shared among the runs training now (at least one). NaN while no run has timed an epoch."""
    parallel = max(1, int((table["state"] == "training").sum()))
    remaining = table.loc[table["state"] != "finished", "eta_seconds"]
    if remaining.isna().any():
        return math.nan, parallel
    return float(remaining.sum()) / parallel, parallel


def format_seconds(seconds: float) -> str:
    if math.isnan(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def format_table(table: pd.DataFrame) -> str:
    def percent(value):
        return "" if math.isnan(value) else f"{100 * value:.1f}%"

    shown = pd.DataFrame(
        {
            "run": table["run"],
            "state": table["state"],
            "epoch": [f"{int(k)}/{int(n)}" for k, n in zip(table["epoch"], table["epochs"])],
            "phase": table["phase"],
            "s/epoch": ["?" if math.isnan(s) else f"{s:.1f}" for s in table["seconds_per_epoch"]],
            "ETA": [format_seconds(s) for s in table["eta_seconds"]],
            "train acc": [percent(v) for v in table["accuracy"]],
            "val acc": [percent(v) for v in table["val_accuracy"]],
        }
    )
    eta, parallel = grid_eta(table)
    counts = table["state"].value_counts()
    summary = ", ".join(
        f"{counts[s]} {s}" for s in ("finished", "training", "starting", "stalled", "waiting") if s in counts
    )
    lines = [shown.to_string(index=False), "", f"{len(table)} runs: {summary}."]
    if (table["state"] == "finished").all():
        lines.append("Grid finished.")
    else:
        lines.append(
            f"Grid ETA: {format_seconds(eta)} ({parallel} run(s) training side by side"
            f"{'' if not math.isnan(eta) else '; no epoch timed yet'})."
        )
    return "\n".join(lines)


def merged_config(config_files: list[Path]) -> dict:
    """config.yaml, then each overlay over it, key by key, as Snakemake's --configfile does."""

    def merge(base: dict, overlay: dict) -> dict:
        for key, value in overlay.items():
            base[key] = merge(base.get(key) or {}, value) if isinstance(value, dict) else value
        return base

    config = {}
    for path in config_files:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such config file")
        merge(config, yaml.safe_load(path.read_text()) or {})
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Progress of every run of the grid: epoch, phase, seconds per epoch, ETA, last accuracies."
    )
    parser.add_argument(
        "--configfile",
        nargs="+",
        type=Path,
        default=[],
        help="the same overlays as given to snakemake (read after config.yaml)",
    )
    parser.add_argument("--directory", "-d", type=Path, default=Path("."), help="the workflow's folder (default: .)")
    args = parser.parse_args(argv)
    try:
        config = merged_config([args.directory / "config.yaml", *args.configfile])
    except FileNotFoundError as error:
        print(f"Error: {error}")
        return 1
    table = grid_progress(run_grid(config), config["training"]["epochs"], args.directory / RUNS_DIR)
    print(format_table(table))
    return 0
