"""cnn_study.progress on hand-made run folders: finished, training, stalled, starting and waiting runs."""

import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cnn_study.progress import format_seconds, format_table, grid_eta, grid_progress, main, merged_config, run_status
from cnn_study.training import BACKUP_METADATA

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = {"mode": "fine_tune", "warmup_epochs": 2, "unfreeze_top_layers": "all"}


def history_rows(epochs, first_epoch, seconds=(30.0, 10.0, 10.0, 12.0, 10.0, 10.0)):
    """History rows as CSVLogger (epoch from 0) or history.csv (from 1) has them."""
    return pd.DataFrame(
        {
            "epoch": [first_epoch + i for i in range(epochs)],
            "phase": ["frozen" if i < 2 else "fine_tune" for i in range(epochs)],
            "accuracy": [0.5 + 0.05 * i for i in range(epochs)],
            "val_accuracy": [0.5 + 0.04 * i for i in range(epochs)],
            "epoch_seconds": list(seconds[:epochs]),
        }
    )


def finished(run_dir, epochs=6):
    run_dir.mkdir(parents=True)
    history_rows(epochs, 1).to_csv(run_dir / "history.csv", index=False)
    (run_dir / "run.json").write_text(json.dumps({"settings": {"epochs": epochs, "protocol": PROTOCOL}}))


def unfinished(run_dir, epochs_done, backed_up=None, epochs=6, age=0.0):
    resume = run_dir / "resume"
    (resume / "backup").mkdir(parents=True)
    (resume / "settings.json").write_text(json.dumps({"epochs": epochs, "protocol": PROTOCOL}))
    if epochs_done:
        history_rows(epochs_done, 0).to_csv(resume / "history.csv", index=False)
    if backed_up is not None:
        record = {"epoch": backed_up, "batch": 0, "weights": f"epoch-{backed_up:04d}.weights.h5"}
        (resume / "backup" / BACKUP_METADATA).write_text(json.dumps(record))
    then = time.time() - age
    for path in [resume, *resume.rglob("*")]:
        os.utime(path, (then, then))


def test_each_state_is_read_from_what_training_writes(tmp_path):
    finished(tmp_path / "done")
    unfinished(tmp_path / "busy", epochs_done=3, backed_up=3)
    unfinished(tmp_path / "dead", epochs_done=3, backed_up=2, age=3600)
    unfinished(tmp_path / "new", epochs_done=0)

    done = run_status(tmp_path / "done")
    assert (done["state"], done["epoch"], done["epochs"], done["phase"]) == ("finished", 6, 6, "fine_tune")
    assert done["eta_seconds"] == 0 and done["seconds_per_epoch"] == 10.0
    assert done["accuracy"] == pytest.approx(0.75) and done["val_accuracy"] == pytest.approx(0.70)

    busy = run_status(tmp_path / "busy")
    # Three epochs done, the fourth (a fine-tuning epoch) under way; median time, not the first epoch's.
    assert (busy["state"], busy["epoch"], busy["epochs"], busy["phase"]) == ("training", 3, 6, "fine_tune")
    assert busy["seconds_per_epoch"] == 10.0 and busy["eta_seconds"] == 30.0
    assert busy["accuracy"] == pytest.approx(0.6) and busy["val_accuracy"] == pytest.approx(0.58)

    dead = run_status(tmp_path / "dead")
    assert (dead["state"], dead["epoch"]) == ("stalled", 3)

    new = run_status(tmp_path / "new")
    assert (new["state"], new["epoch"], new["phase"]) == ("starting", 0, "frozen")
    assert math.isnan(new["seconds_per_epoch"]) and math.isnan(new["accuracy"])

    assert run_status(tmp_path / "absent")["state"] == "waiting"


def test_epochs_done_counts_the_backup_when_the_history_lags(tmp_path):
    unfinished(tmp_path / "run", epochs_done=2, backed_up=4)
    status = run_status(tmp_path / "run")
    assert status["epoch"] == 4 and status["eta_seconds"] == 2 * status["seconds_per_epoch"]


GRID = [
    {"model": m, "optimizer": o, "lr": "0.001", "seed": 0} for m in ("resnet50", "inceptionv3") for o in ("sgd", "adam")
]


def test_grid_table_and_eta(tmp_path):
    finished(tmp_path / "resnet50/sgd/lr0.001/seed0")
    unfinished(tmp_path / "resnet50/adam/lr0.001/seed0", epochs_done=3, backed_up=3)
    unfinished(tmp_path / "inceptionv3/sgd/lr0.001/seed0", epochs_done=2, backed_up=2)
    table = grid_progress(GRID, epochs=6, runs_dir=tmp_path)
    assert list(table["run"]) == [f"{r['model']}/{r['optimizer']}/lr0.001/seed0" for r in GRID]
    assert list(table["state"]) == ["finished", "training", "training", "waiting"]
    waiting = table.iloc[3]
    # Not started: the grid's epochs at the same model's time per epoch (inceptionv3/sgd: 20 s median of 30, 10).
    assert waiting["epochs"] == 6 and waiting["seconds_per_epoch"] == 20.0 and waiting["eta_seconds"] == 120.0
    eta, parallel = grid_eta(table)
    # 30 s + 80 s + 120 s left, two runs training side by side.
    assert parallel == 2 and eta == pytest.approx((30 + 4 * 20 + 120) / 2)
    text = format_table(table)
    assert "resnet50/adam/lr0.001/seed0" in text and "3/6" in text and "fine_tune" in text and "60.0%" in text
    assert "4 runs: 1 finished, 2 training, 1 waiting." in text
    assert f"Grid ETA: {format_seconds(eta)} (2 run(s) training side by side)" in text


def test_grid_eta_is_unknown_until_an_epoch_is_timed_and_done_when_all_finish(tmp_path):
    table = grid_progress(GRID[:2], epochs=6, runs_dir=tmp_path)
    assert math.isnan(grid_eta(table)[0]) and "Grid ETA: ? " in format_table(table)
    for run in GRID[:2]:
        finished(tmp_path / f"{run['model']}/{run['optimizer']}/lr0.001/seed0")
    assert "Grid finished." in format_table(grid_progress(GRID[:2], epochs=6, runs_dir=tmp_path))


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 59.6, 61, 3600 + 62, math.nan)] == ["0:00", "1:00", "1:01", "1:01:02", "?"]


def test_config_overlays_merge_like_snakemake(tmp_path):
    (tmp_path / "a.yaml").write_text("grid: {models: [resnet50], seeds: [0]}\ntraining: {epochs: 50, batch_size: 10}\n")
    (tmp_path / "b.yaml").write_text("grid: {seeds: [0, 1]}\ntraining: {epochs: 3}\n")
    config = merged_config([tmp_path / "a.yaml", tmp_path / "b.yaml"])
    assert config["grid"] == {"models": ["resnet50"], "seeds": [0, 1]}
    assert config["training"] == {"epochs": 3, "batch_size": 10}
    with pytest.raises(FileNotFoundError, match="c.yaml: no such config file"):
        merged_config([tmp_path / "c.yaml"])


def test_command_prints_the_demo_grid(tmp_path):
    (tmp_path / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    finished(tmp_path / "results/runs/resnet50/sgd/lr0.001/seed0", epochs=3)
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "workflow_scripts" / "progress.py"),
            "--configfile",
            str(ROOT / "configs/demo.yaml"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    demo_epochs = yaml.safe_load((ROOT / "configs/demo.yaml").read_text())["training"]["epochs"]
    assert re.search(r"resnet50/sgd/lr0.001/seed0 +finished +3/3 ", result.stdout), result.stdout
    assert re.search(rf"resnet50/adam/lr0.001/seed0 +waiting +0/{demo_epochs} ", result.stdout), result.stdout
    assert "inceptionv3/rmsprop/lr0.001/seed0" in result.stdout and "waiting" in result.stdout
    assert main(["--directory", str(tmp_path / "nowhere")]) == 1


def test_progress_bar_writes_plain_lines_to_a_log(monkeypatch):
    import io

    import cnn_study.logs as logs

    monkeypatch.setattr(logs, "LOG_INTERVAL", 0)
    log = io.StringIO()  # not a terminal, like a job's redirected stderr
    assert list(logs.progress_bar(range(4), "screening", stream=log)) == [0, 1, 2, 3]
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) >= 5
    assert lines[0].startswith("screening:   0%|") and "0/4" in lines[0]
    assert lines[-1].startswith("screening: 100%|") and "4/4" in lines[-1] and "image/s" in lines[-1]
