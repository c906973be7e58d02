"""The glue every job runs in (cnn_study.logs.run_logged): expected errors as one console line, a full disk too."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

JOB = """
import errno, sys
from cnn_study.logs import run_logged

def job(kind):
    if kind == "write":  # what a plain write raises: no file name
        raise OSError(errno.ENOSPC, "No space left on device")
    if kind == "open":
        raise OSError(errno.ENOSPC, "No space left on device", "results/metrics/epochs.csv")
    if kind == "quota-wrapped":
        try:
            raise OSError(errno.EDQUOT, "Disk quota exceeded", "results/runs/x/model.keras")
        except OSError as error:
            raise RuntimeError("saving the model failed") from error
    if kind == "denied":
        raise OSError(errno.EACCES, "Permission denied", "results/x.csv")
    raise ValueError("dataset.source: no such file; fix the path")

run_logged(sys.argv[2], job, kind=sys.argv[1])
"""

TAIL = r" bytes free on its file system; free space there \(or run the workflow on a larger disk\), then rerun"


def run_job(tmp_path, kind):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow_scripts")}
    log = tmp_path / "job.log"
    result = subprocess.run(
        [sys.executable, "-c", JOB, kind, str(log)], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60
    )
    return result, log


@pytest.mark.parametrize(
    "kind, where",
    [
        ("write", "{cwd}"),
        ("open", "results/metrics/epochs.csv"),
        ("quota-wrapped", "results/runs/x/model.keras"),
    ],
)
def test_a_full_disk_in_any_job_is_one_console_line_saying_disk_full(tmp_path, kind, where):
    result, log = run_job(tmp_path, kind)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    where = re.escape(where.format(cwd=tmp_path))
    assert re.fullmatch(rf"Error: {where}: disk full, \d+{TAIL} \(log: {re.escape(str(log))}\)", line), line
    assert "Traceback" in log.read_text()  # the details stay in the log


def test_other_os_errors_keep_their_traceback_in_the_log(tmp_path):
    result, log = run_job(tmp_path, "denied")
    assert result.returncode == 1 and result.stderr == ""
    assert "PermissionError: [Errno 13] Permission denied: 'results/x.csv'" in log.read_text()


def test_an_expected_error_is_one_line(tmp_path):
    result, log = run_job(tmp_path, "value")
    assert result.returncode == 1
    assert result.stderr == f"Error: dataset.source: no such file; fix the path (log: {log})\n"
