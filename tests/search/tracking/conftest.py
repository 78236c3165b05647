"""One real study, tracked with MLflow and TensorBoard at once, read by both test modules."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest

from search.data.registry import DataBundle
from tests.helpers.tracking import ENQUEUED, TARGET, tracked_study


@dataclass(frozen=True)
class Tracked:
    folder: Path
    study: optuna.Study
    mlflow_uri: str


@pytest.fixture(scope="package")
def tracked(tmp_path_factory: pytest.TempPathFactory, tiny: DataBundle) -> Iterator[Tracked]:
    """Four trials (complete, pruned, failed, and one more) in two runs of the same study: the
    second run raises the target, as a resumed search does."""
    folder = tmp_path_factory.mktemp("tracked")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    old = Path.cwd()
    os.chdir(folder)
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("MLFLOW_TRACKING_URI", uri)
            both = ("mlflow", "tensorboard")
            tracked_study(folder, tiny, both, enqueued=ENQUEUED[:2], target=2)
            study = tracked_study(folder, tiny, both, enqueued=ENQUEUED[2:], target=TARGET)
        yield Tracked(folder, study, uri)
    finally:
        os.chdir(old)
