"""What can be searched: the space, one sampled configuration, and the model it builds.

The space, the configuration and sampling need no torch, so the study layer and every
command's ``--help`` load them without it; the builders (which do) are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from model_space._baseline import baseline_config, baseline_params
from model_space._config import TrialConfig
from model_space._fit import Fitted, fit_config
from model_space._sample import sample_config
from model_space._space import OPTIMIZERS, PHOTO_SPACE, SCHEDULES, SearchSpace, SpaceError

if TYPE_CHECKING:
    from model_space._model import build_model, count_parameters
    from model_space._optim import OPTIMIZER_FACTORIES, build_optimizer

# Name -> module of the names that import torch.
_WITH_TORCH = {
    "build_model": "model_space._model",
    "count_parameters": "model_space._model",
    "build_optimizer": "model_space._optim",
    "OPTIMIZER_FACTORIES": "model_space._optim",
}

__all__ = [
    "OPTIMIZERS",
    "OPTIMIZER_FACTORIES",
    "Fitted",
    "PHOTO_SPACE",
    "SCHEDULES",
    "SearchSpace",
    "SpaceError",
    "TrialConfig",
    "baseline_config",
    "baseline_params",
    "build_model",
    "build_optimizer",
    "count_parameters",
    "fit_config",
    "sample_config",
]


def __getattr__(name: str) -> Any:
    if name not in _WITH_TORCH:
        raise AttributeError(f"module 'model_space' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WITH_TORCH[name]), name)
    globals()[name] = value  # once imported, a plain attribute
    return value
