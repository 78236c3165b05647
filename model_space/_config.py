"""One sampled configuration: everything needed to build and train one model."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from model_space._space import MAX_CONVS, OPTIMIZERS, SCHEDULES


@dataclass(frozen=True)
class TrialConfig:
    """A concrete model and optimizer configuration, replayable without a study."""

    # Output channels of each conv block; its length is the depth.
    widths: tuple[int, ...]
    # One of model_space.OPTIMIZERS.
    optimizer: str
    # Peak learning rate.
    lr: float
    # L2 penalty (decoupled for AdamW).
    weight_decay: float
    # Dropout probability before the classifier.
    dropout: float
    # Examples per optimizer step.
    batch_size: int
    # Learning-rate schedule over the epochs: "cosine" or "constant".
    schedule: str = "cosine"
    # SGD and RMSprop: momentum coefficient; None for Adam/AdamW.
    momentum: float | None = None
    # SGD: Nesterov momentum; None otherwise.
    nesterov: bool | None = None
    # Adam/AdamW: first-moment decay; None otherwise.
    beta1: float | None = None
    # Random crop with padding and horizontal flip on training batches.
    augment: bool = False
    # Conv layers per block.
    convs: int = 1
    # A residual connection around each block's convs after its first.
    residual: bool = False
    # Cross-entropy label smoothing.
    label_smoothing: float = 0.0
    # Cutout square's side as a fraction of the image side (augmented training only); 0: none.
    cutout: float = 0.0
    # Evaluate on each image and its mirror image, logits averaged.
    tta_flip: bool = False

    def __post_init__(self) -> None:
        # A config comes from a file a user can edit (best_config.json, a checkpoint): every
        # value is checked here, by name, before any model is built from it.
        # No upper bound: a space may hold wide nets, and one too wide for the device fails as
        # that trial's out-of-memory, alone.
        if not self.widths or not all(_whole(w) and w >= 1 for w in self.widths):
            raise ValueError(f"widths must be one or more whole numbers >= 1 (channels per block) "
                             f"but got {list(self.widths)}")
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        if not _whole(self.convs) or not 1 <= self.convs <= MAX_CONVS:
            raise ValueError(f"convs must be a whole number in [1, {MAX_CONVS}] but got "
                             f"{self.convs!r}")
        _number("label_smoothing", self.label_smoothing, low=0.0, high=1.0)
        _number("cutout", self.cutout, low=0.0, high=1.0)
        _number("lr", self.lr, low=0.0, low_open=True)
        _number("weight_decay", self.weight_decay, low=0.0)
        _number("dropout", self.dropout, low=0.0, high=1.0)
        if not _whole(self.batch_size) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a whole number >= 1 but got {self.batch_size!r}")
        for key in ("momentum", "beta1"):
            if getattr(self, key) is not None:
                _number(key, getattr(self, key), low=0.0, high=1.0)
        if self.nesterov is not None and not isinstance(self.nesterov, bool):
            raise ValueError(f"nesterov must be true, false or null but got {self.nesterov!r}")
        for key in ("augment", "residual", "tta_flip"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"{key} must be true or false but got {getattr(self, key)!r}")

    @property
    def depth(self) -> int:
        return len(self.widths)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["widths"] = list(self.widths)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrialConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown model config key {unknown[0]!r}")
        widths = values.get("widths")
        if not isinstance(widths, list | tuple):
            raise ValueError(f"widths must be a list of channel counts but got {widths!r}")
        return cls(**{**values, "widths": tuple(widths)})


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _choice(key: str, value: Any, known: tuple[str, ...]) -> None:
    if value not in known:
        raise ValueError(f"unknown {key} {value!r}; known: {', '.join(known)}")


def _number(key: str, value: Any, *, low: float, high: float | None = None,
            low_open: bool = False) -> None:
    """A finite number in [low, high) (or (low, high) with low_open), naming the key if not."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and (high is None or value < high)
    if not ok:
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        upper = f" and < {high:g}" if high is not None else ""
        raise ValueError(f"{key} must be a finite number {bound}{upper} but got {value!r}")
