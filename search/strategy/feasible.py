"""Known limits kept out of the sampler's proposals: rejection sampling on relative draws.

A model's parameters, MACs and latency follow from its configuration alone, so whether a
proposal fits ``--max-params`` and the like is known before it trains: a known constraint,
not a black box. Ending such a trial at once (search.training.objective) still spends a trial
of the budget; here the sampler's joint (relative) proposal is drawn again, up to ``tries``
times, until it fits. TPE's random start-up trials are drawn one parameter at a time and are
not judged here; the objective ends those that do not fit, and TPE learns from them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

# How many joint draws a trial may take before the last one is used anyway (and, if it does
# not fit, ended untrained by the objective). A TPE draw costs 5-50 ms here. More is not
# better: on digits with --max-params 20000 (seed 1), 50 draws kept every trial within the
# limit but held TPE to the one model shape it had found (best 0.931, against 0.986 with 10):
# the draws that fit were those nearest the trials it knew.
TRIES = 10


class FeasibleSampler(optuna.samplers.BaseSampler):
    """``inner``, with each relative draw repeated until ``fits(params)`` says it may train.

    ``fits`` answers None where a draw lacks what it needs to judge (such a draw is taken).
    """

    def __init__(self, inner: optuna.samplers.BaseSampler,
                 fits: Callable[[dict[str, Any]], bool | None], tries: int = TRIES) -> None:
        self.inner = inner
        self.fits = fits
        self.tries = tries

    def infer_relative_search_space(self, study: optuna.Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for _ in range(self.tries):
            params = self.inner.sample_relative(study, trial, search_space)
            if self.fits(params) is not False:
                break
        return params

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()
