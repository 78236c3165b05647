"""A study of ours: created with its spec, sampler and pruner; the stored spec; the baseline."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from model_space import SearchSpace, baseline_params
from search.errors import UsageError
from search.optuna_private import storage_of, study_id
from search.schema import BASELINE_ATTR, FAIL_REASON, INTERRUPTED, SPEC_ATTR
from search.strategy.feasible import FeasibleSampler
from search.strategy.samplers import make_pruner, make_sampler
from search.study.spec import ACCURACY, SpecError, StudySpec, direction_of
from search.study.storage import RetryAsNew, mask_url, open_user_storage


def enqueue_baseline(study: optuna.Study, space: SearchSpace) -> None:
    """Queue the textbook configuration (model_space.baseline_params) as the study's first trial.

    Callers do this only for a study with no trials yet, under the trial gate's lock where other
    workers may race, so one study gets one baseline.
    """
    study.enqueue_trial(baseline_params(space), user_attrs={BASELINE_ATTR: True})


def needs_baseline(trials: Sequence[FrozenTrial]) -> bool:
    """Whether a study that starts from the recipe should queue it now.

    A new study does. So does one whose recipe trial was only ever interrupted (Ctrl-C during
    the first trial): the recipe is the strongest first trial on most data
    (docs/benchmarks/search-efficiency.md, "The first trial"), and a study resumed without it
    would never train it. A recipe trial that failed on its own (diverged, out of memory) is not
    queued again.
    """
    if not trials:
        return True
    recipe = [t for t in trials if t.user_attrs.get(BASELINE_ATTR)]
    return bool(recipe) and all(t.state == TrialState.FAIL
                                and t.user_attrs.get(FAIL_REASON) == INTERRUPTED for t in recipe)


def stored_spec(storage: RDBStorage, study: str) -> dict[str, Any] | None:
    """The spec a study of ours was created with, or None for a study not yet created.

    A study of that name that cnn-search did not make is refused (see check_ours): no command
    takes over, or writes into, someone else's study.
    """
    try:
        study_id = storage.get_study_id_from_name(study)
    except KeyError:
        return None
    check_ours(storage, study, study_id)
    return _parse_spec(study, storage.get_study_user_attrs(study_id)[SPEC_ATTR])


class NotOursError(UsageError):
    """A study that cnn-search did not create."""


def check_ours(storage: BaseStorage, study: str, study_id: int) -> None:
    """Refuse a study that cnn-search did not create: no stored spec, or another objective."""
    where = f"study {study!r} in {mask_url(getattr(storage, 'url', '')) or 'this storage'}"
    if SPEC_ATTR not in storage.get_study_user_attrs(study_id):
        raise NotOursError(f"{where} was not made by cnn-search (it has no stored spec), and "
                         "cnn-search never writes into another's study; name another --study "
                         "or --storage")
    spec = _parse_spec(study, storage.get_study_user_attrs(study_id)[SPEC_ATTR])
    wanted = spec.get("objectives", [ACCURACY])
    if not isinstance(wanted, list) or not wanted:
        wanted = [ACCURACY]  # StudySpec's own check names the bad value
    expected = [optuna.study.StudyDirection[direction_of(name).upper()] for name in wanted]
    directions = storage.get_study_directions(study_id)
    if directions != expected:
        shown = ", ".join(d.name.lower() for d in directions)
        raise UsageError(f"{where} optimizes in direction(s) {shown}; its spec's objectives "
                         f"({', '.join(map(str, wanted))}) need "
                         f"{', '.join(d.name.lower() for d in expected)}")


def _parse_spec(study: str, raw: Any) -> dict[str, Any]:
    """The stored spec as a dict; the values themselves are checked by StudySpec's rules."""
    try:
        spec = json.loads(raw) if isinstance(raw, str) else None
    except json.JSONDecodeError:
        spec = None
    if not isinstance(spec, dict):
        raise UsageError(f"the spec stored in study {study!r} is not a JSON object: "
                         f"{str(raw)[:60]!r}; was it edited by hand?")
    return spec


def _is_shared(storage: RDBStorage) -> bool:
    # A server database is there to be shared by workers; assume others may be running.
    return storage.engine.dialect.name != "sqlite"


def sampler_seed(seed: int, n_existing: int, worker: int = 0) -> int:
    # A resumed run or a second worker must not replay the first one's random draws.
    return (seed * 1_000_003 + n_existing * 101 + worker) % (2**31)


def load_or_create(name: str, storage: RDBStorage, spec: StudySpec,
                   worker: int = 0, parallel: bool | None = None,
                   fits: Callable[[dict[str, Any]], bool | None] | None = None) -> optuna.Study:
    """Open the study, creating it (with its spec stored) if it does not exist.

    ``fits``: whether a draw's model is within the spec's limits (search.training.costs
    .limit_check); the sampler then draws again rather than propose one that is not.
    """
    existing = stored_spec(storage, name) is not None
    n_existing = 0
    if existing:
        n_existing = len(storage.get_all_trials(storage.get_study_id_from_name(name),
                                                deepcopy=False))
    multi = len(spec.objectives) > 1
    sampler = make_sampler(spec.sampler, sampler_seed(spec.seed, n_existing, worker),
                           parallel=_is_shared(storage) if parallel is None else parallel,
                           objectives=len(spec.objectives))
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=FeasibleSampler(sampler, fits) if fits is not None and spec.limits else sampler,
        # A multi-objective study prunes in its objective (search.strategy.pareto): Optuna's
        # pruners serve one objective.
        pruner=optuna.pruners.NopPruner() if multi else make_pruner(spec.pruner, spec.epochs),
        directions=spec.directions,
        load_if_exists=True,
    )
    if not existing:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            study.set_metric_names(list(spec.objectives))
        study.set_user_attr(SPEC_ATTR, json.dumps(spec.to_flat()))
    return study


def open_existing(name: str, url: str) -> optuna.Study:
    """A study that must already exist, or an error that lists the studies the storage holds.

    Opening never creates a file or a schema: readers (report, dashboard) must not write.
    """
    storage = open_user_storage(url, must_exist=True)
    names = sorted(s.study_name for s in storage.get_all_studies())
    if name not in names:
        known = ", ".join(names) if names else "none"
        raise UsageError(f"no study {name!r} in {mask_url(url)}; studies there: {known}")
    return optuna.load_study(study_name=name, storage=storage)


def spec_of(study: optuna.Study) -> StudySpec:
    """The spec a study of ours was created with; a study that is not ours is refused."""
    name = study.study_name
    storage = storage_of(study)
    check_ours(storage, name, study_id(study))
    return checked_spec(name, _parse_spec(name, study.user_attrs[SPEC_ATTR]))


def checked_spec(study: str, flat: dict[str, Any]) -> StudySpec:
    """A spec read from a study, checked by the rules the flags obey, naming the study."""
    try:
        return StudySpec.from_flat(flat)
    except SpecError as error:
        raise SpecError(f"the spec stored in study {study!r}: {error}") from None
    except TypeError as error:  # a key no StudySpec has
        raise SpecError(f"the spec stored in study {study!r} has an unknown key: {error}") from None


def requeue_interrupted(study: optuna.Study) -> list[FrozenTrial]:
    """Queue again the trials Ctrl-C or SIGTERM stopped (a preemption), as a dead worker's are.

    The retry keeps the parameters, the values reported so far and the first trial's number,
    so it resumes from that trial's checkpoint. A trial stopped for its own reasons (diverged,
    out of memory) is not retried. Call under the study's gate lock.
    """
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
    stopped = [t for t in trials if t.state == TrialState.FAIL and t.number not in retried
               and t.user_attrs.get(FAIL_REASON) == INTERRUPTED]
    # No retry limit: a preemptible machine may stop the same trial many times.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        retry = RetryAsNew(max_retry=None, inherit_intermediate_values=True)
    for trial in stopped:
        retry(study, trial)
    return stopped
