"""Markdown tables: one escaper and one row builder for every table the workflow writes (summary, claims, tests)."""

from __future__ import annotations


def cell(text) -> str:
    """Text for one table cell: on one line, backslashes and pipes escaped (a float shown with 4 significant digits)."""
    text = f"{text:.4g}" if isinstance(text, float) else str(text)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def row(cells) -> str:
    """One table row of escaped cells."""
    return "| " + " | ".join(cell(value) for value in cells) + " |"


def rule(columns: int, right_aligned_from: int | None = None) -> str:
    """The line under a table's header: left-aligned columns, right-aligned from column ``right_aligned_from``."""
    first = columns if right_aligned_from is None else right_aligned_from
    return "|" + "|".join(["---"] * first + ["---:"] * (columns - first)) + "|"
