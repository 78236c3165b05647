"""Successive halving and Hyperband asked only at the steps where they can prune.

Both prune only at rung steps (min_resource * reduction_factor ** k); at every other step
Optuna's ``prune`` returns False, but only after reading the trial's rung bookkeeping back
from the storage: one database round trip per epoch for nothing. These subclasses answer
False without it, and hand every question that reaches or passes a rung step to Optuna's own
``prune``, so the decisions are the same (tests/search/test_rungs.py runs both side by side).
They stay subclasses because Optuna checks for a HyperbandPruner: it hands the sampler a
per-bracket view of the study, and anything else would change what the sampler is given.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial


class _Rungs:
    """The rung steps min_resource * reduction_factor ** k, and the last step each trial asked at.

    The invariant that makes skipping safe: after a trial asks at step s (answered by Optuna
    or here), its next rung to pass lies beyond s. So the next question needs Optuna's answer
    only if a rung step lies in (s, step]. Keyed by trial number: one pruner serves one study.
    """

    def __init__(self, min_resource: int, reduction_factor: int) -> None:
        self._min_resource = min_resource
        self._reduction_factor = reduction_factor
        self._asked: dict[int, int] = {}

    def reached(self, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        previous = self._asked.get(trial.number, -1)
        self._asked[trial.number] = step
        rung = self._min_resource
        while rung <= previous:
            rung *= self._reduction_factor
        return rung <= step


class RungHalving(optuna.pruners.SuccessiveHalvingPruner):
    """``SuccessiveHalvingPruner(min_resource, reduction_factor)`` with an integer min_resource."""

    def __init__(self, min_resource: int, reduction_factor: int) -> None:
        super().__init__(min_resource=min_resource, reduction_factor=reduction_factor)
        self._rungs = _Rungs(min_resource, reduction_factor)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self._rungs.reached(trial) and super().prune(study, trial)


class RungHyperband(optuna.pruners.HyperbandPruner):
    """``HyperbandPruner(min_resource, max_resource, reduction_factor)``, integers throughout.

    Each bracket is a successive halving that starts later (min_early_stopping_rate = its
    index), so every bracket's rungs are among min_resource * reduction_factor ** k.
    """

    def __init__(self, min_resource: int, max_resource: int, reduction_factor: int) -> None:
        super().__init__(min_resource=min_resource, max_resource=max_resource,
                         reduction_factor=reduction_factor)
        self._rungs = _Rungs(min_resource, reduction_factor)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self._rungs.reached(trial) and super().prune(study, trial)
