"""Pieces of one-line error messages: an exception's first line, and the "did you mean" part
(a typo's nearest known name, a folder's file)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


def nearest(word: str, known: Iterable[str]) -> str | None:
    """The known name closest to a typo, or None when nothing is close."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.7)
    return close[0] if close else None


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """" (did you mean X?)" for the closest known name, or "" when nothing is close."""
    close = nearest(word, known)
    return f" (did you mean {close}?)" if close else ""


def file_inside(folder: Path, name: str) -> str:
    """"; did you mean FOLDER/NAME?" when a folder was given where its file was meant."""
    inside = folder / name
    return f"; did you mean {inside}?" if inside.is_file() else ""


def first_line(error: Exception) -> str:
    """An exception's first line of text (its class name when it has none)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
