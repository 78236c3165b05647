"""A study spec: what defines a study (data, budget, space, strategy) and how one run goes.

Precedence: defaults in code < the spec stored in an existing study < ``--config`` TOML
< explicit CLI flags. A stored study refuses a spec that contradicts it.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_space import PHOTO_SPACE, SearchSpace, SpaceError
from search.data.options import DataOptions, augment_default
from search.errors import InputError
from search.strategy.samplers import PRUNER_NAMES, SAMPLER_NAMES

# --save-models: keep the best trial's weights so far, every completed trial's, or none.
SAVE_MODES = ("best", "all", "none")
# --track: the experiment trackers a run can log its trials to (search.tracking).
TRACKERS = ("mlflow", "tensorboard")
# --objectives: validation accuracy (maximised, always first) and the costs a trial may also
# minimise, measured before it trains (search.training.costs).
ACCURACY = "val_accuracy"
COSTS = ("n_params", "macs", "latency_ms")
# Limit key -> the cost it bounds.
LIMITS = {"max_params": "n_params", "max_macs": "macs", "max_latency_ms": "latency_ms"}
# Cost -> the limit key that bounds it.
LIMIT_OF = {cost: key for key, cost in LIMITS.items()}


def direction_of(objective: str) -> str:
    """Accuracy is maximised, every cost minimised."""
    return "maximize" if objective == ACCURACY else "minimize"


class SpecError(InputError):
    """A study spec or run option holds a value that cannot be used."""


def _fraction(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise SpecError(f"{name} must be a number between 0 and 1 (exclusive) but got {value!r}")


def _whole(name: str, value: Any, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"{name} must be an integer >= {minimum} but got {value!r}")
    if maximum is not None and value > maximum:
        raise SpecError(f"{name} must be an integer from {minimum} to {maximum} but got {value!r}")


# Seeds feed numpy and scikit-learn, which take 0 to 2**32 - 1.
MAX_SEED = 2**32 - 1
# Square side images are resized to: a 1024 px RGB image is 3 MB as uint8, and a small CNN
# search on larger images would spend its time on the first convolution.
MAX_IMAGE_SIZE = 1024
MIN_IMAGE_SIZE = 4
# Epochs per trial and per retrain; more is a typo, not a plan.
MAX_EPOCHS = 10_000


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            0 < value < float("inf")):
        raise SpecError(f"{name} must be a positive number but got {value!r}")


# A latency batch or thread count beyond these is a typo: no CNN here is served that way.
MAX_LATENCY_BATCH = 4096
MAX_LATENCY_THREADS = 256
_LATENCY_DEVICE = re.compile(r"cpu|cuda(:\d{1,3})?")


def _objectives(value: Any) -> tuple[str, ...]:
    """``objectives`` as a tuple: val_accuracy first, then costs from COSTS, each once."""
    if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
        raise SpecError(f"objectives must be a list of names ({ACCURACY}, then any of "
                        f"{', '.join(COSTS)}) but got {value!r}")
    for name in value:
        _one_of("objective", name, (ACCURACY, *COSTS))
    if value[0] != ACCURACY or len(set(value)) != len(value):
        raise SpecError(f"objectives must start with {ACCURACY} and name each objective once "
                        f"but got {','.join(map(str, value))!r}")
    return tuple(value)


def _one_of(name: str, value: Any, known: tuple[str, ...]) -> None:
    if value not in known:
        raise SpecError(f"unknown {name} {value!r}; known: {', '.join(known)}")


@dataclass(frozen=True)
class StudySpec:
    """Everything that defines a study. Stored in the study; a resumed study keeps it."""

    data: DataOptions = DataOptions()
    # Largest number of epochs one trial may train (Hyperband's max resource). search.run gives
    # a new study on a small training set more (default_epochs).
    epochs: int = 8
    # End a trial (complete, not pruned) once val accuracy has not improved for this many
    # epochs; 0 never stops early. See docs/benchmarks/search-efficiency.md.
    patience: int = 0
    # Seeds the sampler and, with the trial number, each trial's weights and batch order.
    seed: int = 0
    sampler: str = "tpe"
    # Successive halving beat Hyperband on digits at equal budget (docs/benchmarks/defaults.md,
    # "Choosing defaults").
    pruner: str = "sha"
    # A new study's first trial is the textbook recipe (model_space.baseline_params), so the
    # search starts from a usable model. search.run turns it off on digits (default_baseline).
    baseline: bool = True
    space: SearchSpace = field(default_factory=SearchSpace)
    # What the study optimises: val_accuracy alone, or with costs from COSTS (a multi-objective
    # study: accuracy maximised, costs minimised, pruned by search.strategy.pareto).
    objectives: tuple[str, ...] = (ACCURACY,)
    # Limits on what a trained model may cost; a trial over one is never trained (LIMITS).
    max_params: int | None = None
    max_macs: int | None = None
    max_latency_ms: float | None = None
    # Where and how latency is measured (search.training.costs): the device a model will run
    # on, the batch it will get, and the CPU threads it will have.
    latency_device: str = "cpu"
    latency_batch: int = 1
    latency_threads: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.data.dataset, str) or not self.data.dataset:
            raise SpecError(f"dataset must be a non-empty name or path but got {self.data.dataset!r}")
        _fraction("test_fraction", self.data.test_fraction)
        _fraction("val_fraction", self.data.val_fraction)
        _whole("split_seed", self.data.split_seed, 0, MAX_SEED)
        if not isinstance(self.data.data_dir, str) or not self.data.data_dir:
            raise SpecError(f"data_dir must be a non-empty path but got {self.data.data_dir!r}")
        if self.data.image_size is not None:
            _whole("image_size", self.data.image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
        if self.data.train_subset is not None:
            _whole("train_subset", self.data.train_subset, 2)
        _whole("epochs", self.epochs, 1, MAX_EPOCHS)
        _whole("patience", self.patience, 0)
        _whole("seed", self.seed, 0, MAX_SEED)
        _one_of("sampler", self.sampler, SAMPLER_NAMES)
        _one_of("pruner", self.pruner, PRUNER_NAMES)
        if not isinstance(self.baseline, bool):
            raise SpecError(f"baseline must be true or false but got {self.baseline!r}")
        object.__setattr__(self, "objectives", _objectives(self.objectives))
        for key in ("max_params", "max_macs"):
            if getattr(self, key) is not None:
                _whole(key, getattr(self, key), 1)
        if self.max_latency_ms is not None:
            _positive("max_latency_ms", self.max_latency_ms)
        if not isinstance(self.latency_device, str) or not _LATENCY_DEVICE.fullmatch(
                self.latency_device):
            raise SpecError(f"latency_device must be cpu, cuda or cuda:N but got "
                            f"{self.latency_device!r}")
        _whole("latency_batch", self.latency_batch, 1, MAX_LATENCY_BATCH)
        _whole("latency_threads", self.latency_threads, 1, MAX_LATENCY_THREADS)

    @property
    def limits(self) -> dict[str, float]:
        """Cost name -> the most a trial's model may cost, for the limits that are set."""
        return {cost: float(getattr(self, key)) for key, cost in LIMITS.items()
                if getattr(self, key) is not None}

    @property
    def directions(self) -> list[str]:
        return [direction_of(name) for name in self.objectives]

    def to_flat(self) -> dict[str, Any]:
        """A JSON/TOML-friendly dict: data and budget keys at top level, the space nested."""
        flat = dataclasses.asdict(self.data)
        del flat["download"]  # how to fetch the files, not what they are
        flat.update(epochs=self.epochs, patience=self.patience, seed=self.seed,
                    sampler=self.sampler, pruner=self.pruner, baseline=self.baseline)
        # Deployment keys are stored only when they differ from the defaults, so a study that
        # sets none stores what it stored before they existed.
        for key in DEPLOY_KEYS:
            value = getattr(self, key)
            if value != DEPLOY_DEFAULTS[key]:
                flat[key] = list(value) if isinstance(value, tuple) else value
        flat["space"] = self.space.to_dict()
        return flat

    @classmethod
    def from_flat(cls, values: dict[str, Any]) -> StudySpec:
        data_keys = {f.name for f in dataclasses.fields(DataOptions)}
        data = {k: v for k, v in values.items() if k in data_keys}
        rest = {k: v for k, v in values.items() if k not in data_keys and k != "space"}
        try:
            space = SearchSpace.from_dict(values.get("space", {}))
        except SpaceError as error:
            raise SpecError(str(error)) from None
        return cls(data=DataOptions(**data), space=space, **rest)


SPEC_KEYS = (
    {f.name for f in dataclasses.fields(DataOptions)} - {"download"}
    | {f.name for f in dataclasses.fields(StudySpec)} - {"data"}
)
DEPLOY_KEYS = ("objectives", *LIMITS, "latency_device", "latency_batch", "latency_threads")
DEPLOY_DEFAULTS = {key: getattr(StudySpec(), key) for key in DEPLOY_KEYS}


# Writing every epoch of a trial whose epochs last a fraction of a second (digits) cost 4-7% of
# its training; a write at most every 2 s cost -0.1% (noise; docs/benchmarks/resume.md), and bounds what
# kill -9 loses to 2 s of training (or one epoch, where epochs are longer).
SAVE_EVERY_SECONDS = 2.0
# A warm start's configurations, unless told. On digits, 3 seeds (benchmarks/warm_start.py;
# docs/benchmarks/warm-start.md), K = 1 needed 0.29 of the cold search's epochs to reach its
# median best and K = 3, 5 and 10 each 0.18: one is too few, and past three digits cannot tell
# them apart. 5 keeps a margin over 3 without making most of a short search replay old trials.
DEFAULT_WARM_START_TOP = 5


@dataclass(frozen=True)
class RunOptions:
    """How one run goes; may change from run to run of the same study."""

    # Study-wide target of finished (complete + pruned) trials.
    trials: int = 100
    # Stop starting new trials after this many seconds; None runs until the target.
    timeout: float | None = None
    # Study name; defaults to the dataset name.
    study: str | None = None
    # SQLAlchemy URL; defaults to sqlite:///studies/<study>.db.
    storage: str | None = None
    # "auto" (CUDA when present), "cpu", "cuda" or "cuda:N".
    device: str = "auto"
    # Worker processes on this machine, sharing the study (torch threads split between them).
    jobs: int = 1
    # Where running trials keep their last finished epoch, in <dir>/<study>/; None: checkpoints/
    # beside a SQLite file, else studies/checkpoints/. Workers on several machines need a
    # folder they all reach (a shared file system) to resume each other's trials.
    checkpoint_dir: str | None = None
    # A running trial's state goes to disk at most this often (and always at Ctrl-C / SIGTERM):
    # kill -9 loses at most this many seconds of training, or one epoch where epochs are longer.
    # 0 writes every epoch.
    checkpoint_every: float = SAVE_EVERY_SECONDS
    # Experiment trackers that log each trial this run finishes (TRACKERS; repeats are dropped).
    # A run option like jobs, not part of the spec: a resumed study may be tracked or not.
    track: tuple[str, ...] = ()
    # An earlier study whose best configurations a new study tries first: "STUDY" (in
    # studies/STUDY.db) or "STUDY@URL" (search.study.warm_start). A study with trials ignores it.
    warm_start: str | None = None
    # How many of the earlier study's best configurations it enqueues.
    warm_start_top: int = DEFAULT_WARM_START_TOP

    def __post_init__(self) -> None:
        _whole("trials", self.trials, 1)
        _whole("jobs", self.jobs, 1)
        _whole("warm_start_top", self.warm_start_top, 1)
        if self.warm_start is not None and (not isinstance(self.warm_start, str)
                                            or not self.warm_start):
            raise SpecError(f"warm_start must be a study name (or STUDY@URL) but got "
                            f"{self.warm_start!r}")
        object.__setattr__(self, "track", _trackers(self.track))
        if (isinstance(self.checkpoint_every, bool)
                or not isinstance(self.checkpoint_every, int | float)
                or not 0 <= self.checkpoint_every < float("inf")):
            raise SpecError("checkpoint_every must be a number of seconds >= 0 but got "
                            f"{self.checkpoint_every!r}")
        if self.checkpoint_dir is not None and (not isinstance(self.checkpoint_dir, str)
                                                or not self.checkpoint_dir):
            raise SpecError(f"checkpoint_dir must be a non-empty path but got {self.checkpoint_dir!r}")
        if self.timeout is not None and (
            isinstance(self.timeout, bool) or not isinstance(self.timeout, int | float)
            or self.timeout <= 0
        ):
            raise SpecError(f"timeout must be a positive number of seconds but got {self.timeout!r}")


def _trackers(value: Any) -> tuple[str, ...]:
    """``track`` as a tuple of known tracker names, each once, in the order given."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise SpecError(f"track must be a list of tracker names ({', '.join(TRACKERS)}) but got "
                        f"{value!r}")
    for name in value:
        _one_of("tracker", name, TRACKERS)
    return tuple(dict.fromkeys(value))


RUN_KEYS = {f.name for f in dataclasses.fields(RunOptions)}


def read_toml(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a spec file into (study spec keys, run option keys). Unknown keys are errors."""
    try:
        table = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"config file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise SpecError(f"config file {str(path)!r} is a directory") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SpecError(f"config file {str(path)!r} is not valid TOML: {error}") from None
    unknown = sorted(set(table) - SPEC_KEYS - RUN_KEYS - {"space"})
    if unknown:
        known = ", ".join(sorted(SPEC_KEYS | RUN_KEYS | {"space"}))
        raise SpecError(f"unknown key {unknown[0]!r} in {str(path)!r}; known keys: {known}")
    if "space" in table and not isinstance(table["space"], dict):
        raise SpecError(f"'space' in {str(path)!r} must be a table ([space])")
    spec = {k: v for k, v in table.items() if k in SPEC_KEYS or k == "space"}
    run = {k: v for k, v in table.items() if k in RUN_KEYS}
    return spec, run


def default_space(spec: StudySpec, asked: dict[str, Any], stored: dict[str, Any] | None,
                  input_shape: tuple[int, int, int]) -> StudySpec:
    """A new study's space fields that its spec does not set, chosen for its data: on colour
    photos of 32 px or more, model_space.PHOTO_SPACE (crops and flips included); elsewhere the
    small default space, without augmentation.

    The choice is written into the spec, so the stored study says what it searched.
    """
    if stored is not None:
        return spec
    given = asked.get("space", {})
    photos = augment_default(input_shape)
    chosen = PHOTO_SPACE if photos else {"augment": (False,)}
    space = dataclasses.replace(spec.space, **{k: v for k, v in chosen.items() if k not in given})
    return dataclasses.replace(spec, space=space)


def default_pruner(spec: StudySpec, asked: dict[str, Any],
                   stored: dict[str, Any] | None) -> StudySpec:
    """A new study that does not name a pruner gets the one measured best for its kind of data.

    benchmarks/efficiency.py (docs/benchmarks/search-efficiency.md): on the bundled digits, successive
    halving matched Hyperband at equal budget and trained fewer epochs per trial; on 3x32x32
    images it fell far behind, because one epoch's accuracy there says little about the last,
    while Hyperband's later-starting bracket keeps slow starters alive. Unmeasured data gets
    the choice that held up on the harder task.
    """
    if stored is not None or "pruner" in asked:
        return spec
    return dataclasses.replace(spec, pruner="sha" if spec.data.dataset == "digits" else "hyperband")


# On little data an epoch is a few optimizer steps, and a trial of 8 epochs stops long before the
# net has learned. The default strategy on the shapes task (docs/benchmarks/search-efficiency.md,
# "Trial length on small data"):
# on 1,000 training images (16 steps per epoch at batch 64) its median best rose from 0.60 at
# 6 epochs to 0.81 at 12 and 0.90 at 27; on 2,000 from 0.86 at 8 to 0.91 at 13 and 0.93 at 24;
# on 6,000 (94 steps) from 0.92 at 8 to 0.95 at 15; the longer trials led at equal epochs spent,
# too. So a new study trains trials long enough for MIN_TRIAL_STEPS steps at its space's middle
# batch size (15 epochs on 6,000 images, as measured), at least 8 epochs and at most
# MAX_DEFAULT_EPOCHS (27 measured); from about 11,000 training images at batch 64 it keeps 8.
MIN_TRIAL_STEPS = 1400
MAX_DEFAULT_EPOCHS = 30


def default_epochs(spec: StudySpec, asked: dict[str, Any], stored: dict[str, Any] | None,
                   n_train: int) -> StudySpec:
    """A new study that does not name its epochs gets enough of them for its training set's size.

    The bundled digits keep 8, measured enough there (docs/benchmarks/search-efficiency.md,
    "Longer trials: where pruning saves more").
    """
    if stored is not None or "epochs" in asked or spec.data.dataset == "digits":
        return spec
    batches = sorted(spec.space.batch_sizes)
    steps_per_epoch = max(1, math.ceil(n_train / batches[len(batches) // 2]))
    epochs = min(max(spec.epochs, math.ceil(MIN_TRIAL_STEPS / steps_per_epoch)),
                 MAX_DEFAULT_EPOCHS)
    return dataclasses.replace(spec, epochs=epochs)


def default_baseline(spec: StudySpec, asked: dict[str, Any],
                     stored: dict[str, Any] | None) -> StudySpec:
    """A new study that does not say gets the baseline trial, except on the bundled digits.

    benchmarks/efficiency.py (docs/benchmarks/search-efficiency.md, "The first trial: a
    textbook recipe"): on 3x32x32 images
    the recipe alone beat random search's median best, and TPE + Hyperband ended higher with
    it and led at every budget; on digits, where random draws reach 0.99 within a few trials,
    it gained nothing (same median best, same epochs) and took 3.5x the epochs to reach random
    search's median best (a strong first trial raises successive halving's bar for the trials
    after it).
    """
    if stored is not None or "baseline" in asked:
        return spec
    return dataclasses.replace(spec, baseline=spec.data.dataset != "digits")


def _flat(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def merge_stored(stored: dict[str, Any] | None, asked: dict[str, Any], study: str) -> dict[str, Any]:
    """Combine a study's stored spec with what this run asks; refuse contradictions."""
    if stored is None:
        return asked
    for key, value in asked.items():
        if key == "space":
            for space_key, space_value in value.items():
                before = stored.get("space", {}).get(space_key)
                if before is not None and list(before) != list(space_value):
                    raise SpecError(
                        f"study {study!r} was created with space.{space_key}={before}, not "
                        f"{list(space_value)}; use another --study name to search a new space")
            continue
        before = stored.get(key, _flat(DEPLOY_DEFAULTS[key]) if key in DEPLOY_DEFAULTS else value)
        if _flat(before) != _flat(value):
            raise SpecError(f"study {study!r} was created with {key}={before!r}, not "
                            f"{value!r}; use another --study name for a different setup")
    return stored
