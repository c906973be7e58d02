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

from cnn_study.progress import format_seconds, format_table, grid_eta, grid_progress, main, run_status
from cnn_study.run_layout import BACKUP_METADATA
from cnn_study.settings import read_config_files

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


def unfinished(run_dir, epochs_done, backed_up=None, epochs=6, age=0.0, seconds=None, at=None):
    """An unfinished run's resume folder, every file last changed ``age`` seconds ago (or at time ``at``)."""
    resume = run_dir / "resume"
    (resume / "backup").mkdir(parents=True)
    (resume / "settings.json").write_text(json.dumps({"epochs": epochs, "protocol": PROTOCOL}))
    if epochs_done:
        rows = history_rows(epochs_done, 0) if seconds is None else history_rows(epochs_done, 0, seconds)
        rows.to_csv(resume / "history.csv", index=False)
    if backed_up is not None:
        record = {"epoch": backed_up, "weights": f"epoch-{backed_up:04d}.npz"}
        (resume / "backup" / record["weights"]).write_bytes(b"state")  # as AsyncBackup commits it
        (resume / "backup" / BACKUP_METADATA).write_text(json.dumps(record))
    then = time.time() - age if at is None else at
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
    {"arm": "paper", "model": m, "optimizer": o, "lr": "0.001", "seed": 0}
    for m in ("resnet50", "inceptionv3")
    for o in ("sgd", "adam")
]
ARMS = {"paper": {"training": {"epochs": 6}}, "longer": {"training": {"epochs": 9}}}


def test_grid_table_and_eta(tmp_path):
    finished(tmp_path / "paper/resnet50/sgd/lr0.001/seed0")
    unfinished(tmp_path / "paper/resnet50/adam/lr0.001/seed0", epochs_done=3, backed_up=3)
    unfinished(tmp_path / "paper/inceptionv3/sgd/lr0.001/seed0", epochs_done=2, backed_up=2)
    longer = {**GRID[3], "arm": "longer"}
    table = grid_progress([*GRID, longer], ARMS, runs_dir=tmp_path)
    assert list(table["run"]) == [f"{r['arm']}/{r['model']}/{r['optimizer']}/lr0.001/seed0" for r in [*GRID, longer]]
    assert list(table["state"]) == ["finished", "training", "training", "waiting", "waiting"]
    waiting = table.iloc[3]
    # Not started: its arm's epochs at the same arm and model's time per epoch (inceptionv3/sgd: 20 s median of 30, 10).
    assert waiting["epochs"] == 6 and waiting["seconds_per_epoch"] == 20.0 and waiting["eta_seconds"] == 120.0
    # Another arm: its own epochs, and no time per epoch until one of its runs has one.
    assert table.iloc[4]["epochs"] == 9 and math.isnan(table.iloc[4]["seconds_per_epoch"])
    table = table.iloc[:4]
    eta, parallel = grid_eta(table)
    # 30 s + 80 s + 120 s left, two runs training side by side.
    assert parallel == 2 and eta == pytest.approx((30 + 4 * 20 + 120) / 2)
    text = format_table(table)
    assert "resnet50/adam/lr0.001/seed0" in text and "3/6" in text and "fine_tune" in text and "60.0%" in text
    assert "4 runs: 1 finished, 2 training, 1 waiting." in text
    assert f"Grid ETA: {format_seconds(eta)} (2 run(s) training side by side)" in text


def test_grid_eta_is_unknown_until_an_epoch_is_timed_and_done_when_all_finish(tmp_path):
    table = grid_progress(GRID[:2], ARMS, runs_dir=tmp_path)
    assert math.isnan(grid_eta(table)[0]) and "Grid ETA: ? " in format_table(table)
    for run in GRID[:2]:
        finished(tmp_path / f"paper/{run['model']}/{run['optimizer']}/lr0.001/seed0")
    assert "Grid finished." in format_table(grid_progress(GRID[:2], ARMS, runs_dir=tmp_path))


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 59.6, 61, 3600 + 62, 3600 + 59 * 60, math.nan)] == [
        "0:00",
        "1:00",
        "1:01",
        "1:01:02",
        "1:59:00",
        "?",
    ]


def test_a_run_is_stalled_only_after_three_epochs_time_or_ten_minutes_without_a_change(tmp_path):
    """Judged at the time given (``now``); the quiet limit is the longer of 600 s and 3 epochs (400 s each here)."""
    then = 1_700_000_000.0
    unfinished(tmp_path / "slow", epochs_done=3, backed_up=3, seconds=(400.0, 400.0, 400.0), at=then)
    assert run_status(tmp_path / "slow", now=then + 1100)["state"] == "training"
    assert run_status(tmp_path / "slow", now=then + 1200)["state"] == "training"  # exactly at the limit
    assert run_status(tmp_path / "slow", now=then + 1201)["state"] == "stalled"
    unfinished(tmp_path / "fast", epochs_done=3, backed_up=3, seconds=(5.0, 5.0, 5.0), at=then)
    assert run_status(tmp_path / "fast", now=then + 600)["state"] == "training"
    assert run_status(tmp_path / "fast", now=then + 601)["state"] == "stalled"
    unfinished(tmp_path / "untimed", epochs_done=0, at=then)  # no epoch timed: ten minutes
    assert run_status(tmp_path / "untimed", now=then + 600)["state"] == "starting"
    assert run_status(tmp_path / "untimed", now=then + 601)["state"] == "stalled"
    # The grid judges every run at the time it is given: an hour ago, this run was training.
    an_hour_ago = time.time() - 3600
    run = {"arm": "paper", "model": "resnet50", "optimizer": "sgd", "lr": "0.001", "seed": 0}
    unfinished(tmp_path / "grid/paper/resnet50/sgd/lr0.001/seed0", epochs_done=3, backed_up=3, at=an_hour_ago)
    assert list(grid_progress([run], ARMS, runs_dir=tmp_path / "grid", now=an_hour_ago + 60)["state"]) == ["training"]
    assert list(grid_progress([run], ARMS, runs_dir=tmp_path / "grid")["state"]) == ["stalled"]


def test_a_new_file_deep_in_the_resume_folder_counts_as_a_change(tmp_path):
    """The backup writes inside resume/backup/: the resume folder's own time does not change."""
    unfinished(tmp_path / "run", epochs_done=3, backed_up=3, age=3600)
    os.utime(tmp_path / "run/resume/backup" / BACKUP_METADATA)
    assert run_status(tmp_path / "run")["state"] == "training"


def test_a_run_with_every_epoch_done_but_not_yet_recorded_is_in_its_last_phase(tmp_path):
    """All epochs backed up, run.json and history.csv not written yet; run.json alone is no finished run."""
    unfinished(tmp_path / "run", epochs_done=3, backed_up=3, epochs=3)
    (tmp_path / "run" / "run.json").write_text(json.dumps({"settings": {"epochs": 3, "protocol": PROTOCOL}}))
    status = run_status(tmp_path / "run")
    assert (status["state"], status["epoch"], status["epochs"], status["phase"]) == ("training", 3, 3, "fine_tune")
    assert status["eta_seconds"] == 0


def test_a_finished_run_shows_the_phase_of_its_last_epoch(tmp_path):
    finished(tmp_path / "run", epochs=3)  # frozen, frozen, fine_tune
    assert run_status(tmp_path / "run")["phase"] == "fine_tune"


def test_a_history_with_only_its_header_is_no_epoch(tmp_path):
    unfinished(tmp_path / "run", epochs_done=0)
    (tmp_path / "run/resume/history.csv").write_text("epoch,phase,accuracy,val_accuracy,epoch_seconds\n")
    status = run_status(tmp_path / "run")
    assert (status["state"], status["epoch"]) == ("starting", 0)
    assert math.isnan(status["accuracy"]) and math.isnan(status["seconds_per_epoch"])


def test_a_waiting_run_has_no_phase():
    status = run_status(Path("/nonexistent/run"))
    assert (status["state"], status["epoch"], status["phase"]) == ("waiting", 0, "")


def test_an_untimed_run_gets_the_epochs_it_has_left_at_its_groups_time(tmp_path):
    """A run whose history is gone but whose backup has 2 epochs: 4 epochs left at the median time of its group."""
    unfinished(tmp_path / "paper/resnet50/sgd/lr0.001/seed0", epochs_done=3, backed_up=3)  # 10 s per epoch
    unfinished(tmp_path / "paper/resnet50/adam/lr0.001/seed0", epochs_done=0, backed_up=2)
    table = grid_progress(GRID[:2], ARMS, runs_dir=tmp_path)
    assert list(table["state"]) == ["training", "starting"]
    assert table.iloc[1]["epoch"] == 2 and table.iloc[1]["eta_seconds"] == 4 * 10.0


def test_an_empty_grid_is_an_empty_table():
    table = grid_progress([], ARMS)
    assert list(table.columns) == [
        "run",
        "state",
        "epoch",
        "epochs",
        "phase",
        "seconds_per_epoch",
        "eta_seconds",
        "accuracy",
        "val_accuracy",
    ]
    assert table.empty


def test_grid_eta_shares_the_work_among_the_runs_training_now():
    table = pd.DataFrame(
        {"state": ["training", "waiting", "waiting", "finished"], "eta_seconds": [30.0, 60.0, 90.0, 0.0]}
    )
    assert grid_eta(table) == (180.0, 1)
    table["state"] = ["training", "training", "training", "finished"]
    assert grid_eta(table) == (60.0, 3)


def test_the_table_shows_every_state_and_its_columns(tmp_path):
    finished(tmp_path / "paper/resnet50/sgd/lr0.001/seed0")
    unfinished(tmp_path / "paper/resnet50/adam/lr0.001/seed0", epochs_done=3, backed_up=3)
    unfinished(tmp_path / "paper/inceptionv3/sgd/lr0.001/seed0", epochs_done=0)
    unfinished(tmp_path / "paper/inceptionv3/adam/lr0.001/seed0", epochs_done=2, backed_up=2, age=3600)
    rmsprop = {**GRID[0], "optimizer": "rmsprop", "model": "vgg16"}
    text = format_table(grid_progress([*GRID, rmsprop], ARMS, runs_dir=tmp_path))
    lines = text.splitlines()
    assert lines[0].split() == ["run", "state", "epoch", "phase", "s/epoch", "ETA", "train", "acc", "val", "acc"]
    rows = [line.split() for line in lines[1:6]]
    assert rows == [
        ["paper/resnet50/sgd/lr0.001/seed0", "finished", "6/6", "fine_tune", "10.0", "0:00", "75.0%", "70.0%"],
        ["paper/resnet50/adam/lr0.001/seed0", "training", "3/6", "fine_tune", "10.0", "0:30", "60.0%", "58.0%"],
        ["paper/inceptionv3/sgd/lr0.001/seed0", "starting", "0/6", "frozen", "20.0", "2:00"],
        ["paper/inceptionv3/adam/lr0.001/seed0", "stalled", "2/6", "fine_tune", "20.0", "1:20", "55.0%", "54.0%"],
        ["paper/vgg16/rmsprop/lr0.001/seed0", "waiting", "0/6", "?", "?"],
    ]
    assert lines[6:] == [
        "",
        "5 runs: 1 finished, 1 training, 1 starting, 1 stalled, 1 waiting.",
        "Grid ETA: ? (1 run(s) training side by side; no epoch timed yet).",
    ]
    finished_only = format_table(grid_progress(GRID[:1], ARMS, runs_dir=tmp_path))
    assert finished_only.splitlines()[-2:] == ["1 runs: 1 finished.", "Grid finished."]


def test_config_overlays_merge_like_snakemake(tmp_path):
    (tmp_path / "a.yaml").write_text("grid: {models: [resnet50], seeds: [0]}\ntraining: {epochs: 50, batch_size: 10}\n")
    (tmp_path / "b.yaml").write_text("grid: {seeds: [0, 1]}\ntraining: {epochs: 3}\n")
    config = read_config_files([tmp_path / "a.yaml", tmp_path / "b.yaml"])
    assert config["grid"] == {"models": ["resnet50"], "seeds": [0, 1]}
    assert config["training"] == {"epochs": 3, "batch_size": 10}
    with pytest.raises(FileNotFoundError, match="c.yaml: no such config file"):
        read_config_files([tmp_path / "c.yaml"])


def test_command_prints_the_demo_grid(tmp_path, monkeypatch, capsys):
    (tmp_path / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    finished(tmp_path / "results/runs/paper/resnet50/sgd/lr0.001/seed0", epochs=3)
    demo_epochs = yaml.safe_load((ROOT / "configs/demo.yaml").read_text())["training"]["epochs"]
    monkeypatch.chdir(tmp_path)  # the workflow's folder is the working directory by default
    assert main(["--configfile", str(ROOT / "configs/demo.yaml")]) == 0
    output = capsys.readouterr().out
    assert re.search(r"paper/resnet50/sgd/lr0.001/seed0 +finished +3/3 ", output), output
    assert re.search(rf"paper/resnet50/adam/lr0.001/seed0 +waiting +0/{demo_epochs} ", output), output
    assert "paper/inceptionv3/rmsprop/lr0.001/seed0" in output
    assert output.endswith(
        "6 runs: 1 finished, 5 waiting.\nGrid ETA: ? (1 run(s) training side by side; no epoch timed yet).\n"
    )
    monkeypatch.chdir(ROOT / "tests")
    assert main(["-d", str(tmp_path)]) == 0  # config.yaml alone: the paper's grid
    assert re.search(r"paper/resnet50/sgd/lr0.001/seed0 +finished +3/3 ", capsys.readouterr().out)
    assert main(["--directory", str(tmp_path / "nowhere")]) == 1
    assert capsys.readouterr().out == f"Error: {tmp_path / 'nowhere' / 'config.yaml'}: no such config file\n"


def test_command_help_says_what_each_option_is(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = f" {' '.join(capsys.readouterr().out.split())} "
    for phrase in [
        "Progress of every run of the grid: epoch, phase, seconds per epoch, ETA, last accuracies.",
        "--configfile CONFIGFILE [CONFIGFILE ...] the same overlays as given to snakemake (read after config.yaml)",
        "--directory DIRECTORY, -d DIRECTORY the workflow's folder (default: .)",
    ]:
        assert f" {phrase} " in text


@pytest.mark.workflow  # runs the checkout's own script in a subprocess
def test_the_user_command_runs_from_the_workflows_folder(tmp_path):
    (tmp_path / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    result = subprocess.run(
        [sys.executable, str(ROOT / "workflow_scripts" / "progress.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"paper/resnet50/sgd/lr0.001/seed0 +waiting ", result.stdout), result.stdout


def test_command_reports_a_bad_config_in_one_line(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    (tmp_path / "bad.yaml").write_text("arms: {short: {training: {epochs: 0}}}\n")
    assert main(["--directory", str(tmp_path), "--configfile", str(tmp_path / "bad.yaml")]) == 1
    assert (
        capsys.readouterr().out
        == "Error: invalid config: arm short: training.epochs: 0 is less than the minimum of 1\n"
    )


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
