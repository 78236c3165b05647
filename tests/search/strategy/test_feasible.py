"""Known limits kept out of the sampler's joint proposals (search.strategy.feasible)."""

from __future__ import annotations

import dataclasses

import optuna

from model_space import PHOTO_SPACE, SearchSpace, sample_config
from search.strategy.feasible import FeasibleSampler
from search.training.costs import architecture


def test_relative_draws_that_do_not_fit_are_drawn_again() -> None:
    # As in a study with a limit: a draw that does not fit (x >= 0.5) ends pruned untrained,
    # and TPE learns from it; drawing joint proposals again proposes fewer such, seed for seed.
    def objective(trial: optuna.Trial) -> float:
        x, y = trial.suggest_float("x", 0, 1), trial.suggest_float("y", 0, 1)
        if x >= 0.5:
            raise optuna.TrialPruned
        return y

    def fits(params: dict) -> bool | None:
        return None if "x" not in params else params["x"] < 0.5

    def over(sampler: optuna.samplers.BaseSampler) -> int:
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(objective, n_trials=40)
        return sum(t.params["x"] >= 0.5 for t in study.trials[10:])

    def tpe(seed: int) -> optuna.samplers.TPESampler:
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=5)

    wrapped = [over(FeasibleSampler(tpe(seed), fits)) for seed in range(4)]
    plain = [over(tpe(seed)) for seed in range(4)]
    assert all(w < p for w, p in zip(wrapped, plain, strict=True)), (wrapped, plain)


def test_architecture_of_a_draw_is_the_model_sample_config_builds() -> None:
    for space in (SearchSpace(), dataclasses.replace(SearchSpace(), **PHOTO_SPACE)):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
        for _ in range(20):
            trial = study.ask()
            config = sample_config(trial, space)
            model = architecture(trial.params, space)
            assert model is not None
            assert (model.widths, model.convs, model.residual, model.tta_flip) == (
                config.widths, config.convs, config.residual, config.tta_flip)
            study.tell(trial, 0.0)
        assert architecture({}, space) is None  # a draw without the depth: cannot tell
