"""Model weights and report files stored as Optuna artifacts under ``studies/artifacts/<study>/``.

This module only names and records artifacts (no torch: the dashboard reads them);
search.results.model_saver writes the models.

``--save-models best`` keeps one file per study: the best trial's weights so far, overwritten
in place when a trial beats it, so disk stays bounded. It is a *study* artifact under a fixed
id because Optuna cannot edit a finished trial's attributes: a per-trial file could be deleted,
but its entry would stay behind and break ``optuna.artifacts.get_all_artifact_meta``.
``--save-models all`` attaches each completed trial's weights to that trial.
"""

from __future__ import annotations

import dataclasses
import json
import mimetypes
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.artifacts import ArtifactMeta, FileSystemArtifactStore

from search.optuna_private import storage_of, study_id
from search.schema import ARTIFACT_ATTR_PREFIX, BEST_MODEL_ATTR

if TYPE_CHECKING:
    from search.optuna_private import ArtifactStore

ARTIFACT_ROOT = Path("studies") / "artifacts"
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


def mimetype(filename: str) -> str:
    # The system table may map ".pt" to an unrelated type; checkpoints are plain bytes.
    if filename.endswith(".pt"):
        return CHECKPOINT_MIMETYPE
    return mimetypes.guess_type(filename)[0] or CHECKPOINT_MIMETYPE


def set_study_meta(study: optuna.Study, artifact_id: str, filename: str) -> None:
    meta = ArtifactMeta(artifact_id=artifact_id, filename=filename,
                        mimetype=mimetype(filename), encoding=mimetypes.guess_type(filename)[1])
    storage_of(study).set_study_system_attr(study_id(study), ARTIFACT_ATTR_PREFIX + artifact_id,
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
        set_study_meta(study, artifact_id, path.name)
        ids.append(artifact_id)
    return ids


def best_model_record(study: optuna.Study) -> dict[str, Any] | None:
    """``{"trial", "value", "artifact_id"}`` of the saved best model, or None."""
    return storage_of(study).get_study_system_attrs(study_id(study)).get(BEST_MODEL_ATTR)
