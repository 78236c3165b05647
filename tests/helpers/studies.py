"""Reading studies and running search.run from tests."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import optuna
from optuna.trial import TrialState


def load(path: Path, name: str = "digits") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{path}")


def states(study: optuna.Study) -> list[TrialState]:
    return [t.state for t in study.get_trials(deepcopy=False)]


def finished(study: optuna.Study) -> int:
    return sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states(study))


def cli(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "search.run", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=timeout)


def read_states(db: Path) -> list[str]:
    """Trial states, read without writing: opening the file through Optuna while the run is
    still creating its schema would race it."""
    if not db.exists():
        return []
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as connection:
            return [row[0] for row in connection.execute("SELECT state FROM trials")]
    except sqlite3.Error:  # the schema is not there yet
        return []


def wait_for(predicate, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.2)
