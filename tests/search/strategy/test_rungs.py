"""The rung-only pruners decide what Optuna's own decide, with fewer storage reads."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import TrialState

from search.strategy.rungs import RungHalving, RungHyperband

EPOCHS = 8


def curve(trial: optuna.Trial) -> list[float]:
    x = trial.suggest_float("x", -3.0, 3.0)
    speed = trial.suggest_float("speed", 0.2, 2.0)
    return [(1.0 - abs(x) / 3.0) * (1.0 - math.exp(-speed * e)) for e in range(1, EPOCHS + 1)]


def every_epoch(trial: optuna.Trial) -> float:
    for epoch, value in enumerate(curve(trial), start=1):
        trial.report(value, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def every_other_epoch(trial: optuna.Trial) -> float:
    # Reports every epoch but asks only after even ones: rung 1 and 3 are asked late.
    for epoch, value in enumerate(curve(trial), start=1):
        trial.report(value, epoch)
        if epoch % 2 == 0 and trial.should_prune():
            raise optuna.TrialPruned()
    return value


def history(pruner: optuna.pruners.BasePruner, objective: object,
            storage: str | None = None) -> list[tuple[object, ...]]:
    # Hyperband puts a trial in a bracket by a hash of the study's name and the trial's number.
    study = optuna.create_study(direction="maximize", pruner=pruner, storage=storage,
                                sampler=optuna.samplers.RandomSampler(seed=5), study_name="rungs")
    study.optimize(objective, n_trials=60)  # type: ignore[arg-type]
    return [(t.state, t.last_step, t.value, t.system_attrs) for t in study.trials]


PAIRS = {
    "sha": (lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
            lambda: RungHalving(min_resource=1, reduction_factor=3)),
    "sha-min2": (lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=2,
                                                                reduction_factor=2),
                 lambda: RungHalving(min_resource=2, reduction_factor=2)),
    "hyperband": (lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=EPOCHS,
                                                         reduction_factor=3),
                  lambda: RungHyperband(min_resource=1, max_resource=EPOCHS,
                                        reduction_factor=3)),
}


@pytest.fixture(autouse=True)
def _quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)


@pytest.mark.parametrize("name", PAIRS)
@pytest.mark.parametrize("objective", [every_epoch, every_other_epoch])
def test_same_decisions_as_optuna(name: str, objective: object) -> None:
    stock, ours = PAIRS[name]
    expected = history(stock(), objective)
    got = history(ours(), objective)
    states = [state for state, *_ in got]
    assert states.count(TrialState.PRUNED) > 10 and states.count(TrialState.COMPLETE) > 3
    assert got == expected


def test_same_decisions_on_sqlite(tmp_path: object) -> None:
    stock, ours = PAIRS["hyperband"]
    expected = history(stock(), every_epoch, f"sqlite:///{tmp_path}/stock.db")
    assert history(ours(), every_epoch, f"sqlite:///{tmp_path}/ours.db") == expected


def test_asks_optuna_only_at_rung_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int | None] = []
    prune = optuna.pruners.SuccessiveHalvingPruner.prune

    def counted(self: optuna.pruners.BasePruner, study: optuna.Study,
                trial: optuna.trial.FrozenTrial) -> bool:
        asked.append(trial.last_step)
        return prune(self, study, trial)  # type: ignore[arg-type]

    monkeypatch.setattr(optuna.pruners.SuccessiveHalvingPruner, "prune", counted)
    history(RungHalving(min_resource=1, reduction_factor=3), every_epoch)
    assert set(asked) == {1, 3}
    asked.clear()
    history(RungHalving(min_resource=1, reduction_factor=3), every_other_epoch)
    assert set(asked) == {2, 4}  # the first questions at or after steps 1 and 3


def test_hyperband_stays_a_hyperband_to_optuna() -> None:
    # Optuna gives the sampler each bracket's trials only for a HyperbandPruner.
    assert isinstance(RungHyperband(1, EPOCHS, 3), optuna.pruners.HyperbandPruner)
