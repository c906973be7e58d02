"""One-line error messages: every error this workflow reports fits on one log line."""

from __future__ import annotations


def one_line(text: object, limit: int | None = None) -> str:
    """``text`` (a message or an exception) with its white space folded, cut to ``limit`` characters."""
    return " ".join(str(text).split())[:limit]


def error_text(error: BaseException, limit: int = 120) -> str:
    """An exception as ``TypeName: message`` on one line, for a report's detail column."""
    text = one_line(error, limit)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
