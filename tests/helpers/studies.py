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


def refused_in_one_line(argv: list[str], named: str, workdir: Path, capture) -> None:
    """``search.run`` refuses ``argv``: exit 2 (from argparse's parse_args or from main), one
    stderr line naming ``named`` and no traceback, and no study file in ``workdir``."""
    import pytest

    from search.run import main

    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(argv))
    assert exit_info.value.code == 2
    err = capture.readouterr().err
    assert named in err and err.strip().count("\n") == 0 and "Traceback" not in err
    assert not list(workdir.glob("studies/*.db"))
