"""Where every run of the grid stands, read from what training writes while it runs.

A finished run has history.csv and run.json. An unfinished one has its resume/ folder (cnn_study.run_layout):
settings.json (the run's settings, so its epochs and phases), history.csv (CSVLogger's rows so far, epochs
counted from 0) and backup/training_metadata.json (epochs whose state is saved). Nothing else is needed, so it works the same on a workstation and on a cluster's shared
file system while jobs run.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import pandas as pd

from cnn_study import settings as study_settings
from cnn_study.resume_state import completed_epochs
from cnn_study.run_layout import (
    HISTORY,
    PARTIAL_HISTORY,
    PROVENANCE,
    RESUME_SETTINGS,
    RUNS_ROOT,
    backup_folder,
    resume_folder,
    run_path,
)
from cnn_study.schedule import phase_plan

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
    record_path, resume = run_dir / PROVENANCE, resume_folder(run_dir)
    if record_path.is_file() and (run_dir / HISTORY).is_file():
        settings = json.loads(record_path.read_text())["settings"]
        history = _read_csv(run_dir / HISTORY)
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
    backed_up = completed_epochs(backup_folder(resume))
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


def grid_progress(runs: list[dict], arms: dict[str, dict], runs_dir: Path = Path(RUNS_ROOT), now: float | None = None):
    """A row per run of the study. Runs not started yet get their arm's epochs and, as their time per epoch,
    the median of the same arm and model's runs that have one."""
    rows = []
    for run in runs:
        row = run_status(runs_dir / run_path(run), now)
        row.update(run=run_path(run), group=f"{run['arm']}/{run['model']}")
        if row["state"] == "waiting":
            row["epochs"] = arms[run["arm"]]["training"]["epochs"]
        rows.append(row)
    table = pd.DataFrame(rows, columns=[*COLUMNS, "group"])
    typical = table.groupby("group")["seconds_per_epoch"].median()
    table["seconds_per_epoch"] = table["seconds_per_epoch"].fillna(table["group"].map(typical))
    table["eta_seconds"] = table["eta_seconds"].fillna((table["epochs"] - table["epoch"]) * table["seconds_per_epoch"])
    return table.drop(columns="group")


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
            "epoch": [f"{int(k)}/{int(n)}" for k, n in zip(table["epoch"], table["epochs"], strict=True)],
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Progress of every run of the grid: epoch, phase, seconds per epoch, ETA, last accuracies."
    )
    study_settings.add_study_arguments(parser)
    args = parser.parse_args(argv)
    try:
        _, arms = study_settings.study_of(args)
    except (FileNotFoundError, study_settings.ConfigError) as error:
        print(f"Error: {error}")
        return 1
    table = grid_progress(study_settings.run_grid(arms), arms, args.directory / RUNS_ROOT)
    print(format_table(table))
    return 0
