"""Model weights and report files stored as Optuna artifacts under ``studies/artifacts/<study>/``.

``--save-models best`` keeps one file per study: the best trial's weights so far, overwritten
in place when a trial beats it, so disk stays bounded. It is a *study* artifact under a fixed
id because Optuna cannot edit a finished trial's attributes: a per-trial file could be deleted,
but its entry would stay behind and break ``optuna.artifacts.get_all_artifact_meta``.
``--save-models all`` attaches each completed trial's weights to that trial.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import math
import mimetypes
import os
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import torch
from optuna.artifacts import ArtifactMeta, FileSystemArtifactStore, upload_artifact
from torch import nn

from model_space import TrialConfig
from search.data import DataBundle

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

ARTIFACT_ROOT = Path("studies") / "artifacts"
SAVE_MODES = ("best", "all", "none")
# Optuna keeps an artifact's metadata in the system attr "artifacts:<artifact id>".
ARTIFACT_ATTR_PREFIX = "artifacts:"
# Study system attr recording which trial the best-model artifact holds, and its value.
BEST_MODEL_ATTR = "cnn_search:best_model"
BEST_MODEL_NAME = "best-model"
CHECKPOINT_MIMETYPE = "application/octet-stream"
# Fixed ids are derived from the study name so that re-uploads replace instead of pile up.
_ID_NAMESPACE = uuid.UUID("6f2d3c1e-7a4b-4c8e-9f10-3b5a7d9e2c41")


def artifact_dir(study: str, root: Path = ARTIFACT_ROOT) -> Path:
    return root / study


def open_store(study: str, root: Path = ARTIFACT_ROOT) -> FileSystemArtifactStore:
    """The study's artifact store, creating its directory."""
    directory = artifact_dir(study, root)
    directory.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(directory)


def fixed_artifact_id(study_name: str, key: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, f"{study_name}\0{key}"))


def make_checkpoint(model: nn.Module, config: TrialConfig, data: DataBundle,
                    metrics: dict[str, float] | None = None) -> dict[str, Any]:
    """A self-describing checkpoint: rebuild with ``build_model(TrialConfig.from_dict(...))``."""
    return {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": config.to_dict(),
        "input_shape": list(data.input_shape),
        "classes": list(data.classes),
        "mean": list(data.mean),
        "std": list(data.std),
        "metrics": dict(metrics or {}),
    }


def _mimetype(filename: str) -> str:
    # The system table may map ".pt" to an unrelated type; checkpoints are plain bytes.
    if filename.endswith(".pt"):
        return CHECKPOINT_MIMETYPE
    return mimetypes.guess_type(filename)[0] or CHECKPOINT_MIMETYPE


def _set_study_meta(study: optuna.Study, artifact_id: str, filename: str) -> None:
    meta = ArtifactMeta(artifact_id=artifact_id, filename=filename,
                        mimetype=_mimetype(filename), encoding=mimetypes.guess_type(filename)[1])
    study._storage.set_study_system_attr(study._study_id, ARTIFACT_ATTR_PREFIX + artifact_id,
                                         json.dumps(dataclasses.asdict(meta)))


def upload_report_artifacts(study: optuna.Study, artifact_store: ArtifactStore,
                            paths: Sequence[str | Path]) -> list[str]:
    """Attach files (``model.pt``, ``report.html``) to the study; returns their artifact ids.

    A file re-uploaded under the same name replaces the earlier one, so re-running the report
    does not pile up copies. Usage: ``upload_report_artifacts(study,
    open_store(study.study_name), [out / "model.pt", out / "report.html"])``.
    """
    ids = []
    for path in map(Path, paths):
        artifact_id = fixed_artifact_id(study.study_name, f"report/{path.name}")
        with path.open("rb") as source:
            artifact_store.write(artifact_id, source)
        _set_study_meta(study, artifact_id, path.name)
        ids.append(artifact_id)
    return ids


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    # Workers on this machine take turns to compare-and-replace the best model.
    with (directory / ".best.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _replace_file(directory: Path, artifact_id: str, checkpoint: dict[str, Any]) -> None:
    # Write beside the target and rename, so a download never sees half a file.
    handle, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".pt")
    try:
        with os.fdopen(handle, "wb") as out:
            torch.save(checkpoint, out)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from a dashboard run by another user
        os.replace(tmp, directory / artifact_id)
    finally:
        Path(tmp).unlink(missing_ok=True)


def best_model_record(study: optuna.Study) -> dict[str, Any] | None:
    """``{"trial", "value", "artifact_id"}`` of the saved best model, or None."""
    return study._storage.get_study_system_attrs(study._study_id).get(BEST_MODEL_ATTR)


@dataclass(frozen=True)
class ModelSaver:
    """Objective hook that stores trained weights as artifacts, per ``--save-models``."""

    directory: Path  # the study's artifact directory, e.g. studies/artifacts/digits
    data: DataBundle
    mode: str = "best"

    def __post_init__(self) -> None:
        if self.mode not in SAVE_MODES:
            raise ValueError(f"unknown save mode {self.mode!r}; known: {', '.join(SAVE_MODES)}")

    def __call__(self, trial: optuna.Trial, model: nn.Module, config: TrialConfig,
                 value: float) -> None:
        if self.mode == "none" or not math.isfinite(value):
            return
        checkpoint = make_checkpoint(model, config, self.data, {"val_accuracy": value})
        if self.mode == "all":
            self._attach_to_trial(trial, checkpoint)
        else:
            self._keep_if_best(trial, checkpoint, value)

    def _attach_to_trial(self, trial: optuna.Trial, checkpoint: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.directory, prefix=".tmp-") as tmp:
            path = Path(tmp) / f"model-trial-{trial.number}.pt"
            torch.save(checkpoint, path)
            upload_artifact(artifact_store=FileSystemArtifactStore(self.directory),
                            file_path=str(path), study_or_trial=trial,
                            mimetype=CHECKPOINT_MIMETYPE)

    def _keep_if_best(self, trial: optuna.Trial, checkpoint: dict[str, Any], value: float) -> None:
        study = trial.study
        self.directory.mkdir(parents=True, exist_ok=True)
        with _locked(self.directory):
            record = best_model_record(study)
            # Ties keep the earlier trial: the study maximizes, and it ranks ties the same way.
            if record is not None and value <= record["value"]:
                return
            artifact_id = fixed_artifact_id(study.study_name, BEST_MODEL_NAME)
            _replace_file(self.directory, artifact_id, checkpoint)
            _set_study_meta(study, artifact_id, f"{BEST_MODEL_NAME}-trial-{trial.number}.pt")
            study._storage.set_study_system_attr(
                study._study_id, BEST_MODEL_ATTR,
                {"trial": trial.number, "value": value, "artifact_id": artifact_id})
