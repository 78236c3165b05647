"""Optimizers by name, from a TrialConfig."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from model_space._config import TrialConfig

Params = Iterable[nn.Parameter]


def _sgd(config: TrialConfig, params: Params) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum or 0.0,
                           nesterov=bool(config.nesterov) and bool(config.momentum),
                           weight_decay=config.weight_decay)


def _adam(config: TrialConfig, params: Params) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=config.lr, betas=(config.beta1 or 0.9, 0.999),
                            weight_decay=config.weight_decay)


def _adamw(config: TrialConfig, params: Params) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=config.lr, betas=(config.beta1 or 0.9, 0.999),
                             weight_decay=config.weight_decay)


def _rmsprop(config: TrialConfig, params: Params) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=config.lr, momentum=config.momentum or 0.0,
                               weight_decay=config.weight_decay)


OPTIMIZER_FACTORIES: dict[str, Callable[[TrialConfig, Params], torch.optim.Optimizer]] = {
    "sgd": _sgd,
    "adam": _adam,
    "adamw": _adamw,
    "rmsprop": _rmsprop,
}


def build_optimizer(config: TrialConfig, params: Params) -> torch.optim.Optimizer:
    factory = OPTIMIZER_FACTORIES.get(config.optimizer)
    if factory is None:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; "
                         f"known: {', '.join(OPTIMIZER_FACTORIES)}")
    return factory(config, params)
