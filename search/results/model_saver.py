"""The objective's hook that keeps trained weights as study artifacts, per ``--save-models``.

``best`` keeps one file per study, replaced in place when a trial beats it; ``all`` attaches each
completed trial's weights to the trial. Both are written by search.results.checkpoint.
"""

from __future__ import annotations

import fcntl
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from torch import nn

from model_space import TrialConfig
from search.data.format import InputFormat
from search.optuna_private import storage_of, study_id
from search.results.artifacts import (
    BEST_MODEL_NAME,
    CHECKPOINT_MIMETYPE,
    best_model_record,
    fixed_artifact_id,
    set_study_meta,
)
from search.results.checkpoint import write_checkpoint
from search.schema import BEST_MODEL_ATTR
from search.study.spec import SAVE_MODES


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    # Workers on this machine take turns to compare-and-replace the best model.
    with (directory / ".best.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _replace_file(directory: Path, artifact_id: str, write: Callable[[IO[bytes]], None]) -> None:
    # Write beside the target and rename, so a download never sees half a file.
    handle, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".pt")
    try:
        with os.fdopen(handle, "wb") as out:
            write(out)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from a dashboard run by another user
        os.replace(tmp, directory / artifact_id)
    finally:
        Path(tmp).unlink(missing_ok=True)


@dataclass(frozen=True)
class ModelSaver:
    """Objective hook that stores trained weights as artifacts, per ``--save-models``."""

    directory: Path  # the study's artifact directory, e.g. studies/artifacts/digits
    input_format: InputFormat  # of the data the study trains on
    mode: str = "best"
    # Why a model could not be saved (a full disk, a folder not writable), one line each. The
    # trial itself completes: its only fault was the save. The run stops after it.
    failures: list[str] = field(default_factory=list, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in SAVE_MODES:
            raise ValueError(f"unknown save mode {self.mode!r}; known: {', '.join(SAVE_MODES)}")

    def __call__(self, trial: optuna.Trial, model: nn.Module, config: TrialConfig,
                 value: float) -> None:
        if self.mode == "none" or not math.isfinite(value):
            return

        def write(destination: Path | IO[bytes]) -> None:
            write_checkpoint(destination, model, config, self.input_format, {"val_accuracy": value})

        try:
            if self.mode == "all":
                self._attach_to_trial(trial, write)
            else:
                self._keep_if_best(trial, write, value)
        except OSError as error:
            where = error.filename or self.directory
            self.failures.append(f"the model of trial {trial.number} could not be saved in "
                                 f"{str(where)!r}: {error.strerror or error}")

    def _attach_to_trial(self, trial: optuna.Trial, write: Callable[[Path], None]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.directory, prefix=".tmp-") as tmp:
            path = Path(tmp) / f"model-trial-{trial.number}.pt"
            write(path)
            upload_artifact(artifact_store=FileSystemArtifactStore(self.directory),
                            file_path=str(path), study_or_trial=trial,
                            mimetype=CHECKPOINT_MIMETYPE)

    def _keep_if_best(self, trial: optuna.Trial, write: Callable[[IO[bytes]], None],
                      value: float) -> None:
        study = trial.study
        self.directory.mkdir(parents=True, exist_ok=True)
        with _locked(self.directory):
            record = best_model_record(study)
            # Ties keep the earlier trial: the study maximizes, and it ranks ties the same way.
            if record is not None and value <= record["value"]:
                return
            artifact_id = fixed_artifact_id(study.study_name, BEST_MODEL_NAME)
            _replace_file(self.directory, artifact_id, write)
            set_study_meta(study, artifact_id, f"{BEST_MODEL_NAME}-trial-{trial.number}.pt")
            storage_of(study).set_study_system_attr(
                study_id(study), BEST_MODEL_ATTR,
                {"trial": trial.number, "value": value, "artifact_id": artifact_id})


def save_failure(hook: object) -> str | None:
    """The first save failure of an objective's hook, if the hook is a ModelSaver."""
    return hook.failures[0] if isinstance(hook, ModelSaver) and hook.failures else None
