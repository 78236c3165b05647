"""``python -m search.run``: run (or resume) a hyperparameter search study."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from search import cli, interrupts
from search.artifacts import SAVE_MODES
from search.data import DataBundle, default_study_name, load_bundle
from search.gate import target_lock
from search.note import write_study_note
from search.objective import FAIL_REASON
from search.orphans import fail_orphans, is_local_sqlite
from search.progress import count_states, finished, summary
from search.spec import (
    PRUNER_NAMES,
    SAMPLER_NAMES,
    RunOptions,
    StudySpec,
    default_augment,
    default_baseline,
    default_epochs,
    default_pruner,
    merge_stored,
    read_toml,
)
from search.storage import check_writable, create_user_storage, open_user_storage, storage_exists
from search.study import (
    default_storage,
    enqueue_baseline,
    load_or_create,
    mask_url,
    needs_baseline,
    stored_spec,
)
from search.workers import (
    WorkerJob,
    build_objective,
    run_jobs,
    seed_index,
    thread_share,
    work,
    worker_device,
)

PROG = "python -m search.run"
# CLI flag -> spec or run key; flags left at None were not given and do not override.
SPEC_FLAGS = ("dataset", "epochs", "patience", "seed", "sampler", "pruner", "baseline", "data_dir",
              "image_size", "train_subset")
RUN_FLAGS = ("trials", "timeout", "study", "storage", "device", "jobs")


def build_parser() -> argparse.ArgumentParser:
    p = cli.Parser(prog=PROG, description="Search CNN hyperparameters with Optuna.")
    p.add_argument("--trials", type=cli.positive_int,
                   help="study-wide target of finished (complete + pruned) trials (default 100)")
    p.add_argument("--epochs", type=cli.positive_int,
                   help="max epochs per trial (default 8; more on a small training set, up to 30)")
    p.add_argument("--patience", type=cli.non_negative_int,
                   help="end a trial once val accuracy has not improved for N epochs (0: never)")
    p.add_argument("--timeout", type=cli.positive_float, help="stop starting trials after S seconds")
    p.add_argument("--seed", type=cli.non_negative_int, help="search seed (default 0)")
    p.add_argument("--study", help="study name (default: the dataset name)")
    p.add_argument("--storage", help="SQLAlchemy URL (default sqlite:///studies/<study>.db)")
    p.add_argument("--dataset", help="digits (default), mnist, fashion-mnist, cifar10, cifar100, "
                   "or the path of an ImageFolder tree (PATH/train/<class>/<image>)")
    p.add_argument("--data-dir", help="torchvision datasets and the decode cache (default data/)")
    p.add_argument("--download", action="store_true", help="fetch a missing torchvision dataset")
    p.add_argument("--image-size", type=cli.positive_int,
                   help="resize images to this square side (default: a tree's typical size, <= 64)")
    p.add_argument("--train-subset", type=cli.positive_int,
                   help="search on a stratified subset of N training images")
    p.add_argument("--sampler", choices=SAMPLER_NAMES, help="default tpe")
    p.add_argument("--pruner", choices=PRUNER_NAMES,
                   help="default: sha (successive halving) on digits, hyperband on other data")
    p.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=None,
                   help="try the textbook recipe (SGD, Nesterov, cosine) as a new study's first "
                        "trial (default: on, except on digits)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--jobs", type=cli.positive_int,
                   help="worker processes on this machine, sharing the study (default 1)")
    p.add_argument("--config", type=Path, help="study spec TOML, e.g. studies/digits.toml")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--save-models", choices=SAVE_MODES, default="best",
                   help="trained weights kept as study artifacts under studies/artifacts/<study>/: "
                        "best (default: the best trial so far), all, or none")
    return p


def _asked(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(spec keys, run keys) set by the config file and then by explicit flags."""
    spec, run = read_toml(args.config) if args.config else ({}, {})
    spec.update({k: getattr(args, k) for k in SPEC_FLAGS if getattr(args, k) is not None})
    run.update({k: getattr(args, k) for k in RUN_FLAGS if getattr(args, k) is not None})
    return spec, run


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise cli.UsageError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise cli.UsageError(f"device {name!r} asked for, but CUDA is not available here")
    return device


def _job(run: RunOptions, name: str, url: str, worker: int = 0,
         save_models: str = "best") -> WorkerJob:
    return WorkerJob(study=name, url=url, target=run.trials, worker=worker,
                     device=worker_device(run.device, worker),
                     threads=thread_share(run.jobs), timeout=run.timeout, save_models=save_models)


def _run_jobs(study: optuna.Study, run: RunOptions, name: str, url: str, save_models: str,
              show: bool) -> int:
    """--jobs N: N worker processes; the exit code says how they ended."""
    started = time.perf_counter()
    jobs = [_job(run, name, url, i, save_models) for i in range(run.jobs)]
    codes = run_jobs(study, jobs, show)
    print(summary(study, run.trials, mask_url(url), time.perf_counter() - started))
    if cli.EXIT_INTERRUPTED in codes:
        print(f"interrupted; resume with: {resume_command(name, url, run.trials)} --jobs "
              f"{run.jobs}", file=sys.stderr)
        return cli.EXIT_INTERRUPTED
    bad = {i: code for i, code in enumerate(codes) if code != cli.EXIT_OK}
    if bad and finished(count_states(study)) < run.trials:
        return cli.fail(PROG, f"workers ended with exit codes {bad} before the target",
                        cli.EXIT_FAILURE)
    return cli.EXIT_OK


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
                    data: DataBundle) -> optuna.Study:
    """The study, created with its spec and (spec.baseline) first trial if it is new; its note.

    Under the study's lock: machines that start a new study together would otherwise each find
    no spec (or no note) and write it, and Optuna's attribute writes (read, then insert) fail
    the losers with a unique-key error. One writes; the others find what it wrote.
    """
    lock = target_lock(storage, name)
    lock.acquire()
    try:
        study = load_or_create(name, storage, spec, worker=seed_index(storage, 0))
        if spec.baseline and needs_baseline(study.get_trials(deepcopy=False)):
            enqueue_baseline(study, spec.space)
        write_study_note(study, url, spec, data)
    finally:
        lock.release()
    return study


def _open_study(args: argparse.Namespace, asked_spec: dict[str, Any],
                run: RunOptions) -> tuple[RDBStorage, optuna.Study, StudySpec, DataBundle, str]:
    """(storage, study, spec, data, url): every check that can refuse comes before any write."""
    StudySpec.from_flat(asked_spec)  # refuse a bad spec before any storage is touched
    name = cli.check_study_name(run.study or default_study_name(str(asked_spec.get("dataset", "digits"))))
    url = run.storage or default_storage(name)
    check_writable(url)  # now, not after minutes of loading data
    # A new SQLite file is created only once the spec and the data have proved usable.
    storage = open_user_storage(url, must_exist=True) if storage_exists(url) else None
    stored = stored_spec(storage, name) if storage is not None else None
    spec = StudySpec.from_flat(merge_stored(stored, asked_spec, name))
    data = load_bundle(dataclasses.replace(spec.data, download=args.download))
    spec = default_augment(spec, asked_spec, stored, data.input_shape)
    sized = default_epochs(spec, asked_spec, stored, len(data.train.y))
    if sized.epochs != spec.epochs and not args.quiet:
        print(f"{len(data.train.y)} training images: up to {sized.epochs} epochs per trial, not "
              f"{spec.epochs}, so that a trial trains long enough on little data (--epochs sets it)")
    spec = sized
    spec = default_pruner(spec, asked_spec, stored)
    spec = default_baseline(spec, asked_spec, stored)
    storage = storage or create_user_storage(url)
    study = _create_or_load(storage, name, spec, url, data)
    _announce_orphans(study, storage, name)
    return storage, study, spec, data, url


def run_search(args: argparse.Namespace) -> int:
    asked_spec, asked_run = _asked(args)
    run = RunOptions(**asked_run)
    device = resolve_device(run.device)
    storage, study, spec, data, url = _open_study(args, asked_spec, run)
    name = study.study_name
    done = finished(count_states(study))
    shown_url = mask_url(url)
    if done >= run.trials:
        print(f"study {name!r} already has {done} finished trials (target {run.trials}); "
              "nothing to do. Raise --trials to add more.")
        print(summary(study, run.trials, shown_url, 0.0))
        return cli.EXIT_OK
    if run.jobs > 1:
        return _run_jobs(study, run, name, url, args.save_models, show=not args.quiet)
    objective = build_objective(name, spec, data, device, args.save_models)
    started = time.perf_counter()
    try:
        callback = work(_job(run, name, url, save_models=args.save_models), storage, study,
                        objective, show=not args.quiet)
    except KeyboardInterrupt:
        done = finished(count_states(study))
        print(f"\ninterrupted: study {name!r} has {done}/{run.trials} finished trials; the running "
              f"trial was marked failed. Resume with: {resume_command(name, url, run.trials)}",
              file=sys.stderr)
        return cli.EXIT_INTERRUPTED
    print(summary(study, run.trials, shown_url, time.perf_counter() - started))
    if callback.gave_up:
        return cli.fail(PROG, f"stopped after {callback.consecutive_failures} failed trials in a "
                        f"row; last reason: {callback.last_failure}", cli.EXIT_FAILURE)
    return cli.EXIT_OK


def resume_command(study: str, url: str, trials: int) -> str:
    storage = "" if url == default_storage(study) else f" --storage {mask_url(url)}"
    return f"{PROG} --study {study}{storage} --trials {trials}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cli.quiet_libraries()
    interrupts.install()
    return cli.run_cli(PROG, lambda: run_search(args))


if __name__ == "__main__":
    sys.exit(main())
