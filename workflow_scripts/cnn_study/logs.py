"""Glue shared by the Snakemake scripts: everything to the rule's log, expected errors as one line."""

from __future__ import annotations

import logging
import os
import sys

# Errors whose message is already a one-line instruction to the user.
EXPECTED_ERRORS = (ValueError, RuntimeError, FileNotFoundError)


def run_logged(log_path: str, function, /, **kwargs):
    """Send stdout, stderr (native libraries' too) and logging to log_path, then call function.

    An expected error prints one line to the console and the log and exits 1, with no traceback
    on the console; anything else keeps its traceback in the log.
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
    except EXPECTED_ERRORS as error:
        logging.getLogger(function.__module__).exception("failed")
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"Error: {message} (log: {log_path})", file=console)
        raise SystemExit(1) from None
