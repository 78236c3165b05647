"""The starting point: one configuration a study tries first, fitted into its space.

A search that starts from random draws can spend its first minutes on nets that barely learn.
The recipe below is the standard one for small CNNs with batch norm (SGD with Nesterov
momentum 0.9, weight decay 5e-4, cosine schedule, channels doubling per block), so the first
trial already gives a usable model. benchmarks/recipes.py chose it and its learning rate
(docs/benchmarks/search-efficiency.md, "The first trial: a textbook recipe"): 0.05 led on
narrow nets but stalled near chance with 128 channels on the same images; 0.02 was never far
behind and never stalled.

A space that can express it (one-cycle schedules, blocks of two convs: the photo space,
model_space.PHOTO_SPACE) starts instead from the network practitioners write for small photos:
three blocks of two 3x3 convs (32, 64, 128 channels), SGD with Nesterov momentum 0.9, weight
decay 5e-4, a one-cycle schedule peaking at 0.2, batch 256, label smoothing 0.1, dropout 0.2,
flips and crops. By hand it scored 80.4% on CIFAR-10's test split after 4 epochs on all 50,000
training images; fitted here (a 2x2 pooled head, crops as well as flips) it reached only 0.556
val on a 10,000-image subset, where batch 256 makes 40 steps an epoch (docs/benchmarks/cifar10.md).
"""

from __future__ import annotations

import math
from typing import Any

from optuna.trial import FixedTrial

from model_space._config import TrialConfig
from model_space._sample import sample_config
from model_space._space import SearchSpace

# First optimizer the space allows wins; each comes with its usual settings.
RECIPES: dict[str, dict[str, Any]] = {
    "sgd": {"lr": 0.02, "weight_decay": 5e-4, "sgd_momentum": 0.9, "sgd_nesterov": True},
    "adamw": {"lr": 3e-3, "weight_decay": 1e-4, "adam_beta1": 0.9},
    "adam": {"lr": 3e-3, "weight_decay": 1e-4, "adam_beta1": 0.9},
    "rmsprop": {"lr": 1e-3, "weight_decay": 1e-4, "rmsprop_momentum": 0.0},
}
DEPTH = 3
BATCH_SIZE = 64
DROPOUT = 0.1
PHOTO_RECIPE: dict[str, Any] = {
    "lr": 0.2, "weight_decay": 5e-4, "sgd_momentum": 0.9, "sgd_nesterov": True,
    "dropout": 0.2, "label_smoothing": 0.1,
}
PHOTO_WIDTHS = (32, 64, 128)
PHOTO_BATCH_SIZE = 256
PHOTO_CONVS = 2


def _clip(value: float, bounds: tuple[float, float]) -> float:
    return min(max(value, bounds[0]), bounds[1])


def _nearest(target: float, choices: tuple[int, ...]) -> int:
    # Nearest on a log scale (64 is as far from 32 as from 128); ties go to the smaller.
    return min(sorted(choices), key=lambda c: abs(math.log(c / target)))


def _prefer(wanted: Any, choices: tuple[Any, ...]) -> Any:
    return wanted if wanted in choices else choices[0]


def _widths(space: SearchSpace, wanted: tuple[float, ...], depth: int) -> dict[str, Any]:
    """``wanted`` channels per block, fitted: with doubling, only the first block's is chosen."""
    if True in space.width_doubling:
        return {"depth": depth, "width_doubling": True,
                "width_0": _nearest(wanted[0], space.widths)}
    return {"depth": depth, "width_doubling": False} | {
        f"width_{i}": _nearest(w, space.widths) for i, w in enumerate(wanted[:depth])}


def _textbook_widths(space: SearchSpace) -> dict[str, Any]:
    depth = int(_clip(DEPTH, space.depth))
    top = max(space.widths)
    return _widths(space, tuple(top / 2 ** (depth - 1 - i) for i in range(depth)), depth)


def _fit(value: Any, allowed: tuple[Any, ...]) -> Any:
    """A recipe value inside the space: a switch among its choices, a number within its range."""
    return _prefer(value, allowed) if isinstance(value, bool) else _clip(value, allowed)


def _optimizer(space: SearchSpace) -> dict[str, Any]:
    name = next(o for o in RECIPES if o in space.optimizers)
    # Each recipe key is also the space field that bounds it (lr, sgd_momentum, adam_beta1...).
    return {"optimizer": name} | {key: _fit(value, getattr(space, key))
                                  for key, value in RECIPES[name].items()}


def _photo(space: SearchSpace) -> dict[str, Any]:
    depth = int(_clip(len(PHOTO_WIDTHS), space.depth))
    wanted = tuple(PHOTO_WIDTHS[min(i, len(PHOTO_WIDTHS) - 1)] for i in range(depth))
    return {
        **_widths(space, wanted, depth), "optimizer": "sgd",
        **{key: _fit(value, getattr(space, key)) for key, value in PHOTO_RECIPE.items()},
        "batch_size": _nearest(PHOTO_BATCH_SIZE, space.batch_sizes),
        "schedule": "onecycle",
        "convs": _nearest(PHOTO_CONVS, space.convs),
        "residual": _prefer(False, space.residual),
        "augment": _prefer(True, space.augment),
        "cutout": min(space.cutout),
        "tta_flip": _prefer(False, space.tta_flip),
    }


def _expresses_photo_recipe(space: SearchSpace) -> bool:
    return ("onecycle" in space.schedules and "sgd" in space.optimizers
            and max(space.convs) >= PHOTO_CONVS)


def baseline_params(space: SearchSpace) -> dict[str, Any]:
    """The recipe as Optuna parameters: exactly those ``sample_config`` suggests in ``space``."""
    values = _photo(space) if _expresses_photo_recipe(space) else _textbook(space)
    trial = FixedTrial(values)
    sample_config(trial, space)
    return trial.params


def _textbook(space: SearchSpace) -> dict[str, Any]:
    return {
        **_textbook_widths(space),
        **_optimizer(space),
        "dropout": _clip(DROPOUT, space.dropout),
        "batch_size": _nearest(BATCH_SIZE, space.batch_sizes),
        "schedule": _prefer("cosine", space.schedules),
        # Flips and crops suit some images and not others (digits, text): off unless forced.
        "augment": _prefer(False, space.augment),
        "convs": min(space.convs),
        "residual": _prefer(False, space.residual),
        "label_smoothing": _clip(0.0, space.label_smoothing),
        "cutout": min(space.cutout),
        "tta_flip": _prefer(False, space.tta_flip),
    }


def baseline_config(space: SearchSpace) -> TrialConfig:
    return sample_config(FixedTrial(baseline_params(space)), space)
