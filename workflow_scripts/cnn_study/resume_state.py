"""An unfinished run's resume folder (run_layout: resume/): read and written between attempts.

Keras-free, so the user commands (progress) and the attempt logs read it without loading a backend. The
backup inside it is written by cnn_study.training_callbacks.AsyncBackup: each epoch's state goes to a new file,
and the small metadata file naming it (the commit point) is replaced atomically once that file is complete.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from cnn_study.files import atomic_write
from cnn_study.run_layout import BACKUP_METADATA, PARTIAL_HISTORY, RESUME_SETTINGS, STARTED_AT

log = logging.getLogger(__name__)


def write_atomic(path: Path, text: str) -> None:
    """Write text that must survive a crash: complete and on disk before it replaces the old file."""
    with atomic_write(path, durable=True) as partial:
        partial.write_text(text)


def backup_metadata(backup_dir: Path) -> dict | None:
    """The committed backup: {"epoch": epochs done, "weights": file name}, or None if there is none."""
    metadata = Path(backup_dir) / BACKUP_METADATA
    if not metadata.exists():
        return None
    record = json.loads(metadata.read_text())
    if not (Path(backup_dir) / record.get("weights", "")).is_file():
        return None
    return record


def completed_epochs(backup_dir: Path) -> int:
    """Epochs the committed backup covers: where the next attempt resumes (0: none)."""
    record = backup_metadata(backup_dir)
    return int(record["epoch"]) if record else 0


def prepare_resume_dir(resume_dir: Path, settings: dict, history_columns: Iterable[str] = ()) -> None:
    """Keep the resume folder only if it belongs to these settings, and its partial history has every one of
    history_columns (the rows are appended under its header: one written by an older version would be misread);
    otherwise start afresh."""
    recorded, partial = resume_dir / RESUME_SETTINGS, resume_dir / PARTIAL_HISTORY
    header = partial.read_text().partition("\n")[0].split(",") if partial.exists() else [""]
    missing = [column for column in history_columns if header != [""] and column not in header]
    if recorded.exists() and json.loads(recorded.read_text()) != json.loads(json.dumps(settings)):
        log.warning("settings changed since the interrupted attempt: discarding %s and starting afresh", resume_dir)
        shutil.rmtree(resume_dir)
    elif missing:
        log.warning(
            "%s lacks the column(s) %s (an older version wrote it): starting afresh", partial, ", ".join(missing)
        )
        shutil.rmtree(resume_dir)
    resume_dir.mkdir(parents=True, exist_ok=True)
    if not recorded.exists():
        write_atomic(recorded, json.dumps(settings, indent=2, sort_keys=True))


def keep_history_rows(partial_history: Path, epochs_done: int) -> None:
    """Drop rows of epochs the backup does not cover (a kill between CSV row and backup)."""
    if not partial_history.exists():
        return
    if epochs_done == 0:
        partial_history.unlink()
        return
    rows = pd.read_csv(partial_history)
    rows[rows["epoch"] < epochs_done].to_csv(partial_history, index=False)


def first_start(resume_dir: Path, started_at: str) -> str:
    """When the run's first attempt started (kept in the resume folder across attempts)."""
    path = resume_dir / STARTED_AT
    if not path.exists():
        write_atomic(path, started_at)
    return path.read_text().strip()
