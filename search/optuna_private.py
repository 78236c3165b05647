"""Every use of Optuna's private API, in one place.

Each name here has a test in tests/search/test_optuna_private.py that fails if an Optuna 5.x
release moves or changes it, so an upgrade breaks one test with a clear name instead of a
search in the middle of the night.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import optuna
from optuna.samplers._tpe import sampler as _tpe_sampler
from optuna.search_space.group_decomposed import _SearchSpaceGroup
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._rdb.models import TrialModel
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import func

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore as ArtifactStore  # noqa: F401

# The logger that writes "Trial N failed with ..." (search.cli filters its tracebacks).
TRIAL_LOGGER = "optuna.study._optimize"


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage a study writes through (Optuna's trial cache over an RDB storage)."""
    return study._storage


def study_id(study: optuna.Study) -> int:
    return study._study_id


def trial_id(trial: FrozenTrial) -> int:
    return trial._trial_id


def rdb_backend(study: optuna.Study) -> RDBStorage | None:
    """The database storage behind ``study`` (under Optuna's trial cache); None for others."""
    storage = storage_of(study)
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, RDBStorage) else None


def count_by_state(backend: RDBStorage, study: optuna.Study) -> Counter[TrialState]:
    """Trials of ``study`` by state, in one COUNT ... GROUP BY query on Optuna's tables."""
    with _create_scoped_session(backend.scoped_session) as session:
        rows = (session.query(TrialModel.state, func.count(TrialModel.trial_id))
                .filter(TrialModel.study_id == study_id(study))
                .group_by(TrialModel.state).all())
    return Counter({state: count for state, count in rows})


def system_attrs(trial: optuna.Trial | FrozenTrial) -> dict[str, Any]:
    """A trial's system attrs; a running Trial (Optuna 5) no longer shows them publicly."""
    if isinstance(trial, FrozenTrial):
        return trial.system_attrs
    return trial._cached_frozen_trial.system_attrs


def reported_steps(trial: optuna.Trial) -> set[int]:
    """Steps the running trial already holds a value for (a retry inherits its first attempt's)."""
    return set(trial._cached_frozen_trial.intermediate_values)


# Optuna 5's TPE internals that search.strategy.tpe reuses: default_gamma,
# default_gamma_multiobjective and _split_trials.
TPE_MODULE = _tpe_sampler
# The groups of parameters that occur together, as grouped multivariate TPE derives them.
SearchSpaceGroup = _SearchSpaceGroup
