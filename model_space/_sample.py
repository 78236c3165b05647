"""The one place where a trial's parameters are suggested."""

from __future__ import annotations

from typing import Any

import optuna

from model_space._config import TrialConfig
from model_space._space import SearchSpace


def _float(trial: optuna.Trial, name: str, bounds: tuple[float, float], log: bool = False) -> float:
    # A collapsed range is a constant: suggesting it would add a useless dimension to TPE.
    if bounds[0] == bounds[1]:
        return float(bounds[0])
    return trial.suggest_float(name, bounds[0], bounds[1], log=log)


def _choice(trial: optuna.Trial, name: str, choices: tuple[Any, ...]) -> Any:
    if len(choices) == 1:
        return choices[0]
    return trial.suggest_categorical(name, list(choices))


def _widths(trial: optuna.Trial, space: SearchSpace) -> tuple[int, ...]:
    low, high = space.depth
    depth = low if low == high else trial.suggest_int("depth", low, high)
    if _choice(trial, "width_doubling", space.width_doubling):
        first = _choice(trial, "width_0", space.widths)
        return tuple(first * 2**i for i in range(depth))
    return tuple(_choice(trial, f"width_{i}", space.widths) for i in range(depth))


def _optimizer_params(trial: optuna.Trial, space: SearchSpace, name: str) -> dict[str, Any]:
    if name == "sgd":
        return {
            "momentum": _float(trial, "sgd_momentum", space.sgd_momentum),
            "nesterov": _choice(trial, "sgd_nesterov", space.sgd_nesterov),
        }
    if name == "rmsprop":
        return {"momentum": _float(trial, "rmsprop_momentum", space.rmsprop_momentum)}
    return {"beta1": _float(trial, "adam_beta1", space.adam_beta1)}


def sample_config(trial: optuna.Trial, space: SearchSpace) -> TrialConfig:
    """Sample one configuration; conditional parameters exist only where they apply.

    Works with a live ``optuna.Trial`` and with ``optuna.trial.FixedTrial``.
    """
    widths = _widths(trial, space)
    convs = _choice(trial, "convs", space.convs)
    optimizer = _choice(trial, "optimizer", space.optimizers)
    augment = _choice(trial, "augment", space.augment)
    return TrialConfig(
        widths=widths,
        optimizer=optimizer,
        lr=_float(trial, "lr", space.lr, log=True),
        weight_decay=_float(trial, "weight_decay", space.weight_decay, log=True),
        dropout=_float(trial, "dropout", space.dropout),
        batch_size=_choice(trial, "batch_size", space.batch_sizes),
        schedule=_choice(trial, "schedule", space.schedules),
        augment=augment,
        convs=convs,
        residual=convs > 1 and _choice(trial, "residual", space.residual),
        label_smoothing=_float(trial, "label_smoothing", space.label_smoothing),
        # Mirror images at test time suit only data that training mirrors too.
        **_augment_params(trial, space) if augment else {},
        **_optimizer_params(trial, space, optimizer),
    )


def _augment_params(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    return {"cutout": _choice(trial, "cutout", space.cutout),
            "tta_flip": _choice(trial, "tta_flip", space.tta_flip)}
