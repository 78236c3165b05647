from __future__ import annotations

import dataclasses

import optuna
import pytest
from optuna.trial import FixedTrial

from model_space import PHOTO_SPACE, SearchSpace, TrialConfig, sample_config

CONDITIONAL = {
    "sgd": {"sgd_momentum", "sgd_nesterov"},
    "rmsprop": {"rmsprop_momentum"},
    "adam": {"adam_beta1"},
    "adamw": {"adam_beta1"},
}
ALL_CONDITIONAL = set().union(*CONDITIONAL.values())


def test_sample_config_on_a_real_study_has_only_the_chosen_optimizers_params() -> None:
    # Rule: conditional parameters exist only for the optimizer that was chosen.
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        config = sample_config(trial, SearchSpace())
        study.tell(trial, 0.5)
        seen.add(config.optimizer)
        present = set(trial.params) & ALL_CONDITIONAL
        assert present == CONDITIONAL[config.optimizer]
    assert seen == set(CONDITIONAL)


def test_sample_config_depth_decides_the_number_of_widths() -> None:
    # Rule: a trial of depth d has exactly width_0 .. width_{d-1}.
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(20):
        trial = study.ask()
        config = sample_config(trial, SearchSpace())
        study.tell(trial, 0.5)
        widths = sorted(k for k in trial.params if k.startswith("width_"))
        assert widths == [f"width_{i}" for i in range(config.depth)]
        assert trial.params["depth"] == len(config.widths)


def test_sample_config_replays_with_fixed_trial() -> None:
    # Rule: FixedTrial(params) rebuilds exactly the configuration a study sampled.
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
    trial = study.ask()
    sampled = sample_config(trial, SearchSpace())
    replayed = sample_config(FixedTrial(trial.params), SearchSpace())
    assert replayed == sampled


def test_sample_config_collapsed_range_is_a_constant_not_a_parameter() -> None:
    # Rule: low == high or a single choice fixes the value without a search dimension.
    space = SearchSpace(depth=(2, 2), widths=(16,), optimizers=("adam",), lr=(0.01, 0.01))
    config = sample_config(FixedTrial({"weight_decay": 1e-4, "dropout": 0.1, "batch_size": 64,
                                       "adam_beta1": 0.9}), space)
    assert config == TrialConfig(widths=(16, 16), optimizer="adam", lr=0.01, weight_decay=1e-4,
                                 dropout=0.1, batch_size=64, beta1=0.9)


def test_sample_config_fixed_trial_missing_param_is_an_error() -> None:
    # Rule: replaying with incomplete params fails loudly instead of inventing values.
    with pytest.raises(ValueError):
        sample_config(FixedTrial({"depth": 1}), SearchSpace())


PHOTOS = dataclasses.replace(SearchSpace(), **{**PHOTO_SPACE, "augment": (False, True)})


def test_photo_space_parameters_exist_only_where_they_apply() -> None:
    # Rule: residual is a parameter only of blocks of 2+ convs; cutout and test-time flips only
    # of augmented trials (a net trained without mirror images is not judged on them).
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = set()
    for _ in range(60):
        trial = study.ask()
        config = sample_config(trial, PHOTOS)
        study.tell(trial, 0.5)
        assert ("residual" in trial.params) == (config.convs > 1)
        assert ({"cutout", "tta_flip"} <= set(trial.params)) == config.augment
        if not config.augment:
            assert (config.cutout, config.tta_flip) == (0.0, False)
        if config.convs == 1:
            assert config.residual is False
        seen.add((config.convs, config.residual, config.augment, config.schedule))
    assert {c for c, *_ in seen} == {1, 2, 3} and {s for *_, s in seen} == {"cosine", "onecycle"}
    assert any(r for _, r, _, _ in seen)


def test_tpe_groups_the_conditional_photo_parameters() -> None:
    # Rule: with TPE's group mode (the project's default TPE), each conditional parameter is
    # sampled within the group of trials that have it: a real study runs without errors and
    # keeps the conditions.
    from search.strategy.samplers import make_sampler

    study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", seed=0))
    for _ in range(30):
        trial = study.ask()
        config = sample_config(trial, PHOTOS)
        study.tell(trial, config.convs / 3 + config.label_smoothing)
        assert ("residual" in trial.params) == (config.convs > 1)


def test_width_doubling_samples_only_the_first_width() -> None:
    # Rule: with width_doubling, width_0 is the one width parameter and each block has twice
    # the channels of the one before; without it, every block's width is its own parameter.
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=4))
    for _ in range(20):
        trial = study.ask()
        config = sample_config(trial, PHOTOS)
        study.tell(trial, 0.5)
        assert [k for k in trial.params if k.startswith("width_")] == ["width_0"]
        assert config.widths == tuple(trial.params["width_0"] * 2**i for i in range(config.depth))
