"""The search space: what may be sampled, with defaults in code and overrides from TOML."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
# onecycle: linear warm-up to the peak rate over the first 30% of steps, cosine down to nearly 0.
SCHEDULES = ("cosine", "onecycle", "constant")
# More conv layers per block than this trained no better on CIFAR-shaped images and cost
# their time linearly.
MAX_CONVS = 4


class SpaceError(ValueError):
    """A search space field holds a value that cannot be searched."""


def _check_range(name: str, bounds: tuple[float, float], *, low: float, high: float,
                 log: bool = False, high_open: bool = False) -> None:
    if len(bounds) != 2:
        raise SpaceError(f"space.{name} must be [low, high] but got {list(bounds)}")
    lo, hi = bounds
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bounds):
        raise SpaceError(f"space.{name} must hold numbers but got {list(bounds)}")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise SpaceError(f"space.{name} must be finite but got {list(bounds)}")
    if lo > hi:
        raise SpaceError(f"space.{name} low must not exceed high but got {list(bounds)}")
    if log and lo <= 0:
        raise SpaceError(f"space.{name} is searched on a log scale, so low must be > 0 "
                         f"but got {lo}")
    too_high = hi >= high if high_open else hi > high
    if lo < low or too_high:
        upper = f"{high})" if high_open else f"{high}]"
        raise SpaceError(f"space.{name} must lie in [{low}, {upper} but got {list(bounds)}")


def _check_choices(name: str, choices: tuple[Any, ...], allowed: tuple[Any, ...] | None = None,
                   positive_int: bool = False) -> None:
    if len(choices) == 0:
        raise SpaceError(f"space.{name} must list at least one choice but got []")
    if len(set(choices)) != len(choices):
        raise SpaceError(f"space.{name} must not repeat a choice but got {list(choices)}")
    for value in choices:
        if allowed is not None and (value not in allowed
                                    or isinstance(value, bool) != isinstance(allowed[0], bool)):
            raise SpaceError(f"space.{name} has unknown choice {value!r}; "
                             f"known: {', '.join(map(str, allowed))}")
        if positive_int and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise SpaceError(f"space.{name} must hold positive integers but got {value!r}")


@dataclass(frozen=True)
class SearchSpace:
    """Everything a trial may sample. A range with low == high, or a single choice, is fixed.

    Ranges are ``(low, high)`` inclusive; choices are tuples.
    """

    # Number of conv blocks; each block is ``convs`` x (conv3x3 -> batch norm -> ReLU), the
    # first changing the width, then a 2x2 max pool while the map is 8 px or more.
    depth: tuple[int, int] = (1, 4)
    # Output channels, chosen independently for each block; or, with width_doubling, the first
    # block's, each later block having twice the one before.
    widths: tuple[int, ...] = (16, 32, 64, 128)
    width_doubling: tuple[bool, ...] = (False,)
    # Optimizer names, from OPTIMIZERS.
    optimizers: tuple[str, ...] = OPTIMIZERS
    # Peak learning rate, log scale.
    lr: tuple[float, float] = (1e-4, 1e-1)
    # L2 penalty (decoupled for AdamW), log scale.
    weight_decay: tuple[float, float] = (1e-6, 1e-2)
    # Dropout before the classifier, a probability below 1.
    dropout: tuple[float, float] = (0.0, 0.5)
    # Examples per optimizer step.
    batch_sizes: tuple[int, ...] = (32, 64, 128)
    # Learning-rate schedule over the trial's epochs, from SCHEDULES.
    schedules: tuple[str, ...] = ("cosine",)
    # SGD only: momentum coefficient and whether to use Nesterov momentum.
    sgd_momentum: tuple[float, float] = (0.5, 0.99)
    sgd_nesterov: tuple[bool, ...] = (False, True)
    # RMSprop only: momentum coefficient.
    rmsprop_momentum: tuple[float, float] = (0.0, 0.9)
    # Adam and AdamW only: first-moment decay.
    adam_beta1: tuple[float, float] = (0.8, 0.95)
    # Batch augmentation (random crop with padding, horizontal flip): choices of on/off.
    augment: tuple[bool, ...] = (False,)
    # Conv layers per block, one choice for the whole net.
    convs: tuple[int, ...] = (1,)
    # Blocks of 2+ convs only: add the block's first conv output to its last (a residual).
    residual: tuple[bool, ...] = (False,)
    # Cross-entropy label smoothing.
    label_smoothing: tuple[float, float] = (0.0, 0.0)
    # Augmented trials only: side of a square zeroed at a random place in each training image
    # (cutout), as a fraction of the image side; 0 is none.
    cutout: tuple[float, ...] = (0.0,)
    # Augmented trials only: evaluate on each image and its mirror image, logits averaged.
    tta_flip: tuple[bool, ...] = (False,)

    def __post_init__(self) -> None:
        if len(self.depth) != 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in self.depth
        ):
            raise SpaceError(f"space.depth must be [low, high] integers but got {list(self.depth)}")
        _check_range("depth", self.depth, low=1, high=12)
        _check_choices("widths", self.widths, positive_int=True)
        _check_choices("optimizers", self.optimizers, allowed=OPTIMIZERS)
        _check_range("lr", self.lr, low=0.0, high=math.inf, log=True)
        _check_range("weight_decay", self.weight_decay, low=0.0, high=1.0, log=True)
        _check_range("dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        _check_choices("batch_sizes", self.batch_sizes, positive_int=True)
        _check_choices("schedules", self.schedules, allowed=SCHEDULES)
        _check_range("sgd_momentum", self.sgd_momentum, low=0.0, high=1.0, high_open=True)
        _check_choices("sgd_nesterov", self.sgd_nesterov, allowed=(False, True))
        _check_range("rmsprop_momentum", self.rmsprop_momentum, low=0.0, high=1.0,
                     high_open=True)
        _check_range("adam_beta1", self.adam_beta1, low=0.0, high=1.0, high_open=True)
        _check_choices("augment", self.augment, allowed=(False, True))
        _check_choices("width_doubling", self.width_doubling, allowed=(False, True))
        _check_choices("convs", self.convs, positive_int=True)
        if max(self.convs) > MAX_CONVS:
            raise SpaceError(f"space.convs must lie in [1, {MAX_CONVS}] but got {list(self.convs)}")
        _check_choices("residual", self.residual, allowed=(False, True))
        _check_range("label_smoothing", self.label_smoothing, low=0.0, high=1.0, high_open=True)
        _check_choices("cutout", self.cutout)
        for value in self.cutout:
            _check_range("cutout", (value, value), low=0.0, high=1.0, high_open=True)
        _check_choices("tta_flip", self.tta_flip, allowed=(False, True))

    @classmethod
    def from_dict(cls, table: dict[str, Any]) -> SearchSpace:
        """Build a space from a TOML ``[space]`` table; missing keys keep their defaults."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise SpaceError(f"unknown key space.{unknown[0]}; known keys: {', '.join(sorted(known))}")
        values: dict[str, Any] = {}
        for key, value in table.items():
            if not isinstance(value, list | tuple):
                raise SpaceError(f"space.{key} must be a list but got {value!r}")
            values[key] = tuple(value)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: list(getattr(self, f.name)) for f in dataclasses.fields(self)}


# What a new study on colour photos of 32 px or more searches, where its spec does not say
# (search.study.spec.default_space): room for the networks practitioners write for photos
# (two or three convs per block, residuals, one-cycle schedules at SGD's high peak rates,
# label smoothing, cutout, test-time flips), with widths kept to what a CPU trains in minutes.
# Channels double from block to block (up to 64 x 8 = 512), as in the networks people write:
# free widths let a 256-channel first block at 32x32 cost 16x the whole hand-written network.
PHOTO_SPACE: dict[str, tuple[Any, ...]] = {
    "depth": (2, 4),
    "widths": (16, 32, 64),
    "width_doubling": (True,),
    "lr": (1e-4, 0.4),
    "batch_sizes": (64, 128, 256),
    "schedules": ("cosine", "onecycle"),
    "augment": (True,),
    "convs": (1, 2, 3),
    "residual": (False, True),
    "label_smoothing": (0.0, 0.2),
    "cutout": (0.0, 0.25, 0.5),
    "tta_flip": (False, True),
}
