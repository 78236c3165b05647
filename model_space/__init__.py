"""What can be searched: the space, one sampled configuration, and the model it builds."""

from model_space._baseline import baseline_config, baseline_params
from model_space._config import TrialConfig
from model_space._model import build_model, count_parameters
from model_space._optim import OPTIMIZER_FACTORIES, build_optimizer
from model_space._sample import sample_config
from model_space._space import OPTIMIZERS, SCHEDULES, SearchSpace, SpaceError

__all__ = [
    "OPTIMIZERS",
    "OPTIMIZER_FACTORIES",
    "SCHEDULES",
    "SearchSpace",
    "SpaceError",
    "TrialConfig",
    "baseline_config",
    "baseline_params",
    "build_model",
    "build_optimizer",
    "count_parameters",
    "sample_config",
]
