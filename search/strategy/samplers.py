"""Samplers and pruners by name: the tables behind --sampler and --pruner."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import optuna
from optuna.exceptions import ExperimentalWarning

from search.strategy.rungs import RungHalving, RungHyperband
from search.strategy.tpe import GroupedTPESampler


def _tpe(seed: int, constant_liar: bool = False) -> optuna.samplers.BaseSampler:
    # Grouped multivariate TPE models each optimizer's conditional parameters jointly, and the
    # constant liar keeps parallel workers from sampling the same point.
    return GroupedTPESampler(seed=seed, constant_liar=constant_liar, n_startup_trials=10)


def _cmaes(seed: int) -> optuna.samplers.BaseSampler:
    # CMA-ES covers the continuous parameters; categorical ones fall back to random search.
    return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)


def _gp(seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)


def _qmc(seed: int) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return optuna.samplers.QMCSampler(seed=seed, scramble=True,
                                          warn_independent_sampling=False,
                                          warn_asynchronous_seeding=False)


def _nsga2(seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=seed)


def _random(seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "tpe": _tpe,
    "random": _random,
    "cmaes": _cmaes,
    "gp": _gp,
    "qmc": _qmc,
    "nsga2": _nsga2,
}

PRUNERS: dict[str, Callable[[int], optuna.pruners.BasePruner]] = {
    "sha": lambda epochs: RungHalving(min_resource=1, reduction_factor=3),
    "hyperband": lambda epochs: RungHyperband(min_resource=1, max_resource=epochs,
                                              reduction_factor=3),
    "median": lambda epochs: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
    "none": lambda epochs: optuna.pruners.NopPruner(),
}


def _multi_objective_tpe(seed: int, constant_liar: bool) -> optuna.samplers.BaseSampler:
    # Stock multivariate TPE: its multi-objective split (non-dominated sorting, then
    # hypervolume) is Optuna's; GroupedTPESampler's faster bookkeeping covers one objective.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                          constant_liar=constant_liar, n_startup_trials=10)


def make_sampler(name: str, seed: int, parallel: bool = False,
                 objectives: int = 1) -> optuna.samplers.BaseSampler:
    """``parallel``: other workers may run trials at the same time as this one."""
    if name == "tpe" and objectives > 1:
        return _multi_objective_tpe(seed, constant_liar=parallel)
    if name == "tpe":
        # The constant liar only matters beside other workers, and it turns off the sampler's
        # per-trial cache (one storage read per parameter group instead of one per trial).
        return _tpe(seed, constant_liar=parallel)
    return SAMPLERS[name](seed)


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    return PRUNERS[name](epochs)


SAMPLER_NAMES = tuple(SAMPLERS)
PRUNER_NAMES = tuple(PRUNERS)
