"""The input format a model is trained on: the values that travel together from the data to
checkpoints, exported programs and predictions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class InputFormat:
    """What a model takes and returns: the image shape, the class names, the normalisation."""

    input_shape: tuple[int, int, int]  # (channels, height, width)
    classes: tuple[str, ...]  # class names, in label order
    mean: tuple[float, ...]  # per channel, in [0, 1] units
    std: tuple[float, ...]  # per channel, in [0, 1] units, > 0

    def __post_init__(self) -> None:
        shape = self.input_shape
        if len(shape) != 3 or not all(_whole(v) and v >= 1 for v in shape):
            raise ValueError(f"input_shape must be three whole numbers >= 1 but got {list(shape)}")
        if not self.classes or not all(isinstance(c, str) for c in self.classes):
            raise ValueError(f"classes must be a non-empty list of names but got {list(self.classes)}")
        for key in ("mean", "std"):
            values = getattr(self, key)
            if len(values) != shape[0] or not all(_finite(v) for v in values):
                raise ValueError(f"{key} must be {shape[0]} finite numbers (one per channel) but "
                                 f"got {list(values)}")
        if not all(v > 0 for v in self.std):
            raise ValueError(f"std must be positive but got {list(self.std)}")

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        return {"input_shape": list(self.input_shape), "classes": list(self.classes),
                "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> InputFormat:
        """Read back ``to_dict``'s keys; a missing key or a bad value raises ValueError."""
        missing = [key for key in ("input_shape", "classes", "mean", "std") if key not in raw]
        if missing:
            raise ValueError(f"lacks {', '.join(missing)}")
        sequences = {key: raw[key] for key in ("input_shape", "classes", "mean", "std")}
        for key, value in sequences.items():
            if not isinstance(value, list | tuple):
                raise ValueError(f"{key} must be a list but got {value!r}")
        return cls(input_shape=tuple(sequences["input_shape"]),  # type: ignore[arg-type]
                   classes=tuple(sequences["classes"]), mean=tuple(sequences["mean"]),
                   std=tuple(sequences["std"]))


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
