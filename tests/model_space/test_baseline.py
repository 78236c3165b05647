from __future__ import annotations

import dataclasses

import optuna
import pytest

from model_space import (
    PHOTO_SPACE,
    SearchSpace,
    TrialConfig,
    baseline_config,
    baseline_params,
    sample_config,
)

SPACES = {
    "default": SearchSpace(),
    "shapes": SearchSpace(depth=(1, 3), widths=(8, 16, 32), augment=(True,)),
    "no sgd": SearchSpace(optimizers=("rmsprop", "adam")),
    "rmsprop only": SearchSpace(optimizers=("rmsprop",), rmsprop_momentum=(0.2, 0.5)),
    "narrow ranges": SearchSpace(depth=(5, 8), lr=(1e-3, 1e-2), weight_decay=(1e-3, 1e-2),
                                 dropout=(0.3, 0.5), sgd_momentum=(0.5, 0.8),
                                 sgd_nesterov=(False,), batch_sizes=(256, 512)),
    "fixed": SearchSpace(depth=(2, 2), widths=(16,), optimizers=("sgd",), lr=(0.01, 0.01),
                         batch_sizes=(32,), augment=(True, False)),
    "photo": dataclasses.replace(SearchSpace(), **PHOTO_SPACE),
    "photo, narrow": dataclasses.replace(SearchSpace(), **{
        **PHOTO_SPACE, "widths": (64, 256), "convs": (1, 3), "lr": (1e-3, 0.1),
        # Channels double from the first block's: only width_0 is chosen.
        "label_smoothing": (0.0, 0.05), "cutout": (0.25, 0.5), "augment": (False, True)}),
}


@pytest.mark.parametrize("name", SPACES)
def test_baseline_is_exactly_what_a_study_would_suggest(name: str) -> None:
    # Rule: enqueued in any space, the recipe is taken as is: every value lies in its range or
    # choices (Optuna would resample one that does not), and no parameter is missing or extra.
    space = SPACES[name]
    params = baseline_params(space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(params)
    trial = study.ask()
    config = sample_config(trial, space)
    assert trial.params == params
    assert config == baseline_config(space)


def test_baseline_on_the_default_space_is_the_textbook_sgd_recipe() -> None:
    assert baseline_config(SearchSpace()) == TrialConfig(
        widths=(32, 64, 128), optimizer="sgd", lr=0.02, weight_decay=5e-4, dropout=0.1,
        batch_size=64, schedule="cosine", momentum=0.9, nesterov=True, augment=False)


def test_baseline_fits_the_recipe_into_the_space() -> None:
    # Rule: the first allowed optimizer of sgd, adamw, adam, rmsprop; values clipped into
    # their ranges; channels double per block and end at the widest choice.
    no_sgd = baseline_config(SPACES["no sgd"])
    assert (no_sgd.optimizer, no_sgd.lr, no_sgd.beta1) == ("adam", 3e-3, 0.9)
    rmsprop = baseline_config(SPACES["rmsprop only"])
    assert (rmsprop.optimizer, rmsprop.momentum) == ("rmsprop", 0.2)
    narrow = baseline_config(SPACES["narrow ranges"])
    assert narrow.widths == (16, 16, 32, 64, 128)
    assert (narrow.lr, narrow.weight_decay, narrow.dropout) == (0.01, 1e-3, 0.3)
    assert (narrow.momentum, narrow.nesterov, narrow.batch_size) == (0.8, False, 256)
    assert baseline_config(SPACES["shapes"]).widths == (8, 16, 32)
    assert baseline_config(SPACES["shapes"]).augment is True  # the space forces it
    assert baseline_config(SPACES["fixed"]).augment is False


def test_baseline_on_the_photo_space_is_the_hand_written_photo_network() -> None:
    # Rule: where the space can express it, the first trial is the network practitioners write
    # for small photos: three blocks of two convs (32, 64, 128), SGD Nesterov, one-cycle at 0.2,
    # batch 256, label smoothing 0.1, dropout 0.2, crops and flips.
    assert baseline_config(SPACES["photo"]) == TrialConfig(
        widths=(32, 64, 128), optimizer="sgd", lr=0.2, weight_decay=5e-4, dropout=0.2,
        batch_size=256, schedule="onecycle", momentum=0.9, nesterov=True, augment=True, convs=2,
        label_smoothing=0.1)
    # Fitted into a narrower photo space: nearest widths and convs, values clipped.
    narrow = baseline_config(SPACES["photo, narrow"])
    assert (narrow.widths, narrow.convs, narrow.lr) == ((64, 128, 256), 3, 0.1)
    assert (narrow.label_smoothing, narrow.cutout, narrow.augment) == (0.05, 0.25, True)
