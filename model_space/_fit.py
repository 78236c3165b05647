"""A configuration from one space, fitted into another: what a warm start enqueues.

The rules (docs/warm-start.md): a number outside the new range is clipped into it; a numeric
choice (widths, batch size, convs, cutout) the new space lacks becomes its nearest choice; a
non-numeric value the new space does not allow (an optimizer, a schedule, augment on or off)
cannot be fitted, and the configuration is refused; a parameter the new space does not have is
dropped; one it has but the configuration lacks (a block deeper than the source's net) is left
to the sampler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from model_space._config import TrialConfig
from model_space._sample import sample_config
from model_space._space import SearchSpace


@dataclass(frozen=True)
class Fitted:
    """One configuration fitted into a space, or why it cannot be."""

    # Optuna parameters for the new space; those it lacks are left to the sampler.
    params: dict[str, Any] = field(default_factory=dict)
    # Whether any value had to move (or was left to the sampler) to fit.
    moved: bool = False
    # Why it cannot be fitted, e.g. "optimizer 'adam'"; None when it can.
    clash: str | None = None


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _nearest(value: float, choices: list[Any]) -> Any:
    # On a log scale where every choice is positive (64 is as far from 32 as from 128), else on
    # a linear one (cutout 0); ties go to the smaller choice.
    if value > 0 and all(c > 0 for c in choices):
        return min(sorted(choices), key=lambda c: abs(math.log(c / value)))
    return min(sorted(choices), key=lambda c: abs(c - value))


class _FittingTrial:
    """Answers ``sample_config``'s suggestions with the source's values, fitted into what is asked."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.params: dict[str, Any] = {}
        self.missing = False

    def _known(self, name: str) -> bool:
        self.missing = self.missing or name not in self.values
        return name in self.values

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        if not self._known(name):
            return low  # a stand-in: the sampler chooses it
        self.params[name] = min(max(float(self.values[name]), low), high)
        return self.params[name]

    def suggest_int(self, name: str, low: int, high: int) -> int:
        if not self._known(name):
            return low
        self.params[name] = min(max(int(self.values[name]), low), high)
        return self.params[name]

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        if not self._known(name):
            return choices[0]
        value = self.values[name]
        same = [c for c in choices if c == value and isinstance(c, bool) == isinstance(value, bool)]
        if same:
            chosen = same[0]
        elif _numeric(value) and all(_numeric(c) for c in choices):
            chosen = _nearest(value, choices)
        else:
            # Not allowed and not a number: the comparison in fit_config refuses it, unless
            # it is how widths are written (doubling), which the widths themselves settle.
            chosen = choices[0]
        self.params[name] = chosen
        return chosen


def _doubles(widths: tuple[int, ...]) -> bool:
    return all(w == widths[0] * 2**i for i, w in enumerate(widths))


def _values(config: TrialConfig) -> dict[str, Any]:
    """The configuration as the Optuna parameters any space could ask of it."""
    values: dict[str, Any] = {
        "depth": len(config.widths), "width_doubling": _doubles(config.widths),
        **{f"width_{i}": w for i, w in enumerate(config.widths)},
        "convs": config.convs, "optimizer": config.optimizer, "lr": config.lr,
        "weight_decay": config.weight_decay, "dropout": config.dropout,
        "batch_size": config.batch_size, "schedule": config.schedule, "augment": config.augment,
        "residual": config.residual, "label_smoothing": config.label_smoothing,
    }
    if config.augment:
        values.update(cutout=config.cutout, tta_flip=config.tta_flip)
    optimizer = {"sgd": {"sgd_momentum": config.momentum, "sgd_nesterov": config.nesterov},
                 "rmsprop": {"rmsprop_momentum": config.momentum}}
    values.update(optimizer.get(config.optimizer, {"adam_beta1": config.beta1}))
    return values


def _clash(source: TrialConfig, fitted: TrialConfig) -> str | None:
    """The first non-numeric value the fitted configuration could not keep, as 'name value'."""
    checks = ["optimizer", "schedule", "augment"]
    # A value that applies only under another one is compared where it applies on both sides.
    if source.convs > 1 and fitted.convs > 1:
        checks.append("residual")
    if source.optimizer == fitted.optimizer == "sgd":
        checks.append("nesterov")
    if source.augment and fitted.augment:
        checks.append("tta_flip")
    for name in checks:
        if getattr(source, name) != getattr(fitted, name):
            return f"{name} {getattr(source, name)!r}"
    return None


def fit_config(config: TrialConfig, space: SearchSpace) -> Fitted:
    """``config`` (sampled from any space) as parameters of ``space``, by the module's rules."""
    trial = _FittingTrial(_values(config))
    fitted = sample_config(trial, space)  # type: ignore[arg-type]  # duck-typed like FixedTrial
    clash = _clash(config, fitted)
    if clash is not None:
        return Fitted(clash=clash)
    return Fitted(params=trial.params, moved=trial.missing or fitted != config)
