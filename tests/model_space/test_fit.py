from __future__ import annotations

import dataclasses

import optuna
import pytest

from model_space import PHOTO_SPACE, SearchSpace, TrialConfig, fit_config, sample_config

SGD = TrialConfig(widths=(8, 16), optimizer="sgd", lr=0.05, weight_decay=1e-4, dropout=0.2,
                  batch_size=64, momentum=0.9, nesterov=True)
ADAM = TrialConfig(widths=(32, 64, 128), optimizer="adam", lr=3e-3, weight_decay=1e-5,
                   dropout=0.1, batch_size=128, beta1=0.9)
SMALL = SearchSpace(depth=(1, 2), widths=(8, 16), batch_sizes=(64,))


@pytest.mark.parametrize(("config", "space", "params", "moved"), [
    # A configuration of the space itself is taken as is.
    (SGD, SMALL, {"depth": 2, "width_0": 8, "width_1": 16, "optimizer": "sgd", "lr": 0.05,
                  "weight_decay": 1e-4, "dropout": 0.2, "sgd_momentum": 0.9,
                  "sgd_nesterov": True}, False),
    # Numbers outside a range are clipped; a numeric choice goes to the nearest (log scale);
    # a parameter the space does not suggest (nesterov fixed, batch size fixed) is dropped.
    (SGD, SearchSpace(depth=(1, 2), widths=(12, 64), lr=(1e-3, 1e-2), batch_sizes=(128,),
                      sgd_nesterov=(True,)),
     {"depth": 2, "width_0": 12, "width_1": 12, "optimizer": "sgd", "lr": 1e-2,
      "weight_decay": 1e-4, "dropout": 0.2, "sgd_momentum": 0.9}, True),
    # A shallower space: depth clipped, the blocks it lacks dropped.
    (ADAM, SMALL, {"depth": 2, "width_0": 16, "width_1": 16, "optimizer": "adam", "lr": 3e-3,
                   "weight_decay": 1e-5, "dropout": 0.1, "adam_beta1": 0.9}, True),
    # A deeper space: the blocks the configuration lacks are left to the sampler.
    (SGD, SearchSpace(depth=(3, 4), widths=(8, 16)),
     {"depth": 3, "width_0": 8, "width_1": 16, "optimizer": "sgd", "lr": 0.05,
      "weight_decay": 1e-4, "dropout": 0.2, "batch_size": 64, "sgd_momentum": 0.9,
      "sgd_nesterov": True}, True),
    # Doubling widths are written as doubling in a space that doubles: the same net.
    (ADAM, SearchSpace(depth=(1, 4), widths=(16, 32), width_doubling=(True,),
                       optimizers=("adam",)),
     {"depth": 3, "width_0": 32, "lr": 3e-3, "weight_decay": 1e-5, "dropout": 0.1,
      "batch_size": 128, "adam_beta1": 0.9}, False),
])
def test_fit_config_clips_nearest_drops_and_leaves_to_the_sampler(
        config: TrialConfig, space: SearchSpace, params: dict, moved: bool) -> None:
    fitted = fit_config(config, space)
    assert fitted.clash is None
    assert fitted.params == params
    assert fitted.moved is moved


@pytest.mark.parametrize(("config", "space", "clash"), [
    (SGD, SearchSpace(optimizers=("adam", "adamw")), "optimizer 'sgd'"),
    # A value the space fixes counts as much as one it chooses among.
    (SGD, SearchSpace(optimizers=("adam",)), "optimizer 'sgd'"),
    (SGD, SearchSpace(schedules=("constant", "onecycle")), "schedule 'cosine'"),
    (SGD, SearchSpace(augment=(True,)), "augment False"),
    (SGD, SearchSpace(sgd_nesterov=(False,)), "nesterov True"),
])
def test_fit_config_refuses_a_value_that_is_not_a_number(
        config: TrialConfig, space: SearchSpace, clash: str) -> None:
    # Rule: a non-numeric value the new space does not allow cannot be fitted.
    fitted = fit_config(config, space)
    assert (fitted.clash, fitted.params) == (clash, {})


def test_fit_config_residual_counts_only_where_both_nets_have_blocks_of_convs() -> None:
    # Rule: residual is compared only where it applies on both sides (convs > 1).
    photo = dataclasses.replace(SearchSpace(), **PHOTO_SPACE)
    one_conv = dataclasses.replace(photo, convs=(1,))
    config = TrialConfig(widths=(32, 64), optimizer="sgd", lr=0.1, weight_decay=5e-4,
                         dropout=0.2, batch_size=128, schedule="onecycle", momentum=0.9,
                         nesterov=True, augment=True, convs=2, residual=True, cutout=0.25)
    assert fit_config(config, dataclasses.replace(photo, residual=(False,))).clash == \
        "residual True"
    assert fit_config(config, one_conv).moved  # convs 2 -> 1: the residual no longer applies


def test_fitted_parameters_are_what_a_study_takes() -> None:
    # Rule: enqueued, the fitted parameters are used as they are (Optuna resamples none), and
    # a parameter left out is drawn by the sampler.
    space = SearchSpace(depth=(3, 3), widths=(8, 16), lr=(1e-3, 1e-2))
    fitted = fit_config(SGD, space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(fitted.params)
    trial = study.ask()
    config = sample_config(trial, space)
    assert {k: trial.params[k] for k in fitted.params} == fitted.params
    assert "width_2" in trial.params and "width_2" not in fitted.params
    assert config.widths[:2] == (8, 16) and config.lr == 1e-2
