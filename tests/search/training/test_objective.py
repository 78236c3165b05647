from __future__ import annotations

import math
import os
import signal

import optuna
import pytest
from optuna.trial import TrialState

from search.data.registry import DataBundle
from search.schema import FAIL_REASON
from search.training.loop import EpochResult
from search.training.objective import Objective, stalled
from tests.helpers.configs import CPU, GOOD, WIDE_LR


def test_objective_bad_configuration_is_pruned(tiny: DataBundle) -> None:
    # Rule: once good trials set the bar, a configuration that cannot learn is pruned early.
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=2))
    for _ in range(2):
        study.enqueue_trial(GOOD)
    study.enqueue_trial({**GOOD, "lr": 1e-7})
    study.optimize(Objective(tiny, WIDE_LR, epochs=4, seed=0, device=CPU), n_trials=3)
    good, _, bad = study.trials
    assert good.state == TrialState.COMPLETE and good.value > 0.5  # chance is 0.1
    assert bad.state == TrialState.PRUNED
    assert bad.user_attrs["epochs_run"] < 4


def test_objective_nan_trial_fails_alone(tiny: DataBundle) -> None:
    # Rule: a diverging trial fails with its reason recorded; the trials after it still run.
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({**GOOD, "optimizer": "sgd", "lr": 1e8, "sgd_momentum": 0.99,
                         "sgd_nesterov": False, "weight_decay": 1e-6})
    study.enqueue_trial(GOOD)
    study.optimize(Objective(tiny, WIDE_LR, epochs=2, seed=0, device=CPU), n_trials=2)
    diverged, after = study.trials
    assert diverged.state == TrialState.FAIL
    assert "nan" in diverged.user_attrs[FAIL_REASON] or "inf" in diverged.user_attrs[FAIL_REASON]
    assert after.state == TrialState.COMPLETE


def test_objective_records_user_attrs_and_reports_each_epoch(tiny: DataBundle) -> None:
    # Rule: each trial stores its size, epochs, speed and device, and reports every epoch.
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(GOOD)
    study.optimize(Objective(tiny, WIDE_LR, epochs=3, seed=0, device=CPU), n_trials=1)
    trial = study.trials[0]
    assert trial.user_attrs["n_params"] > 0
    assert trial.user_attrs["epochs_run"] == 3
    assert trial.user_attrs["seconds_per_epoch"] > 0
    assert trial.user_attrs["device"] == "cpu"
    assert math.isfinite(trial.user_attrs["train_loss"])
    assert sorted(trial.intermediate_values) == [1, 2, 3]
    assert trial.value == trial.intermediate_values[3]


def test_objective_same_seed_same_result(tiny: DataBundle) -> None:
    # Rule: on the CPU a trial is bit-reproducible from the study seed and trial number.
    values = []
    for _ in range(2):
        study = optuna.create_study(direction="maximize")
        study.enqueue_trial(GOOD)
        study.optimize(Objective(tiny, WIDE_LR, epochs=2, seed=7, device=CPU), n_trials=1)
        values.append((study.trials[0].value, study.trials[0].user_attrs["train_loss"]))
    assert values[0] == values[1]


def test_stalled_counts_epochs_without_improvement() -> None:
    # Rule: patience N stops after N epochs that fail to beat the best before them.
    def epochs(*accuracies: float) -> list[EpochResult]:
        return [EpochResult(i, 1.0, a, 0.1) for i, a in enumerate(accuracies)]

    assert not stalled(epochs(0.5, 0.5, 0.5), patience=0)
    assert not stalled(epochs(0.5, 0.6), patience=1)
    assert stalled(epochs(0.5, 0.6, 0.6), patience=1)
    assert not stalled(epochs(0.5, 0.6, 0.6), patience=2)
    assert stalled(epochs(0.5, 0.6, 0.6, 0.55), patience=2)
    assert not stalled(epochs(0.5, 0.6, 0.6, 0.61), patience=2)


def test_objective_patience_ends_a_stalled_trial_as_complete(tiny: DataBundle) -> None:
    # Rule: a trial whose val accuracy stalls stops early and counts as complete, not pruned.
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    study.enqueue_trial({**GOOD, "lr": 1e-7})  # the weights barely move: accuracy stalls
    study.optimize(Objective(tiny, WIDE_LR, epochs=12, seed=0, device=CPU, patience=1),
                   n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE
    assert trial.user_attrs["stopped_early"] is True
    assert trial.user_attrs["epochs_run"] < 12
    assert trial.value == trial.intermediate_values[trial.user_attrs["epochs_run"]]


class _SignalsOnCollection:
    """Sends this process SIGINT from its finalizer, where Python swallows the exception."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # bytecode to run the handler on, still inside the finalizer
            pass


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed one
def test_ctrl_c_swallowed_by_a_finalizer_still_stops_the_trial(tiny: DataBundle,
                                                             interrupts_installed: None) -> None:
    # Rule: a Ctrl-C that lands in a finalizer ("Exception ignored in ...") is not lost: the
    # training loop raises it at its next batch, so Optuna fails the trial as interrupted.
    victim = _SignalsOnCollection()
    del victim  # the KeyboardInterrupt dies inside __del__; the test goes on
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(GOOD)
    with pytest.raises(KeyboardInterrupt):
        study.optimize(Objective(tiny, WIDE_LR, epochs=2, seed=0, device=CPU), n_trials=1)
    (trial,) = study.trials
    assert trial.state == TrialState.FAIL
    assert "epochs_run" not in trial.user_attrs  # stopped in its first epoch
