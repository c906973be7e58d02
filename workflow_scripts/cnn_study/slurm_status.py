"""Before a Slurm run submits anything: will the Slurm executor plugin ever see its jobs finish, and can
Slurm start them at all?

snakemake-executor-plugin-slurm 2.8 learns that a job ended from `sacct` or `squeue`
(`slurm-status-command`). Without Slurm accounting (no slurmdbd: `AccountingStorageType =
accounting_storage/none`) `sacct` only answers "Slurm accounting storage is disabled", the plugin
takes every job for still running and Snakemake waits forever, printing nothing. `squeue` works
there, but only while slurmctld still remembers a finished job (`MinJobAge`); the plugin itself
switches from squeue back to sacct when MinJobAge is below 3 x
`slurm-init-seconds-before-status-checks`. This module repeats that choice from `scontrol show
config` (the plugin makes it inside Executor.check_active_jobs, with no function to ask; the factor is
pinned by tests/test_slurm_status.py against the installed plugin) and turns a choice that would hang
into one line naming the profile key to change. `check_before_submitting` adds the partition checks of
cnn_study.slurm_partitions and reports every problem at once, one line each.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from cnn_study import slurm_partitions

STATUS_KEY = "slurm-status-command"
INIT_KEY = "slurm-init-seconds-before-status-checks"
NO_ACCOUNTING = "accounting_storage/none"
# The plugin's own rule (check_active_jobs): squeue only if MinJobAge >= this many x INIT_KEY.
SQUEUE_MIN_JOB_AGE_FACTOR = 3
# Where users change the keys: the files that can hold a profile key, and the flag.
PROFILE_FILES = "slurm/config.yaml, or an overlay profile given after it with --profile, whose value wins"
# Slurm states of a job stopped from outside, which a retry resumes: expected, reported briefly.
EXPECTED_STOPS = ("TIMEOUT", "PREEMPTED", "NODE_FAIL")
# How the plugin words a failed job: "SLURM-job '17' failed, SLURM status is: 'TIMEOUT'. ..."
SLURM_STATE = re.compile(r"SLURM status is: '([A-Z_]+)'")


class SlurmStatusError(RuntimeError):
    """The run would never notice its jobs finish."""


def parse_config(text: str) -> dict[str, str]:
    """`scontrol show config` output ("Key   = value" lines) as a dict."""
    config = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            config[key.strip()] = value.strip()
    return config


def seconds(value: str | None) -> int | None:
    """MinJobAge as scontrol prints it ("300 sec", "3600", "1h") in seconds; None if unreadable."""
    match = re.match(r"^(\d+)\s*([a-zA-Z]*)", value or "")
    if not match:
        return None
    number, unit = int(match.group(1)), match.group(2).lower()
    return number * 3600 if unit in ("h", "hour", "hours") else number


def effective_status_command(configured: str, min_job_age: int | None, init_seconds: int, sacct_installed: bool) -> str:
    """The command the plugin will really use (snakemake-executor-plugin-slurm 2.8, check_active_jobs)."""
    command = configured
    too_young = min_job_age is None or min_job_age < SQUEUE_MIN_JOB_AGE_FACTOR * init_seconds
    if command == "squeue" and too_young and sacct_installed:
        command = "sacct"
    if command == "sacct" and not sacct_installed:
        command = "squeue"
    return command


def check_status_command(configured: str, init_seconds: int, scontrol_config: str, sacct_installed: bool) -> str:
    """One line saying how job states will be read; SlurmStatusError where they never would be."""
    config = parse_config(scontrol_config)
    accounting = config.get("AccountingStorageType", "")
    min_job_age = seconds(config.get("MinJobAge"))
    command = effective_status_command(configured, min_job_age, init_seconds, sacct_installed)
    squeue_limit = (min_job_age or 0) // SQUEUE_MIN_JOB_AGE_FACTOR
    age = f"MinJobAge={min_job_age} s" if min_job_age is not None else "MinJobAge unknown"
    if command == "sacct" and accounting == NO_ACCOUNTING:
        if configured == "squeue":
            raise SlurmStatusError(
                f"{STATUS_KEY} is squeue, but this cluster forgets finished jobs after {age}, less than "
                f"{SQUEUE_MIN_JOB_AGE_FACTOR} x {INIT_KEY} ({init_seconds} s), so the Slurm plugin would fall back "
                f"to sacct, which has no accounting here ({accounting}) and would never see a job finish: set "
                f"{INIT_KEY} to at most {max(squeue_limit, 1)} in your profile ({PROFILE_FILES}), or pass "
                f"--{INIT_KEY} {max(squeue_limit, 1)}, or ask for a longer MinJobAge"
            )
        settings = {STATUS_KEY: "squeue"}
        if min_job_age is None or min_job_age < SQUEUE_MIN_JOB_AGE_FACTOR * init_seconds:
            settings[INIT_KEY] = max(squeue_limit, 1)
        profile = " and ".join(f"{key}: {value}" for key, value in settings.items())
        flags = " ".join(f"--{key} {value}" for key, value in settings.items())
        fix = f"set {profile} in your profile ({PROFILE_FILES}), or pass {flags}"
        if INIT_KEY in settings:
            fix += f" ({age}: squeue sees a finished job that long)"
        raise SlurmStatusError(
            f"Slurm accounting is off on this cluster (AccountingStorageType={accounting}), so sacct would never "
            f"see a job finish and Snakemake would wait forever: {fix}"
        )
    if command == "squeue":
        return f"Slurm job states from squeue ({age}, {INIT_KEY}={init_seconds})"
    return f"Slurm job states from sacct (AccountingStorageType={accounting or 'unknown'})"


def check_before_submitting(
    status_command: str | None,
    init_seconds: int | None,
    requests: Iterable[slurm_partitions.Request],
    run=subprocess.run,
    which=shutil.which,
) -> list[str]:
    """For a run with Snakemake's Slurm executor, before it submits anything: SlurmStatusError with one line per
    problem (job states it could never read, partitions its jobs could never run on), else the lines saying
    what was checked. What cannot be read (scontrol, sinfo) is said and left to the plugin."""
    configured = status_command or "sacct"
    init_seconds = int(init_seconds or 40)
    lines, problems = [], []
    try:
        shown = slurm_partitions.query(["scontrol", "show", "config"], run)
        lines.append(check_status_command(configured, init_seconds, shown, which("sacct") is not None))
    except slurm_partitions.SlurmQueryError as error:
        lines.append(f"Slurm job states: not checked, {error}")
    except SlurmStatusError as error:
        problems.append(str(error))
    try:
        problems += slurm_partitions.check_partitions(requests, run)
        lines.append("Slurm partitions: every job fits the partition it names")
    except slurm_partitions.SlurmQueryError as error:
        lines.append(f"Slurm partitions: not checked, {error}")
    if problems:
        raise SlurmStatusError("\n".join(problems))
    return lines


class ExpectedStopLogs(logging.Filter):
    """`show-failed-logs` for a job Slurm stopped from outside (time limit, preemption, node failure): print
    only the job's own log, not the Slurm log, whose ~100 lines are Snakemake's job wrapper starting twice.
    For train the own log is a few lines: the wildcards, attempt and Slurm job, the epoch reached and where
    every attempt's full log is (cnn_study.attempt_logs). The Slurm log's path is still printed; both files
    stay on disk. Works on Snakemake's job-error records (Job.get_log_error_info: rule_msg, log, aux), as
    neither Snakemake nor the plugin has a setting to leave one log out (tests/test_slurm.py, (c), runs it
    against the installed versions; if the records change it lets them through unchanged)."""

    def __init__(self, slurm_logdir: str | Path):
        super().__init__()
        self.slurm_logdir = Path(slurm_logdir).resolve()

    def is_slurm_log(self, path: str) -> bool:
        return Path(path).resolve().is_relative_to(self.slurm_logdir)

    def filter(self, record: logging.LogRecord) -> bool:
        state = SLURM_STATE.search(str(getattr(record, "rule_msg", None) or ""))
        logs = getattr(record, "log", None)
        if state and state.group(1) in EXPECTED_STOPS and logs:
            own = [log for log in logs if not self.is_slurm_log(log)]
            slurm = [log for log in logs if self.is_slurm_log(log)]
            if own and slurm:
                record.log = own
                record.aux = {**(getattr(record, "aux", None) or {}), "slurm log": ", ".join(slurm)}
        return True


def report_expected_stops_briefly(slurm_logdir: str | Path, logger_name: str = "snakemake.logging") -> None:
    """Install ExpectedStopLogs on Snakemake's logger (in the main process, before jobs are submitted)."""
    logging.getLogger(logger_name).addFilter(ExpectedStopLogs(slurm_logdir))
