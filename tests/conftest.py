"""Shared fixtures: tiny real data and a working directory of its own for each test."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

# One thread per process, subprocesses included: two OpenMP threads on a loaded 2-core machine
# can run tiny convolutions 100x slower while they wait on each other.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# mlflow 3 sends usage telemetry from a thread of its own; tests reach no one outside.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import optuna
import pytest
import torch

from search import interrupts
from search.data.options import DataOptions
from search.data.registry import DataBundle, Split, load_bundle
from tests.helpers.configs import TINY_SPACE_TOML

optuna.logging.set_verbosity(optuna.logging.WARNING)
torch.set_num_threads(1)


@pytest.fixture()
def interrupts_installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """search.interrupts' handlers for one test; the process's handlers and the interrupt flag
    as they were after it, so no later test stops on this one's signal."""
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr(interrupts, "_signalled", False)
    interrupts.install()
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


@pytest.fixture(scope="session")
def digits() -> DataBundle:
    return load_bundle(DataOptions())


def subset(split: Split, n: int) -> Split:
    return Split(split.x[:n], split.y[:n])


@pytest.fixture(scope="session")
def tiny(digits: DataBundle) -> DataBundle:
    """300 training and 150 validation digits."""
    return DataBundle(name="tiny", train=subset(digits.train, 300), val=subset(digits.val, 150),
                      classes=digits.classes, mean=digits.mean, std=digits.std)


@pytest.fixture()
def workdir(tmp_path: Path) -> Iterator[Path]:
    """Run in a fresh directory, so default paths (studies/, reports/) land there."""
    old = Path.cwd()
    os.chdir(tmp_path)
    (tmp_path / "tiny.toml").write_text(TINY_SPACE_TOML)
    try:
        yield tmp_path
    finally:
        os.chdir(old)
