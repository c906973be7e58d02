"""Glue shared by the Snakemake scripts: everything to the rule's log, expected errors as one line."""

from __future__ import annotations

import logging
import os
import sys

from cnn_study.files import DiskFullError, disk_full_error

# Errors whose message is already a one-line instruction to the user (files.DiskFullError among them).
EXPECTED_ERRORS = (ValueError, RuntimeError, FileNotFoundError, DiskFullError)


def run_logged(log_path: str, function, /, **kwargs):
    """Send stdout, stderr (native libraries' too) and logging to log_path, then call function.

    An expected error prints one line to the console and the log and exits 1, with no traceback
    on the console; anything else keeps its traceback in the log. A full disk anywhere in any job
    (ENOSPC or EDQUOT, however deep) is expected too: "<path>: disk full, ..." (files.DiskFullError).
    """
    console = os.fdopen(os.dup(2), "w", buffering=1)
    log_file = open(log_path, "a", buffering=1)
    for stream in (1, 2):
        os.dup2(log_file.fileno(), stream)
    sys.stdout = sys.stderr = log_file
    logging.basicConfig(
        stream=log_file, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    try:
        return function(**kwargs)
    except Exception as error:
        if not isinstance(error, EXPECTED_ERRORS) and disk_full_error(error) is None:
            raise
        logging.getLogger(function.__module__).exception("failed")
        full = disk_full_error(error)
        if isinstance(full, DiskFullError):
            error = full
        elif full is not None:  # not written through files.atomic_write: the file it names, else the job's folder
            error = DiskFullError(getattr(full, "filename", None) or os.getcwd())
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"Error: {message} (log: {log_path})", file=console)
        raise SystemExit(1) from None


class _LineStream:
    """A file for tqdm that writes each refresh as its own line: a log file gets readable lines, not
    carriage returns."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").rstrip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(items, description: str, unit: str = "image", stream=None):
    """tqdm over items: a live bar on a terminal; in a job's log (stderr redirected to a file) a plain
    line at most every LOG_INTERVAL seconds."""
    from tqdm import tqdm

    stream = sys.stderr if stream is None else stream
    if stream.isatty():
        return tqdm(items, desc=description, unit=unit, file=stream, dynamic_ncols=True)
    return tqdm(
        items, desc=description, unit=unit, file=_LineStream(stream), mininterval=LOG_INTERVAL, ncols=100, ascii=True
    )


LOG_INTERVAL = 30  # seconds between progress lines in a log file
