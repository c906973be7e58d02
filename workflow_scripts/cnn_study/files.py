"""Atomic file writes: a reader sees the old file, the complete new one, or none, never half a file."""

from __future__ import annotations

import os
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


@contextmanager
def atomic_write(path: str | Path, durable: bool = False) -> Iterator[Path]:
    """Yield the partial path to write to; rename it to ``path`` when the block succeeds, delete it when it fails.

    ``durable`` also flushes the file to disk before the rename (resume state that must survive a crash).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    try:
        yield partial
        if durable:
            with open(partial, "rb+") as handle:
                os.fsync(handle.fileno())
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 text ending with a newline, atomically, with '\\n' line ends on every platform."""
    with atomic_write(path) as partial:
        partial.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8", newline="")


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a DataFrame as CSV without its index, atomically."""
    with atomic_write(path) as partial:
        frame.to_csv(partial, index=False)
