"""Opening a search: the spec merged and checked, the data loaded, the study created or resumed,
and the jobs its workers run. ``search.run`` prints and exits; this module does the work."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from search.data.fingerprint import TreePrint, pinned_dataset, tree_print
from search.data.options import DataError, default_study_name
from search.data.registry import DataBundle, check_data_paths, load_bundle
from search.errors import UsageError
from search.schema import DATA_PRINT_ATTR, FAIL_REASON, FEASIBLE_START_ATTR
from search.study.gate import lock_file, target_lock
from search.study.note import write_study_note
from search.study.orphans import fail_orphans, is_local_sqlite
from search.study.spec import (
    ACCURACY,
    LIMIT_OF,
    RunOptions,
    SpecError,
    StudySpec,
    default_baseline,
    default_epochs,
    default_pruner,
    default_space,
    merge_stored,
)
from search.study.storage import (
    check_location,
    check_study_name,
    check_writable,
    create_user_storage,
    default_storage,
    open_user_storage,
    storage_exists,
)
from search.study.studies import (
    NotOursError,
    checked_spec,
    enqueue_baseline,
    load_or_create,
    needs_baseline,
    requeue_interrupted,
    stored_spec,
)
from search.study.warm_start import (
    Source,
    WarmStart,
    enqueue_warm_start,
    plan_warm_start,
    read_source,
    split_source,
)
from search.training.checkpoints import TrialCheckpoints, default_dir
from search.training.costs import feasible_starts, latency_setup, limit_check, smallest
from search.training.device import resolve_device, worker_device
from search.training.workers import WorkerJob, seed_index, thread_share


@dataclass(frozen=True)
class OpenSearch:
    """A study ready to search: its storage, the study, its spec, its data and the URL."""

    storage: RDBStorage
    study: optuna.Study
    spec: StudySpec
    data: DataBundle
    url: str


def worker_job(run: RunOptions, name: str, url: str, worker: int = 0,
         save_models: str = "best") -> WorkerJob:
    return WorkerJob(study=name, url=url, target=run.trials, worker=worker,
                     device=worker_device(run.device, worker),
                     threads=thread_share(run.jobs), timeout=run.timeout, save_models=save_models,
                     checkpoint_dir=run.checkpoint_dir, checkpoint_every=run.checkpoint_every,
                     track=run.track)


def _announce_orphans(study: optuna.Study, storage: RDBStorage, name: str) -> None:
    """Fail, now and out loud, the trials a killed earlier run left RUNNING on this machine."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running or not is_local_sqlite(study):
        return
    lock = target_lock(storage, name)
    lock.acquire()
    try:
        orphans = fail_orphans(study, running)
    finally:
        lock.release()
    for trial in orphans:
        print(f"trial {trial.number} was left RUNNING ({trial.user_attrs[FAIL_REASON]}): marked "
              "failed; its parameters run again first", file=sys.stderr)


def _create_or_load(storage: RDBStorage, name: str, spec: StudySpec, url: str,
                    data: DataBundle, warm: WarmStart | None) -> optuna.Study:
    """The study, created with its spec and first trials if it is new (a warm start's
    configurations, else spec.baseline's recipe); its note.

    Under the study's lock: machines that start a new study together would otherwise each find
    no spec (or no note) and write it, and Optuna's attribute writes (read, then insert) fail
    the losers with a unique-key error. One writes; the others find what it wrote.
    """
    lock = target_lock(storage, name)
    lock.acquire()
    try:
        study = load_or_create(name, storage, spec, worker=seed_index(storage, 0),
                               fits=limit_check(spec, data.input_shape, data.n_classes))
        requeue_interrupted(study)  # before the baseline check: a stopped recipe is resumed
        trials = study.get_trials(deepcopy=False)
        if warm is not None and not trials:
            # No recipe after them: where it did well on the earlier study, it is among its
            # best configurations already (docs/warm-start.md).
            enqueue_warm_start(study, warm)
            print(warm.line())
        elif spec.baseline and needs_baseline(trials):
            enqueue_baseline(study, spec.space)
        if spec.limits and not trials:
            _enqueue_feasible_starts(study, spec, data)
        write_study_note(study, url, spec, data)
    finally:
        lock.release()
    return study


# TPE's random start-up trials (search.strategy.samplers): under a limit, each gets a model shape
# drawn at random among those within it. Drawn one parameter at a time, as TPE's start-up is,
# most of them were over a --max-params 20000 limit on digits, and TPE then had few feasible
# trials to learn from (docs/benchmarks/deployment.md).
FEASIBLE_STARTS = 10


def _enqueue_feasible_starts(study: optuna.Study, spec: StudySpec, data: DataBundle) -> None:
    for params in feasible_starts(spec, data.input_shape, data.n_classes, FEASIBLE_STARTS,
                                  spec.seed):
        study.enqueue_trial(params, user_attrs={FEASIBLE_START_ATTR: True})


def _stored_spec(storage: RDBStorage, name: str) -> dict[str, Any] | None:
    """The study's stored spec; a study still being created by another run is waited for.

    Machines that start a new study together: one creates it and then writes its spec, under
    the study's lock. A study found without a spec is looked at again under that lock, where
    our runs have been (a server's lock, or a SQLite lock file that exists); else it is not ours.
    """
    try:
        return stored_spec(storage, name)
    except NotOursError:
        path = lock_file(storage)
        if path is not None and not path.exists():
            raise
    lock = target_lock(storage, name)
    lock.acquire()
    try:
        return stored_spec(storage, name)
    finally:
        lock.release()


def _pinned(asked: dict[str, Any], stored: dict[str, Any] | None) -> dict[str, Any]:
    """The asked spec with a tree's path made absolute, so the study stores where its data is.

    A study made before paths were pinned stored the path as typed: the same tree named
    another way (relative, absolute) is that study's tree, and keeps its stored name.
    """
    if "dataset" not in asked:
        return asked
    dataset = pinned_dataset(str(asked["dataset"]))
    before = stored.get("dataset") if stored is not None else None
    if isinstance(before, str) and pinned_dataset(before) == dataset:
        dataset = before
    return {**asked, "dataset": dataset}


def check_same_tree(storage: RDBStorage, name: str, dataset: str,
                    fingerprint: TreePrint | None) -> None:
    """Refuse to resume a study on a tree whose files are not the ones it started with."""
    attrs = storage.get_study_user_attrs(storage.get_study_id_from_name(name))
    before = attrs.get(DATA_PRINT_ATTR)
    if fingerprint is None or not isinstance(before, dict) or before.get("sha256") == fingerprint.digest:
        return
    raise DataError(f"the ImageFolder tree {dataset!r} is not the one study {name!r} started "
                    f"with ({before.get('images')} images then, {fingerprint.images} now, or "
                    "other files): a study searches one fixed split. Restore the tree, or start a "
                    "new study with --study NAME")


def check_limits(spec: StudySpec, data: DataBundle) -> None:
    """Refuse limits that no model of the space meets, naming the least it can cost, before
    anything is written or trained; and a latency device this machine does not have."""
    if not spec.limits and spec.objectives == (ACCURACY,):
        return
    try:
        resolve_device(spec.latency_device)
    except UsageError as error:
        raise SpecError(f"latency_device: {error}") from None
    if not spec.limits:
        return
    least = smallest(spec.space, data.input_shape, data.n_classes, latency_setup(spec))
    for cost, limit in spec.limits.items():
        if least[cost] > limit:
            raise SpecError(f"{LIMIT_OF[cost]} {limit:,g} cannot be met: the smallest model of the "
                            f"space has {cost} {least[cost]:,g} on this data; raise the limit or "
                            "search a smaller space")


def _warm_source(run: RunOptions, storage: RDBStorage | None, name: str) -> Source | None:
    """The study a new study warm-starts from, read (never written) before the data loads; a
    study that already has trials goes on from them and ignores it, with a note."""
    if run.warm_start is None:
        return None
    split_source(run.warm_start)  # a malformed one is refused even where it would be ignored
    held = _trial_count(storage, name) if storage is not None else 0
    if held:
        print(f"warm start from {run.warm_start!r} ignored: study {name!r} already has {held} "
              "trials", file=sys.stderr)
        return None
    return read_source(run.warm_start)


def _trial_count(storage: RDBStorage, name: str) -> int:
    try:
        return len(storage.get_all_trials(storage.get_study_id_from_name(name), deepcopy=False))
    except KeyError:  # no such study yet
        return 0


def open_search(asked_spec: dict[str, Any], run: RunOptions, *, download: bool = False,
                quiet: bool = False) -> OpenSearch:
    """The study to search, created if new: every check that can refuse comes before any write.

    ``asked_spec`` holds the spec keys the config file and the flags set.
    """
    # A bad spec, or a data path no file can have, is refused before anything is looked up.
    check_data_paths(StudySpec.from_flat(asked_spec).data)
    name = check_study_name(run.study or default_study_name(str(asked_spec.get("dataset", "digits"))))
    url = run.storage or default_storage(name)
    check_location(url)
    check_writable(url)  # now, not after minutes of loading data
    # A new SQLite file is created only once the spec and the data have proved usable; an
    # existing one is only read until then.
    storage = open_user_storage(url, must_exist=True) if storage_exists(url) else None
    stored = _stored_spec(storage, name) if storage is not None else None
    if stored is not None:
        checked_spec(name, stored)
    spec = StudySpec.from_flat(merge_stored(stored, _pinned(asked_spec, stored), name))
    check_data_paths(spec.data)  # the stored spec's paths too
    # Before the data loads: decoding a changed tree would already replace its cache file.
    fingerprint = tree_print(spec.data.dataset)
    if storage is not None and stored is not None:
        check_same_tree(storage, name, spec.data.dataset, fingerprint)
    source = _warm_source(run, storage, name)
    data = load_bundle(dataclasses.replace(spec.data, download=download))
    spec = default_space(spec, asked_spec, stored, data.input_shape)
    sized = default_epochs(spec, asked_spec, stored, len(data.train.y))
    if sized.epochs != spec.epochs and not quiet:
        print(f"{len(data.train.y)} training images: up to {sized.epochs} epochs per trial, not "
              f"{spec.epochs}, so that a trial trains long enough on little data (--epochs sets it)")
    spec = sized
    spec = default_pruner(spec, asked_spec, stored)
    spec = default_baseline(spec, asked_spec, stored)
    check_limits(spec, data)
    # Fitted into the space, which is known once the data is: refused before any write.
    warm = plan_warm_start(source, run.warm_start_top, spec.space) if source else None
    storage = storage or create_user_storage(url)
    study = _create_or_load(storage, name, spec, url, data, warm)
    if fingerprint is not None and DATA_PRINT_ATTR not in study.user_attrs:
        study.set_user_attr(DATA_PRINT_ATTR, fingerprint.to_dict())
    _announce_orphans(study, storage, name)
    TrialCheckpoints(default_dir(name, url, run.checkpoint_dir)).clean(study)
    return OpenSearch(storage, study, spec, data, url)
