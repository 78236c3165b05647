"""Trials by state, counted in the database: what the trial gate and the progress bar rely on."""

from __future__ import annotations

from collections import Counter

import optuna
from optuna.trial import TrialState

from search.optuna_private import count_by_state, rdb_backend

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def count_states(study: optuna.Study) -> Counter[TrialState]:
    """Trials by state. On a database, one COUNT query: reading every trial to count them cost
    a few ms per trial on a long study, paid before each trial starts and after each ends."""
    backend = rdb_backend(study)
    if backend is None:
        return Counter(t.state for t in study.get_trials(deepcopy=False))
    return count_by_state(backend, study)


def finished(counts: Counter[TrialState]) -> int:
    return counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
