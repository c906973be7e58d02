"""Every attempt of a training job keeps its full log; the rule's log says where, and how the attempt ended.

Snakemake deletes a job's `log:` file before each attempt, so a run retried after a Slurm time limit
would keep only its last attempt's log. Each attempt therefore writes its full log (Keras progress,
warnings, tracebacks) to a file of its own beside the rule's log, never deleted by Snakemake, named by
the attempt (the how-many-th start of this run: counted from the files there, so retries within one
Snakemake invocation, later invocations and Slurm requeues all get their own) and the Slurm job id:

    logs/train/<run path>.log                    the rule's log: a few lines (run path: cnn_study.run_layout)
    logs/train/<run path>/attempt2-slurm18.log   attempt 2's full log

The rule's log is what `show-failed-logs` prints after a failed attempt: which attempt and Slurm job
it was, the epoch it reached, how it ended (finished, stopped by SIGTERM, failed with what) and where
its full log is.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import socket
from datetime import UTC, datetime
from pathlib import Path

from cnn_study.resume_state import completed_epochs
from cnn_study.run_layout import backup_folder


def attempt_folder(rule_log: str | Path) -> Path:
    """Where every attempt's full log goes: beside the rule's log, named like it without .log."""
    return Path(rule_log).with_suffix("")


ATTEMPT_LOG = re.compile(r"attempt(\d+)(-slurm\d+)?\.log")


def attempt_logs(folder: Path) -> list[Path]:
    """The full logs already in folder, by attempt number."""
    numbered = [(int(m.group(1)), p) for p in folder.glob("attempt*.log") if (m := ATTEMPT_LOG.fullmatch(p.name))]
    return [p for _, p in sorted(numbered)]


def next_attempt(folder: Path) -> int:
    """1 + the highest attempt number among the full logs already in folder."""
    logs = attempt_logs(folder)
    return int(ATTEMPT_LOG.fullmatch(logs[-1].name).group(1)) + 1 if logs else 1


def attempt_log_path(rule_log: str | Path, attempt: int, slurm_job_id: str | None) -> Path:
    job = f"-slurm{slurm_job_id}" if slurm_job_id else ""
    return attempt_folder(rule_log) / f"attempt{attempt}{job}.log"


def epochs_done(resume_dir: str | Path) -> int:
    """Epochs the run's backup covers: where the next attempt resumes."""
    return completed_epochs(backup_folder(resume_dir))


def last_line(path: str | Path) -> str:
    """The last non-empty line of a log (an error's message ends a traceback), or "" if there is none."""
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    return next((line.strip() for line in reversed(lines) if line.strip()), "")


def header(run: dict, attempt: int, slurm_job_id: str | None, host: str, full_log: Path) -> list[str]:
    where = f"Slurm job {slurm_job_id} on {host}" if slurm_job_id else f"on {host}"
    labels = ", ".join(f"{key}={value}" for key, value in run.items())
    others = [p.name for p in attempt_logs(full_log.parent) if p != full_log]
    return [
        f"train {labels}: attempt {attempt} ({where}), started {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}",
        f"full log of this attempt: {full_log}",
        f"earlier attempts' logs in {full_log.parent}/: {', '.join(others) if others else 'none'}",
    ]


def ended_line(finished: bool, done: int, epochs: int, full_log: Path) -> str:
    if finished:
        return f"finished: all {epochs} epochs"
    reason = last_line(full_log) or "no message"
    return f"failed after epoch {done} of {epochs}: {reason} (full log: {full_log})"


def stopped_line(done: int, epochs: int, resume_dir: str | Path) -> str:
    return (
        f"stopped by SIGTERM (Slurm's time limit, scancel or preemption) after epoch {done} of {epochs}; "
        f"the next attempt resumes from {resume_dir}"
    )


def append(path: Path, *lines: str) -> None:
    with open(path, "a") as handle:
        handle.write("".join(f"{line}\n" for line in lines))


def start_attempt(
    rule_log: str | Path,
    run: dict,
    resume_dir: str | Path,
    history_path: str | Path,
    epochs: int,
    environ=os.environ,
) -> Path:
    """Write the rule log's header, arrange for its last line (at exit or on SIGTERM) and return the path
    the attempt's full log goes to."""
    rule_log = Path(rule_log)
    slurm_job_id = environ.get("SLURM_JOB_ID")
    attempt_folder(rule_log).mkdir(parents=True, exist_ok=True)
    attempt = next_attempt(attempt_folder(rule_log))
    full_log = attempt_log_path(rule_log, attempt, slurm_job_id)
    append(full_log, f"==== attempt {attempt} started {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} ====")
    append(rule_log, *header(run, attempt, slurm_job_id, socket.gethostname(), full_log))

    def at_exit() -> None:
        finished = Path(history_path).exists() and not Path(resume_dir).exists()
        append(rule_log, ended_line(finished, epochs_done(resume_dir), epochs, full_log))

    def on_sigterm(signum, frame) -> None:
        append(rule_log, stopped_line(epochs_done(resume_dir), epochs, resume_dir))
        # Then die of SIGTERM as without this handler.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    atexit.register(at_exit)
    signal.signal(signal.SIGTERM, on_sigterm)
    return full_log
