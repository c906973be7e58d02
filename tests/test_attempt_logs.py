"""Per-attempt training logs (cnn_study.attempt_logs): the full log per attempt, the rule's log as a summary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from cnn_study import attempt_logs, run_layout
from helpers import REPO

RUN = {"model": "alexnet", "optimizer": "sgd", "lr": "0.001", "seed": "0"}


def test_one_full_log_per_attempt_and_slurm_job_beside_the_rule_log():
    rule_log = "logs/train/alexnet/sgd/lr0.001/seed0.log"
    assert attempt_logs.attempt_log_path(rule_log, 2, "18") == Path(
        "logs/train/alexnet/sgd/lr0.001/seed0/attempt2-slurm18.log"
    )
    assert attempt_logs.attempt_log_path(rule_log, 1, None) == Path("logs/train/alexnet/sgd/lr0.001/seed0/attempt1.log")


def test_attempts_are_numbered_on_from_the_logs_already_there(tmp_path):
    assert attempt_logs.next_attempt(tmp_path) == 1
    for name in ("attempt1-slurm17.log", "attempt2.log", "attempt10-slurm30.log", "attempt3.log.bak", "notes.log"):
        (tmp_path / name).write_text("")
    assert [p.name for p in attempt_logs.attempt_logs(tmp_path)] == [
        "attempt1-slurm17.log",
        "attempt2.log",
        "attempt10-slurm30.log",
    ]
    assert attempt_logs.next_attempt(tmp_path) == 11


def write_backup(resume_dir: Path, epoch: int) -> None:
    backup = run_layout.backup_folder(resume_dir)  # where AsyncBackup commits the resume state
    backup.mkdir(parents=True)
    (backup / "epoch-0003.weights.h5").write_bytes(b"weights")
    (backup / run_layout.BACKUP_METADATA).write_text(json.dumps({"epoch": epoch, "weights": "epoch-0003.weights.h5"}))


def test_epochs_done_reads_the_runs_backup(tmp_path):
    assert attempt_logs.epochs_done(tmp_path / "resume") == 0
    write_backup(tmp_path / "resume", 3)
    assert attempt_logs.epochs_done(tmp_path / "resume") == 3


def test_last_line_is_the_errors_message(tmp_path):
    log = tmp_path / "a.log"
    log.write_text("Epoch 1/5\nTraceback (most recent call last):\n  File x\nValueError: out of memory\n\n")
    assert attempt_logs.last_line(log) == "ValueError: out of memory"
    assert attempt_logs.last_line(tmp_path / "missing.log") == ""


# One attempt of the train glue, in a process of its own: start_attempt, then what `body` does.
ATTEMPT = """
import os, signal, sys
from pathlib import Path
from cnn_study.attempt_logs import start_attempt
full_log = start_attempt("{rule_log}", run={run!r}, resume_dir="{resume}", history_path="{history}", epochs=5)
print(full_log)
sys.stdout.flush()
{body}
"""


def attempt(tmp_path: Path, body: str, slurm_job_id: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"}
    env["PYTHONPATH"] = str(REPO / "workflow_scripts")
    if slurm_job_id:
        env["SLURM_JOB_ID"] = slurm_job_id
    code = ATTEMPT.format(
        rule_log=tmp_path / "logs" / "seed0.log",
        run=RUN,
        resume=tmp_path / "resume",
        history=tmp_path / "history.csv",
        body=textwrap.dedent(body),
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )


def rule_log_lines(tmp_path: Path) -> list[str]:
    return (tmp_path / "logs" / "seed0.log").read_text().splitlines()


def test_a_finished_attempt_says_so(tmp_path):
    proc = attempt(tmp_path, 'Path("{}").write_text("epoch\\n")'.format(tmp_path / "history.csv"))
    assert proc.returncode == 0, proc.stderr
    lines = rule_log_lines(tmp_path)
    assert lines[0].startswith("train model=alexnet, optimizer=sgd, lr=0.001, seed=0: attempt 1 (on ")
    assert lines[1] == f"full log of this attempt: {tmp_path / 'logs' / 'seed0' / 'attempt1.log'}"
    assert lines[-1] == "finished: all 5 epochs"
    assert len(lines) == 4


def test_a_failed_attempt_names_the_epoch_and_the_error(tmp_path):
    write_backup(tmp_path / "resume", 3)
    body = """
    with open(full_log, "a") as log:
        log.write("Traceback (most recent call last):\\nRuntimeError: CUDA out of memory\\n")
    sys.exit(1)
    """
    proc = attempt(tmp_path, body, slurm_job_id="17")
    assert proc.returncode == 1
    full_log = tmp_path / "logs" / "seed0" / "attempt1-slurm17.log"
    assert rule_log_lines(tmp_path)[-1] == (
        f"failed after epoch 3 of 5: RuntimeError: CUDA out of memory (full log: {full_log})"
    )
    assert "Slurm job 17 on " in rule_log_lines(tmp_path)[0]


def test_sigterm_says_where_the_next_attempt_resumes_and_still_kills(tmp_path):
    write_backup(tmp_path / "resume", 3)
    body = """
    os.kill(os.getpid(), signal.SIGTERM)
    import time; time.sleep(30)
    print("survived SIGTERM")
    """
    proc = attempt(tmp_path, body, slurm_job_id="17")
    assert proc.returncode == -signal.SIGTERM
    assert "survived" not in proc.stdout
    lines = rule_log_lines(tmp_path)
    assert lines[-1].startswith("stopped by SIGTERM (Slurm's time limit, scancel or preemption) after epoch 3 of 5; ")
    assert f"the next attempt resumes from {tmp_path / 'resume'}" in lines[-1]
    assert not any(line.startswith(("failed", "finished")) for line in lines)


def test_every_attempts_full_log_survives_the_rule_log_being_deleted(tmp_path):
    write_backup(tmp_path / "resume", 3)
    first = attempt(tmp_path, 'print("epoch lines of attempt 1", file=open(full_log, "a")); sys.exit(1)', "17")
    assert first.returncode == 1
    (tmp_path / "logs" / "seed0.log").unlink()  # what Snakemake does before the next attempt
    second = attempt(tmp_path, 'print("epoch lines of attempt 2", file=open(full_log, "a"))', "18")
    assert second.returncode == 0
    folder = tmp_path / "logs" / "seed0"
    assert sorted(p.name for p in folder.iterdir()) == ["attempt1-slurm17.log", "attempt2-slurm18.log"]
    assert "epoch lines of attempt 1" in (folder / "attempt1-slurm17.log").read_text()
    assert "epoch lines of attempt 2" in (folder / "attempt2-slurm18.log").read_text()
    lines = rule_log_lines(tmp_path)
    assert lines[0].startswith("train model=alexnet") and "attempt 2 (Slurm job 18 on " in lines[0]
    assert lines[2] == f"earlier attempts' logs in {folder}/: attempt1-slurm17.log"
