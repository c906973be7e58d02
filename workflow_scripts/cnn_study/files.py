"""Atomic file writes: a reader sees the old file, the complete new one, or none, never half a file.

A full disk (ENOSPC, or a quota: EDQUOT) while writing is :class:`DiskFullError`, one line with the path,
the bytes needed (or written before the disk filled) and the bytes free; the partial file is removed.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported by the callers that write tables, not by every writer
    import pandas as pd


def partial_path(path: str | Path) -> Path:
    """The temporary name beside ``path``; it keeps every suffix (.weights.h5), for writers that choose the format
    by it."""
    path = Path(path)
    stem, dot, suffixes = path.name.partition(".")
    return path.with_name(f"{stem}.partial{dot}{suffixes}")


DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
# What libraries that lose the errno (h5py, for one) still say.
DISK_FULL_TEXTS = ("No space left on device", "Disk quota exceeded")


class DiskFullError(OSError):
    """A file did not fit on its disk; ``str()`` is one line: the path, the bytes needed or written, the bytes free."""

    def __init__(self, path: str | Path, needed: int | None = None, written: int | None = None):
        super().__init__(errno.ENOSPC, disk_full_message(path, needed, written), str(path))

    def __str__(self) -> str:
        return self.strerror


def disk_full_error(error: BaseException) -> BaseException | None:
    """The error that says the disk is full (ENOSPC, EDQUOT, or their text), ``error`` itself or its cause or
    context however deep; None when none does."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
            return error
        if any(text in str(error) for text in DISK_FULL_TEXTS):
            return error
        error = error.__cause__ or error.__context__
    return None


def is_disk_full(error: BaseException) -> bool:
    return disk_full_error(error) is not None


def free_bytes(path: str | Path) -> int:
    """Bytes free for this user on the file system that holds ``path`` (or its nearest existing folder)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def disk_full_message(path: str | Path, needed: int | None = None, written: int | None = None) -> str:
    """``<path>: disk full, <needed> bytes needed and <free> bytes free ...; what to do`` on one line."""
    if needed is not None:
        amount = f", {needed} bytes needed and"
    elif written is not None:
        amount = f" after {written} bytes written,"
    else:
        amount = ","
    return (
        f"{path}: disk full{amount} {free_bytes(path)} bytes free on its file system; "
        "free space there (or run the workflow on a larger disk), then rerun"
    )


def check_free_space(path: str | Path, needed: int) -> None:
    """Raise DiskFullError before writing ``needed`` bytes at ``path`` when its file system has less free."""
    if free_bytes(path) < needed:
        raise DiskFullError(path, needed)


@contextmanager
def atomic_write(path: str | Path, durable: bool = False, size: int | None = None) -> Iterator[Path]:
    """Yield the partial path to write to; rename it to ``path`` when the block succeeds, delete it when it fails.

    ``durable`` also flushes the file to disk before the rename (resume state that must survive a crash).
    ``size``, when known, is checked against the free space first. A full disk is a DiskFullError.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    if size is not None:
        check_free_space(path, size)
    try:
        yield partial
        if durable:
            with open(partial, "rb+") as handle:
                os.fsync(handle.fileno())
        partial.replace(path)
    except BaseException as error:
        written = partial.stat().st_size if partial.exists() else 0
        partial.unlink(missing_ok=True)
        if is_disk_full(error) and not isinstance(error, DiskFullError):
            raise DiskFullError(path, size, written) from error
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 text ending with a newline, atomically, with '\\n' line ends on every platform."""
    data = (text if text.endswith("\n") else text + "\n").encode("utf-8")
    with atomic_write(path, size=len(data)) as partial:
        partial.write_bytes(data)


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a DataFrame as CSV without its index, atomically."""
    with atomic_write(path) as partial:
        frame.to_csv(partial, index=False)
