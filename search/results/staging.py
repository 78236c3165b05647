"""Output folders that get a run's files whole or not at all.

A report or a retrain takes minutes. Ctrl-C, SIGTERM or a full disk part-way through used to
leave a best_config.json from one run beside a model.pt from another, or a truncated model.pt.
Files are now written into a hidden sibling folder and moved into place at the end, with
Ctrl-C and SIGTERM held back for the few renames that takes. A run that stops early leaves the
folder as the last finished run left it. Files in the folder that a run does not write are
kept, except the ones it owns (``owned``); a folder it writes (plots/) is replaced whole.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from search import interrupts

PREFIX = ".partial-"


@contextlib.contextmanager
def staged(final: Path, owned: Iterable[str] = ()) -> Iterator[Path]:
    """Yield an empty folder to write into; its entries replace those of ``final`` at the end.

    ``owned``: names of files the run writes only sometimes (model.onnx, with the deploy extra);
    one it did not write this time is removed from ``final``, so that no earlier run's file is
    taken for this run's. Nothing reaches ``final`` if the block raises (KeyboardInterrupt
    included).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}{PREFIX}"))
    try:
        yield staging
        with interrupts.held():
            _publish(staging, final, tuple(owned))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(staging: Path, final: Path, owned: tuple[str, ...]) -> None:
    final.mkdir(exist_ok=True)
    for name in owned:
        if not (staging / name).exists():
            (final / name).unlink(missing_ok=True)
    for entry in sorted(staging.iterdir()):
        target = final / entry.name
        if entry.is_dir() and target.is_dir():
            # A folder cannot be renamed over a non-empty one; the old one goes first, so no
            # plot from an earlier run is left beside this run's.
            shutil.rmtree(target)
        os.replace(entry, target)
