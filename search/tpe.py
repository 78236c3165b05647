"""Optuna's grouped multivariate TPE, drawing exactly what it draws, with less work per trial.

For each group of parameters that occur together (seven in our space: depth and widths, each
optimizer's own parameters, ...) stock TPE splits every finished trial into good and bad again,
and before that it derives the groups again from every finished trial. At trial 1,000 here
that was 45 of the 80 ms the sampler spent per trial, growing with the study. The split is the
same for every group of one trial, and a finished trial never changes, so here the split is
done once per trial and the groups are extended with new trials only. Each group also converts
every trial's parameters to the estimator's internal form again, twice (good and bad side);
here a finished trial's row is converted once per group and kept. tests/search/test_tpe.py
checks that the draws are the same as stock TPE's, trial for trial.

This leans on two private parts of Optuna 5's TPE (``_split_trials`` and the group search
space); the test fails if a new Optuna changes them.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.exceptions import ExperimentalWarning
from optuna.samplers._tpe import sampler as tpe_module
from optuna.search_space.group_decomposed import _SearchSpaceGroup
from optuna.trial import FrozenTrial, TrialState

_Split = tuple[list[FrozenTrial], list[FrozenTrial]]
_SplitKey = tuple[int, int, tuple[tuple[int, int, int], ...]]
_Row = tuple[Any, ...] | None  # a trial's internal values for one search space; None: lacks one
_SpaceKey = tuple[tuple[str, BaseDistribution], ...]


class _GroupsFromNewTrials:
    """The group decomposition of Optuna's TPE, fed each finished trial once.

    Adding a trial's distributions a second time leaves the groups and their order unchanged,
    so skipping trials already added gives what Optuna's full pass gives.
    """

    def __init__(self) -> None:
        self._groups = _SearchSpaceGroup()
        self._added: set[int] = set()
        self._study_id: int | None = None

    def calculate(self, study: optuna.Study, use_cache: bool = False) -> _SearchSpaceGroup:
        # Trial numbers name trials within one study only, as Optuna's own check says.
        if self._study_id is None:
            self._study_id = study._study_id
        elif self._study_id != study._study_id:
            raise ValueError("a GroupedTPESampler serves one study; make one per study")
        states = (TrialState.COMPLETE, TrialState.PRUNED)  # what TPE's group=True asks for
        for trial in study._get_trials(deepcopy=False, states=states, use_cache=use_cache):
            if trial.number not in self._added:
                self._added.add(trial.number)
                self._groups.add_distributions(trial.distributions)
        return copy.deepcopy(self._groups)


class GroupedTPESampler(optuna.samplers.TPESampler):
    """``TPESampler(multivariate=True, group=True, ...)`` at a lower cost per trial."""

    def __init__(self, **kwargs: Any) -> None:
        with warnings.catch_warnings():
            # group (and the constant liar) are experimental in Optuna; using them is our choice.
            warnings.simplefilter("ignore", ExperimentalWarning)
            super().__init__(multivariate=True, group=True, **kwargs)
        self._group_decomposed_search_space = _GroupsFromNewTrials()  # type: ignore[assignment]
        self._splits: dict[_SplitKey, _Split] = {}
        self._rows: dict[_SpaceKey, dict[int, _Row]] = {}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        # One split serves every group of this trial; none outlives it.
        self._splits = {}
        try:
            return super().sample_relative(study, trial, search_space)
        finally:
            self._splits = {}

    def _sample(self, study: optuna.Study, trial: FrozenTrial,
                search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        # Optuna 5's TPESampler._sample, with the split looked up in self._splits.
        states = [TrialState.COMPLETE, TrialState.PRUNED]
        if self._constant_liar:
            states.append(TrialState.RUNNING)
        trials = study._get_trials(deepcopy=False, states=tuple(states),
                                   use_cache=not self._constant_liar)
        if self._constant_liar:
            trials = [t for t in trials if t.number != trial.number]
        if self._gamma is None:
            self._gamma = (tpe_module.default_gamma if len(study.directions) <= 1
                           else tpe_module.default_gamma_multiobjective)
        n_finished = sum(t.state != TrialState.RUNNING for t in trials)
        below, above = self._split(study, trials, self._gamma(n_finished))

        mpe_below = self._build_parzen_estimator(study, search_space, below, handle_below=True)
        mpe_above = self._build_parzen_estimator(study, search_space, above, handle_below=False)
        samples_below = mpe_below.sample(self._rng.rng, self._n_ei_candidates)
        acq_func_vals = self._compute_acquisition_func(samples_below, mpe_below, mpe_above)
        chosen = optuna.samplers.TPESampler._compare(samples_below, acq_func_vals)
        for name, distribution in search_space.items():
            chosen[name] = distribution.to_external_repr(chosen[name])
        return chosen

    def _split(self, study: optuna.Study, trials: list[FrozenTrial], n_below: int) -> _Split:
        # Each group reads the trials again, and other workers may have moved on in between.
        # Finished trials never change and never leave, so their count tells new ones apart.
        # Running ones (constant liar) may finish, fail or gain parameters: each is named by
        # its number and how many parameters and system attrs (relative draws) it holds.
        running = tuple((t.number, len(t.params), len(t.system_attrs))
                        for t in trials if t.state == TrialState.RUNNING)
        key = (n_below, len(trials), running)
        if key not in self._splits:
            self._splits[key] = tpe_module._split_trials(study, trials, n_below)
        return self._splits[key]

    def _get_internal_repr(self, trials: list[FrozenTrial],
                           search_space: dict[str, BaseDistribution],
                           study: optuna.Study) -> dict[str, np.ndarray]:
        # Optuna 5's TPESampler._get_internal_repr, with finished trials' rows kept per space.
        # Same values, order and dtypes: each column is built from the same Python values.
        rows = self._rows.setdefault(tuple(search_space.items()), {})
        kept = []
        for trial in trials:
            if trial.state.is_finished():
                if trial.number not in rows:
                    rows[trial.number] = self._row(trial, search_space, study)
                row = rows[trial.number]
            else:  # running (constant liar): its relative draws may still arrive
                row = self._row(trial, search_space, study)
            if row is not None:
                kept.append(row)
        return {name: np.asarray([row[i] for row in kept])
                for i, name in enumerate(search_space)}

    def _row(self, trial: FrozenTrial, search_space: dict[str, BaseDistribution],
             study: optuna.Study) -> _Row:
        params = self._get_params(trial, study)
        if not search_space.keys() <= params.keys():
            return None
        return tuple(distribution.to_internal_repr(params[name])
                     for name, distribution in search_space.items())
