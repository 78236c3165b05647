"""One sampled configuration: everything needed to build and train one model."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


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
        return cls(**{**values, "widths": tuple(values["widths"])})
