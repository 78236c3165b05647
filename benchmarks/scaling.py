"""Scale-out measurements: trials per hour at --jobs 1, 2, 4, and storage overhead per trial.

    nice -n 10 python benchmarks/scaling.py jobs --trials 40
    nice -n 10 python benchmarks/scaling.py storage --trials 200 --workers 4
    python benchmarks/scaling.py ceiling

``jobs`` runs ``python -m search.run`` on digits (default spec, same seed) at each job count,
side by side in one session, each on a fresh SQLite file. It reports trials per hour and
epochs per second (a fairer rate: pruning makes trials unequal) and the speed-up over 1 job.

``ceiling`` is what the machine itself allows: the same fixed training job (one digits
model, no Optuna, no storage) in 1 process on 1 and on all torch threads, then in 2 processes
on 1 thread each at once. The ratio of the last to the first is the most ``--jobs 2`` can win
on this machine at that moment; the ``jobs`` speed-up is read against it.

``storage`` runs trivial trials (5 parameters, 3 reports, 2 user attrs, no training) from
``--workers`` processes at once, so the time per trial is the storage's alone; it counts the
trials that failed with a storage error ("database is locked").
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from search.study.gate import FileLock, ServerLock, optimize_to_target
from search.study.storage import open_storage

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def run_jobs(spec: str, trials: int, seed: int, root: Path, index: int) -> dict[str, float]:
    """``spec``: a job count, or "1t" for one job held to one torch thread (OMP_NUM_THREADS)."""
    jobs = int(spec.rstrip("t"))
    env = dict(os.environ, OMP_NUM_THREADS="1") if spec.endswith("t") else None
    name = f"run{index}-jobs{spec}"  # a fresh study for each row, even for a repeated count
    url = f"sqlite:///{root / f'{name}.db'}"
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "search.run", "--trials", str(trials), "--jobs",
                          str(jobs), "--seed", str(seed), "--storage", url, "--study",
                          name, "--quiet"], text=True, capture_output=True, check=True, env=env)
    wall = time.perf_counter() - started
    run_s = float(re.search(r"this run took ([\d.]+) s", out.stdout).group(1))
    study = optuna.load_study(study_name=name, storage=url)
    epochs = sum(t.user_attrs.get("epochs_run", 0) for t in study.trials)
    # First trial start to last trial end: the steady rate, without process start-up.
    span = (max(t.datetime_complete for t in study.trials)
            - min(t.datetime_start for t in study.trials)).total_seconds()
    return {"jobs": spec, "wall_s": wall, "run_s": run_s, "span_s": span, "epochs": epochs,
            "best": study.best_value, "trials_per_h": trials * 3600 / run_s,
            "span_trials_per_h": trials * 3600 / span, "epochs_per_s": epochs / span}


def bench_jobs(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_jobs(j, args.trials, args.seed, Path(tmp), i) for i, j in enumerate(args.jobs)]
    base = rows[0]
    print(f"{args.trials} trials on digits, default spec, seed {args.seed}")
    print("| jobs | run s (with start-up) | trials/h | trial span s | trials/h in span | "
          "epochs | epochs/s in span | speed-up: trials/h, span trials/h, epochs/s | best val |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['jobs']} | {r['run_s']:.1f} | {r['trials_per_h']:.0f} | {r['span_s']:.1f} | "
              f"{r['span_trials_per_h']:.0f} | {r['epochs']} | {r['epochs_per_s']:.1f} | "
              f"{r['trials_per_h'] / base['trials_per_h']:.2f}x, "
              f"{r['span_trials_per_h'] / base['span_trials_per_h']:.2f}x, "
              f"{r['epochs_per_s'] / base['epochs_per_s']:.2f}x | {r['best']:.4f} |")


def _fixed_training(draw: int, threads: int, epochs: int, started: Any = None) -> float:
    """Epochs per second of one fixed digits model (random draw ``draw``), no Optuna."""
    import torch

    from model_space import build_model, build_optimizer
    from search.data.options import DataOptions
    from search.data.registry import load_bundle
    from search.training.loop import fit

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    torch.set_num_threads(threads)
    data = load_bundle(DataOptions())
    config = _draw(draw)
    torch.manual_seed(0)
    model = build_model(config, data.input_shape, data.n_classes)
    optimizer = build_optimizer(config, model.parameters())
    fit(model, optimizer, config, data, 1, 0, torch.device("cpu"))  # warm-up, not timed
    if started is not None:
        started.wait()  # both processes train at the same time
    begin = time.perf_counter()
    fit(model, optimizer, config, data, epochs, 0, torch.device("cpu"))
    return epochs / (time.perf_counter() - begin)


def _draw(draw: int) -> Any:
    from model_space import SearchSpace, sample_config

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=draw))
    return sample_config(study.ask(), SearchSpace())


def bench_ceiling(args: argparse.Namespace) -> None:
    cores = os.cpu_count() or 1
    context = multiprocessing.get_context("spawn")
    print(f"fixed digits models, {args.epochs} epochs per process; epochs/s, and speed-up of 2 "
          f"one-thread processes over 1 process on 1 and on {cores} threads")
    print(f"| draw | widths | batch | 1 process, 1 thread | 1 process, {cores} threads | "
          "2 processes, 1 thread each (sum) | 2 processes vs 1 thread | 2 processes vs "
          f"{cores} threads |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for draw in args.draws:
        alone = _fixed_training(draw, 1, args.epochs)
        threaded = _fixed_training(draw, cores, args.epochs)
        with context.Manager() as manager:
            barrier = manager.Barrier(2)
            with context.Pool(2) as pool:
                both = sum(pool.starmap(_fixed_training, [(draw, 1, args.epochs, barrier)] * 2))
        config = _draw(draw)
        print(f"| {draw} | {'/'.join(map(str, config.widths))} | {config.batch_size} | "
              f"{alone:.2f} | {threaded:.2f} | {both:.2f} | {both / alone:.2f}x | "
              f"{both / threaded:.2f}x |", flush=True)


def _trivial(trial: optuna.Trial) -> float:
    x = sum(trial.suggest_float(f"x{i}", 0, 1) for i in range(5))
    for step in range(3):
        trial.report(x / (step + 1), step)
    trial.set_user_attr("n_params", 1234)
    trial.set_user_attr("worker", "bench")
    return x


def _storages() -> dict[str, Callable[[Path], tuple[object, Callable]]]:
    """name -> (storage factory for a folder, gate-lock factory or None)."""
    return {
        "sqlite, default settings": (lambda d: RDBStorage(f"sqlite:///{d / 'plain.db'}"), None),
        "sqlite, WAL + 60 s timeout + gate (ours)": (
            lambda d: open_storage(f"sqlite:///{d / 'ours.db'}"),
            lambda s, d, name: FileLock(d / "ours.db.lock")),
        "journal file": (
            lambda d: JournalStorage(JournalFileBackend(str(d / "journal.log"))), None),
        "postgresql + gate (ours)": (
            lambda d: open_storage(POSTGRES), lambda s, d, name: ServerLock(s, name)),
    }


def _storage_worker(kind: str, folder: str, name: str, trials: int, target: int,
                    queue: multiprocessing.Queue) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    make, lock = _storages()[kind]
    storage = make(Path(folder))
    study = optuna.load_study(study_name=name, storage=storage,
                              sampler=optuna.samplers.RandomSampler())
    errors = 0

    def count_error(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal errors
        errors += trial.state == TrialState.FAIL

    try:
        if lock is None:
            study.optimize(_trivial, n_trials=trials, catch=(Exception,), callbacks=[count_error])
        else:
            optimize_to_target(study, _trivial, target, lock(storage, Path(folder), name),
                               catch=(Exception,), callbacks=[count_error], poll_s=0.05)
    except Exception:
        errors += 1
    queue.put(errors)


def storage_cost(kind: str, trials: int, workers: int) -> tuple[float, int, int]:
    """(ms per trial of wall time, failed trials, finished trials) with ``workers`` at once."""
    with tempfile.TemporaryDirectory() as folder:
        name = f"bench-{uuid.uuid4().hex[:8]}"
        storage = _storages()[kind][0](Path(folder))
        optuna.create_study(study_name=name, storage=storage)
        context = multiprocessing.get_context("fork")  # no torch op has run in this process
        queue = context.Queue()
        per_worker = trials // workers
        procs = [context.Process(target=_storage_worker,
                                 args=(kind, folder, name, per_worker, trials, queue))
                 for _ in range(workers)]
        started = time.perf_counter()
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        seconds = time.perf_counter() - started
        errors = sum(queue.get() for _ in procs)
        study = optuna.load_study(study_name=name, storage=storage)
        done = sum(t.state == TrialState.COMPLETE for t in study.trials)
        if kind.startswith("postgresql"):
            optuna.delete_study(study_name=name, storage=storage)
    return 1000 * seconds / max(1, done), errors, done


def bench_storage(args: argparse.Namespace) -> None:
    print(f"{args.trials} trivial trials, {args.workers} processes at once vs 1 process")
    print("| storage | ms/trial, 1 process | ms/trial, N processes | failed (locked) | finished |")
    print("| --- | --- | --- | --- | --- |")
    for kind in _storages():
        one, _, _ = storage_cost(kind, args.trials // 2, 1)
        many, errors, done = storage_cost(kind, args.trials, args.workers)
        print(f"| {kind} | {one:.1f} | {many:.1f} | {errors} | {done} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    jobs = sub.add_parser("jobs")
    jobs.add_argument("--trials", type=int, default=40)
    jobs.add_argument("--seed", type=int, default=0)
    jobs.add_argument("--jobs", nargs="+", default=["1", "2", "4"],
                      help='job counts; "1t" is one job on one torch thread')
    storage = sub.add_parser("storage")
    storage.add_argument("--trials", type=int, default=200)
    storage.add_argument("--workers", type=int, default=4)
    ceiling = sub.add_parser("ceiling")
    ceiling.add_argument("--epochs", type=int, default=15)
    ceiling.add_argument("--draws", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    {"jobs": bench_jobs, "storage": bench_storage, "ceiling": bench_ceiling}[args.what](args)


if __name__ == "__main__":
    main()
