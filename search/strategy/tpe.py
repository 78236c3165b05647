"""Optuna's grouped multivariate TPE, drawing exactly what it draws, with less work per trial.

For each group of parameters that occur together (seven in our space: depth and widths, each
optimizer's own parameters, ...) stock TPE splits every finished trial into good and bad again,
and before that it derives the groups again from every finished trial. At trial 1,000 here
that was 45 of the 80 ms the sampler spent per trial, growing with the study. The split is the
same for every group of one trial, and a finished trial never changes, so here the split is
done once per trial and the groups are extended with new trials only. Each group also converts
every trial's parameters to the estimator's internal form again, twice (good and bad side);
here a finished trial's row is converted once per group and kept, in columns indexed by trial
number, so each estimator's observations are one array lookup, not a Python loop over every
trial. tests/search/strategy/test_tpe.py checks that the draws are the same as stock TPE's, trial for
trial.

This leans on two private parts of Optuna 5's TPE (``_split_trials`` and the group search
space), reached through search.optuna_private, and on TPESampler's own attributes as its
subclass; the equivalence tests fail if a new Optuna changes them.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState

from search.optuna_private import TPE_MODULE, SearchSpaceGroup, study_id

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
        self._groups = SearchSpaceGroup()
        self._added: set[int] = set()
        self._study_id: int | None = None

    def calculate(self, study: optuna.Study, use_cache: bool = False) -> SearchSpaceGroup:
        # Trial numbers name trials within one study only, as Optuna's own check says.
        if self._study_id is None:
            self._study_id = study_id(study)
        elif self._study_id != study_id(study):
            raise ValueError("a GroupedTPESampler serves one study; make one per study")
        states = (TrialState.COMPLETE, TrialState.PRUNED)  # what TPE's group=True asks for
        for trial in study._get_trials(deepcopy=False, states=states, use_cache=use_cache):
            if trial.number not in self._added:
                self._added.add(trial.number)
                self._groups.add_distributions(trial.distributions)
        return copy.deepcopy(self._groups)


class _Columns:
    """One search space's internal values for finished trials, one array per parameter.

    Indexed by trial number: ``known`` says a trial's row was computed, ``has`` that the trial
    holds every parameter of the space. Each column takes the dtype np.asarray gives its first
    value (float64, or int64 for a categorical index), as Optuna's list-then-asarray does.
    """

    def __init__(self, width: int) -> None:
        self.known = np.zeros(0, dtype=bool)
        self.has = np.zeros(0, dtype=bool)
        self.values: list[np.ndarray | None] = [None] * width

    def reserve(self, size: int) -> None:
        self.known, self.has, *self.values = _reserved([self.known, self.has, *self.values], size)

    def add(self, number: int, row: _Row) -> None:
        self.known[number] = True
        if row is None:
            return
        self.has[number] = True
        for i, value in enumerate(row):
            column = self.values[i]
            if column is None:
                column = self.values[i] = np.zeros(len(self.known), np.asarray([value]).dtype)
            column[number] = value


def _reserved(arrays: list[Any], size: int) -> list[Any]:
    """Arrays indexed by trial number (the first one always exists; others may still be None),
    grown together to hold index ``size - 1``, doubling so that growth is rare."""
    if size <= len(arrays[0]):
        return arrays
    size = max(size, 2 * len(arrays[0]), 64)
    grown = []
    for array in arrays:
        if array is not None:
            bigger = np.zeros(size, dtype=array.dtype)
            bigger[:len(array)] = array
            array = bigger
        grown.append(array)
    return grown


class _Numbered(list[FrozenTrial]):
    """A split's side, with its trials' numbers as an array: each group's estimator looks its
    rows up by them, so they are taken once per split, not once per group."""

    numbers: np.ndarray


class _Scores:
    """What Optuna's ``_split_trials`` sorts finished trials by, kept by trial number.

    Single objective, no constraints, no running trials: complete trials by value, best
    first, then pruned trials by (-last step, value at it; NaN last), each stable in the
    order given. Both sorts run on arrays here, so a split is not a Python pass over every
    trial's attributes.
    """

    def __init__(self) -> None:
        self.known = np.zeros(0, dtype=bool)
        self.complete = np.zeros(0, dtype=bool)
        self.first = np.zeros(0)  # complete: the value; pruned: -(last step)
        self.second = np.zeros(0)  # pruned: the value at the last step, signed to sort up

    def split(self, study: optuna.Study, trials: list[FrozenTrial], n_below: int) -> _Split:
        numbers = np.fromiter((t.number for t in trials), dtype=np.int64, count=len(trials))
        if numbers.size:
            self._reserve(int(numbers.max()) + 1)
            for position in np.flatnonzero(~self.known[numbers]).tolist():
                self._add(trials[position], study.direction)
        complete = self.complete[numbers]
        at_c, at_p = np.flatnonzero(complete), np.flatnonzero(~complete)
        values = self.first[numbers[at_c]]
        if study.direction == optuna.study.StudyDirection.MAXIMIZE:
            values = -values  # stable ascending on -v keeps ties in order, as reverse=True does
        by_value = at_c[np.argsort(values, kind="stable")]
        n_complete = min(n_below, len(by_value))
        chosen = numbers[at_p]
        by_score = at_p[np.lexsort((self.second[chosen], self.first[chosen]))]
        n_pruned = min(max(0, n_below - n_complete), len(by_score))
        below = np.concatenate([by_value[:n_complete], by_score[:n_pruned]])
        above = np.concatenate([by_value[n_complete:], by_score[n_pruned:]])
        return _in_number_order(trials, numbers, below), _in_number_order(trials, numbers, above)

    def _reserve(self, size: int) -> None:
        self.known, self.complete, self.first, self.second = _reserved(
            [self.known, self.complete, self.first, self.second], size)

    def _add(self, trial: FrozenTrial, direction: optuna.study.StudyDirection) -> None:
        n = trial.number
        self.known[n] = True
        if trial.state == TrialState.COMPLETE:
            self.complete[n] = True
            self.first[n] = trial.value
            return
        # Optuna's _get_pruned_trial_score, as two columns.
        if not trial.intermediate_values:
            self.first[n], self.second[n] = 1, 0.0
            return
        step, value = max(trial.intermediate_values.items())
        self.first[n] = -step
        if math.isnan(value):
            self.second[n] = math.inf
        else:
            self.second[n] = value if direction == optuna.study.StudyDirection.MINIMIZE else -value


def _in_number_order(trials: list[FrozenTrial], numbers: np.ndarray,
                     positions: np.ndarray) -> _Numbered:
    positions = positions[np.argsort(numbers[positions], kind="stable")]
    side = _Numbered(trials[i] for i in positions.tolist())
    side.numbers = numbers[positions]
    return side


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
        self._columns: dict[_SpaceKey, _Columns] = {}
        self._scores = _Scores()

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
            self._gamma = (TPE_MODULE.default_gamma if len(study.directions) <= 1
                           else TPE_MODULE.default_gamma_multiobjective)
        n_finished = (sum(t.state != TrialState.RUNNING for t in trials) if self._constant_liar
                      else len(trials))
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
                        for t in trials if t.state == TrialState.RUNNING) if self._constant_liar else ()
        key = (n_below, len(trials), running)
        if key not in self._splits:
            simple = (not self._constant_liar and self._constraints_func is None
                      and len(study.directions) == 1)
            self._splits[key] = (self._scores.split(study, trials, n_below) if simple
                                 else TPE_MODULE._split_trials(study, trials, n_below))
        return self._splits[key]

    def _get_internal_repr(self, trials: list[FrozenTrial],
                           search_space: dict[str, BaseDistribution],
                           study: optuna.Study) -> dict[str, np.ndarray]:
        # Optuna 5's TPESampler._get_internal_repr, with finished trials' rows kept per space.
        # Same values, order and dtypes: each column is built from the same Python values.
        if not self._constant_liar:  # then _sample asked for finished trials only
            return self._finished_repr(trials, search_space, study)
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

    def _finished_repr(self, trials: list[FrozenTrial], search_space: dict[str, BaseDistribution],
                       study: optuna.Study) -> dict[str, np.ndarray]:
        columns = self._columns.setdefault(tuple(search_space.items()), _Columns(len(search_space)))
        numbers = (trials.numbers if isinstance(trials, _Numbered) else
                   np.fromiter((t.number for t in trials), dtype=np.int64, count=len(trials)))
        if numbers.size:
            columns.reserve(int(numbers.max()) + 1)
            for position in np.flatnonzero(~columns.known[numbers]).tolist():
                trial = trials[position]
                columns.add(trial.number, self._row(trial, search_space, study))
        picked = numbers[columns.has[numbers]] if numbers.size else numbers
        if not picked.size:  # as np.asarray([]): float64, whatever the column holds
            return {name: np.asarray([]) for name in search_space}
        return {name: columns.values[i][picked]  # type: ignore[index]
                for i, name in enumerate(search_space)}
