"""The training loop's schedules and loss options, on tiny real data."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from model_space import TrialConfig, build_model, build_optimizer
from search.data.registry import DataBundle
from search.training.loop import EpochResult, fit
from search.training.objective import seed_everything

CONFIG = TrialConfig(widths=(8, 16), optimizer="sgd", lr=0.2, weight_decay=5e-4, dropout=0.0,
                     batch_size=30, momentum=0.9, nesterov=True, schedule="onecycle")


def _rates(data: DataBundle, config: TrialConfig, epochs: int) -> list[float]:
    """The learning rate in use at the end of each epoch."""
    seed_everything(0)
    model = build_model(config, data.input_shape, data.n_classes)
    optimizer = build_optimizer(config, model.parameters())
    rates: list[float] = []

    def keep(_: EpochResult) -> None:
        rates.append(optimizer.param_groups[0]["lr"])

    fit(model, optimizer, config, data, epochs, 0, torch.device("cpu"), on_epoch=keep)
    return rates


def test_onecycle_warms_up_to_the_peak_then_falls_to_nearly_zero(tiny: DataBundle) -> None:
    # Rule: one-cycle starts at peak/25, reaches the peak after 30% of the steps, then a cosine
    # takes it down to about 0 at the last step.
    rates = _rates(tiny, CONFIG, 10)  # 10 steps an epoch: the peak is at step 30
    assert CONFIG.lr / 25 < rates[0] < rates[1] < CONFIG.lr
    assert rates[2] == pytest.approx(CONFIG.lr, rel=0.05)
    assert all(a > b for a, b in zip(rates[2:], rates[3:], strict=False))
    assert rates[-1] < CONFIG.lr / 100


def test_cosine_and_constant_schedules_are_unchanged(tiny: DataBundle) -> None:
    # Rule: cosine starts at the peak and falls from the first step; constant never moves.
    cosine = _rates(tiny, dataclasses.replace(CONFIG, schedule="cosine"), 4)
    assert CONFIG.lr > cosine[0] > cosine[1] > cosine[2] > cosine[3]
    assert _rates(tiny, dataclasses.replace(CONFIG, schedule="constant"), 3) == [CONFIG.lr] * 3


def _losses(data: DataBundle, config: TrialConfig) -> list[float]:
    seed_everything(0)
    model = build_model(config, data.input_shape, data.n_classes)
    results = fit(model, build_optimizer(config, model.parameters()), config, data, 2, 0,
                  torch.device("cpu"))
    return [r.train_loss for r in results]


def test_label_smoothing_is_in_the_training_loss(tiny: DataBundle) -> None:
    # Rule: label smoothing raises the training loss of the same run (its targets never reach
    # one-hot), and 0 trains exactly as before the option existed.
    plain = _losses(tiny, dataclasses.replace(CONFIG, schedule="cosine", lr=0.05))
    smooth = _losses(tiny, dataclasses.replace(CONFIG, schedule="cosine", lr=0.05,
                                               label_smoothing=0.2))
    assert smooth[-1] > plain[-1]
    assert plain == _losses(tiny, dataclasses.replace(CONFIG, schedule="cosine", lr=0.05,
                                                      label_smoothing=0.0))
