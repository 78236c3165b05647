"""GroupedTPESampler draws what Optuna's grouped multivariate TPE draws, with one split per trial."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.samplers._tpe import sampler as tpe_module
from optuna.trial import TrialState

from model_space import SearchSpace, sample_config
from search.strategy.tpe import GroupedTPESampler, _Scores

SPACE = SearchSpace()
EPOCHS = 6


def objective(trial: optuna.Trial) -> float:
    """Our whole search space, a made-up learning curve, and successive halving."""
    config = sample_config(trial, SPACE)
    peak = 1.0 - abs(math.log10(config.lr) + 2.0) / 4.0 - 0.2 * config.dropout
    peak -= 0.05 * len(config.widths)
    value = 0.0
    for epoch in range(1, EPOCHS + 1):
        value = peak * (1.0 - 0.5**epoch)
        trial.report(value, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def stock(seed: int, constant_liar: bool) -> optuna.samplers.TPESampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                          constant_liar=constant_liar, n_startup_trials=10)


def ours(seed: int, constant_liar: bool) -> GroupedTPESampler:
    return GroupedTPESampler(seed=seed, constant_liar=constant_liar, n_startup_trials=10)


def run(sampler: optuna.samplers.BaseSampler, trials: int) -> optuna.Study:
    study = optuna.create_study(direction="maximize", sampler=sampler,
                                pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1))
    study.optimize(objective, n_trials=trials)
    return study


@pytest.fixture(autouse=True)
def _quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)


@pytest.mark.parametrize("constant_liar", [False, True])
def test_same_draws_as_stock_tpe(constant_liar: bool) -> None:
    expected = run(stock(7, constant_liar), 60).trials
    got = run(ours(7, constant_liar), 60).trials
    assert sum(t.state == TrialState.PRUNED for t in got) > 10  # the split sees pruned trials
    assert len({len(t.params) for t in got}) > 3  # and a search space that changes shape
    assert [(t.params, t.state, t.value) for t in got] == [
        (t.params, t.state, t.value) for t in expected]


def test_same_draws_beside_running_trials() -> None:
    # Workers on one storage: trials asked while others still run (the constant liar's case).
    studies = [run(make(3, True), 25) for make in (stock, ours)]
    drawn = []
    for study in studies:
        running = [study.ask() for _ in range(3)]
        drawn.append([sample_config(trial, SPACE) for trial in running])
        for trial in running:
            study.tell(trial, 0.5)
        drawn[-1].append(sample_config(study.ask(), SPACE))
    assert drawn[0] == drawn[1]


def coarse(trial: optuna.Trial) -> float:
    """The split's corners: few complete trials, so pruned ones fill the good side, ranked by
    last step and then value; ties everywhere; NaN reports; trials pruned before any report."""
    config = sample_config(trial, SPACE)
    if config.dropout > 0.4 and trial.number % 15:
        raise optuna.TrialPruned()  # no intermediate value at all
    value = round(1.0 - abs(math.log10(config.lr) + 2.0) / 4.0, 1)  # a handful of values
    last = EPOCHS if trial.number % 15 == 0 else 1 + round(config.dropout * 20) % (EPOCHS - 1)
    for epoch in range(1, last + 1):
        trial.report(math.nan if config.lr > 0.03 and epoch == last else value * epoch / EPOCHS,
                     epoch)
    if last < EPOCHS:
        raise optuna.TrialPruned()
    return value


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_same_draws_with_ties_nan_and_unreported_trials(direction: str) -> None:
    got = []
    for sampler in (stock(11, False), ours(11, False)):
        study = optuna.create_study(direction=direction, sampler=sampler)
        study.optimize(coarse, n_trials=80)
        got.append([(t.params, t.state, t.value) for t in study.trials])
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) < 8  # fewer than TPE's good side holds at 80 trials
    assert len({t.last_step for t in pruned}) > 3
    assert any(not t.intermediate_values for t in pruned)
    assert any(math.isnan(v) for t in pruned for v in t.intermediate_values.values())
    assert got[0] == got[1]


def test_one_split_per_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    split = tpe_module._split_trials
    ours_split = _Scores.split

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return split(*args, **kwargs)

    def ours_counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return ours_split(*args, **kwargs)

    monkeypatch.setattr(tpe_module, "_split_trials", counted)
    monkeypatch.setattr(_Scores, "split", ours_counted)
    sampler = ours(1, False)
    study = run(sampler, 20)
    after_startup = len(study.trials) - 10
    assert len(sampler._group_decomposed_search_space.calculate(study).search_spaces) > 3
    assert len(calls) == after_startup
    calls.clear()
    run(stock(1, False), 20)
    assert len(calls) > 3 * after_startup  # stock TPE splits once per group


def test_one_sampler_serves_one_study(tmp_path: Path) -> None:
    # Its groups remember trials by number, which name trials within one study only.
    storage = f"sqlite:///{tmp_path / 'two.db'}"
    sampler = ours(0, False)
    for name in ("first", "second"):
        study = optuna.create_study(storage=storage, study_name=name, sampler=sampler,
                                    direction="maximize")
        if name == "first":
            study.optimize(objective, n_trials=12)
    with pytest.raises(ValueError, match="one study"):
        study.optimize(objective, n_trials=1, catch=())


def test_finished_trials_converted_once_per_group(monkeypatch: pytest.MonkeyPatch) -> None:
    # Stock TPE converts every finished trial's parameters again, for each group, each trial.
    converted: list[int] = []
    get_params = optuna.samplers.TPESampler._get_params

    def counted(self: optuna.samplers.TPESampler, trial: optuna.trial.FrozenTrial,
                study: optuna.Study) -> dict[str, object]:
        converted.append(trial.number)
        return get_params(self, trial, study)

    monkeypatch.setattr(optuna.samplers.TPESampler, "_get_params", counted)
    sampler = ours(2, False)
    study = run(sampler, 30)
    groups = len(sampler._group_decomposed_search_space.calculate(study).search_spaces)
    assert groups > 3
    assert max(converted.count(n) for n in set(converted)) <= groups
    converted.clear()
    run(stock(2, False), 30)
    assert max(converted.count(n) for n in set(converted)) > 10 * groups
