"""``--jobs N``: N worker processes on one machine, sharing one study.

Processes, not threads: training holds the GIL between kernels, and one process per worker
keeps a crash (or kill -9) to that worker. Each worker opens its own storage connection,
loads the data once, takes cores // N torch threads and, on GPUs, device i. Trials are
created through the study-wide gate (search.study.gate), so N workers stop at exactly the target.
The parent trains nothing: it draws the progress bar from the storage and prints the summary.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from optuna.storages import RDBStorage
from optuna.trial import TrialState
from tqdm import tqdm

from search import cli, interrupts
from search.data.registry import DataBundle, load_bundle
from search.results.artifacts import artifact_dir
from search.results.model_saver import ModelSaver, save_failure
from search.strategy.pareto import ParetoHalving
from search.study.counts import count_states, finished
from search.study.gate import POLL_S, optimize_to_target, target_lock
from search.study.progress import ProgressCallback
from search.study.spec import SAVE_EVERY_SECONDS, StudySpec
from search.study.storage import GRACE_PERIOD, HEARTBEAT_INTERVAL, MAX_RETRY, open_storage
from search.study.studies import load_or_create, stored_spec
from search.tracking.trackers import CLOSE_WAIT_S, STOPPED_WAIT_S, Tracking, start_tracking
from search.training.checkpoints import TrialCheckpoints, default_dir
from search.training.costs import latency_setup, limit_check
from search.training.device import free_device_memory
from search.training.objective import Objective


@dataclass(frozen=True)
class WorkerJob:
    """What one worker process needs; the spec itself is read from the stored study."""

    study: str
    url: str
    target: int  # study-wide finished trials
    worker: int  # index on this machine, 0..jobs-1
    device: str = "cpu"
    threads: int = 1  # torch intra-op threads
    timeout: float | None = None  # stop starting trials after this many seconds
    heartbeat: tuple[int, int] = (HEARTBEAT_INTERVAL, GRACE_PERIOD)  # (interval s, grace s)
    max_retry: int = MAX_RETRY
    poll_s: float = POLL_S
    save_models: str = "best"  # search.study.spec.SAVE_MODES
    checkpoint_dir: str | None = None  # --checkpoint-dir (search.training.checkpoints.default_dir)
    checkpoint_every: float = SAVE_EVERY_SECONDS  # --checkpoint-every
    track: tuple[str, ...] = ()  # --track: the experiment trackers this worker logs its trials to


def thread_share(jobs: int, cores: int | None = None) -> int:
    """Torch threads per worker: the cores split evenly, at least one each."""
    return max(1, (cores or os.cpu_count() or 1) // jobs)


def worker_label(worker: int) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{worker}"


def seed_index(storage: RDBStorage, worker: int) -> int:
    """The ``worker`` part of this process's sampler seed (search.study.studies.sampler_seed).

    On a local SQLite file the index is unique among the workers; on a server, machines all
    number their workers from 0 and may start at once, so host and pid go in as well: equal
    seeds would draw the same startup trials on every machine.
    """
    if storage.engine.dialect.name == "sqlite":
        return worker
    return zlib.crc32(worker_label(worker).encode())


def work(job: WorkerJob, storage: RDBStorage, study: optuna.Study, objective: Objective,
         show: bool = False, tracking: Tracking | None = None) -> ProgressCallback:
    """Run gated trials until the study-wide target; returns the callback (failure count).

    Each trial this process finishes is logged to the job's trackers (search.tracking), through
    ``tracking`` where the caller started it early, else started here.
    """
    callback = ProgressCallback(job.target, show=show)
    callback.start(finished(count_states(study)))
    tracking = tracking or start_tracking(job.track)
    tracking.open(job.study, job.url)
    ended = False  # not by Ctrl-C, SIGTERM or an error
    try:
        optimize_to_target(
            study, objective, job.target, target_lock(storage, job.study),
            timeout=job.timeout, callbacks=[callback, *tracking.callbacks],
            catch=(RuntimeError, MemoryError),
            should_stop=lambda: callback.gave_up or save_failure(objective.on_trained) is not None,
            after_trial=lambda: free_device_memory(objective.device), poll_s=job.poll_s,
            label=worker_label(job.worker))
        ended = True
    finally:
        callback.close()
        # Trials finished before a Ctrl-C are still logged, but a stopped run waits less for it.
        tracking.close(done=ended and finished(count_states(study)) >= job.target,
                       wait_s=CLOSE_WAIT_S if ended else STOPPED_WAIT_S)
    return callback


def build_objective(study: str, spec: StudySpec, data: DataBundle, device: torch.device,
                    save_models: str, checkpoints: Path,
                    checkpoint_every: float = SAVE_EVERY_SECONDS) -> Objective:
    """The objective every process of a study runs, saving models per ``--save-models`` and
    each running trial's last epoch in ``checkpoints`` (at most every ``checkpoint_every`` s)."""
    saver = ModelSaver(artifact_dir(study), data.format, save_models)
    costs = spec.objectives[1:]
    # Multi-objective studies prune by Pareto rank; "none" turns pruning off there as well.
    pareto = ParetoHalving(costs) if costs and spec.pruner != "none" else None
    return Objective(data, spec.space, spec.epochs, spec.seed, device, on_trained=saver,
                     patience=spec.patience, checkpoints=TrialCheckpoints(checkpoints, checkpoint_every),
                     objectives=spec.objectives, limits=spec.limits,
                     latency=latency_setup(spec),
                     pareto=pareto)


def run_worker(job: WorkerJob) -> int:
    """Body of one worker process; returns its exit code."""
    torch.set_num_threads(job.threads)
    cli.quiet_libraries()
    tracking = start_tracking(job.track)  # its imports overlap ours and the data's loading
    storage = open_storage(job.url, job.heartbeat, job.max_retry)
    spec = StudySpec.from_flat(stored_spec(storage, job.study) or {})
    data = load_bundle(spec.data)
    study = load_or_create(job.study, storage, spec, worker=seed_index(storage, job.worker),
                           parallel=True, fits=limit_check(spec, data.input_shape, data.n_classes))
    objective = build_objective(job.study, spec, data, torch.device(job.device), job.save_models,
                                default_dir(job.study, job.url, job.checkpoint_dir),
                                job.checkpoint_every)
    try:
        callback = work(job, storage, study, objective, tracking=tracking)
    except KeyboardInterrupt:
        return cli.EXIT_INTERRUPTED
    failure = save_failure(objective.on_trained)
    if failure is not None:
        print(f"worker {job.worker}: {failure}; the study is intact", file=sys.stderr)
        return cli.EXIT_FAILURE
    if callback.gave_up:
        print(f"worker {job.worker}: stopped after {callback.consecutive_failures} failed trials "
              f"in a row; last reason: {callback.last_failure}", file=sys.stderr)
        return cli.EXIT_FAILURE
    return cli.EXIT_OK


def _worker_main(job: WorkerJob) -> None:
    interrupts.install()  # SIGTERM fails the running trial instead of leaving it RUNNING
    sys.exit(run_worker(job))


def start_workers(jobs: list[WorkerJob]) -> list[multiprocessing.process.BaseProcess]:
    # A fork server, not fork: a child forked from a process that has run torch ops inherits
    # its thread pools in an undefined state. Not spawn either: each spawned worker imports
    # torch again (2 s of CPU each); the server imports once, before any torch op, and forks.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["search.training.workers"])
    processes = [context.Process(target=_worker_main, args=(job,), name=f"worker-{job.worker}")
                 for job in jobs]
    for process in processes:
        process.start()
    return processes


def _watch(study: optuna.Study, target: int, processes: list, show: bool) -> None:
    """Draw the study-wide progress from the storage until every worker has exited."""
    bar = tqdm(total=target, unit="trial", file=sys.stderr, dynamic_ncols=True) if show else None
    try:
        while any(p.is_alive() for p in processes):
            if bar is not None:
                counts = count_states(study)
                bar.n = min(finished(counts), target)
                bar.set_postfix_str(f"pruned {counts[TrialState.PRUNED]} failed "
                                    f"{counts[TrialState.FAIL]} running "
                                    f"{counts[TrialState.RUNNING]}", refresh=True)
            time.sleep(0.5)
    finally:
        if bar is not None:
            bar.close()


def run_jobs(study: optuna.Study, jobs: list[WorkerJob], show: bool) -> list[int]:
    """Start the workers, watch them, and return their exit codes (negative: killed).

    On Ctrl-C or SIGTERM the workers are stopped and the list starts with EXIT_INTERRUPTED.
    """
    processes = start_workers(jobs)
    interrupted = False
    try:
        _watch(study, jobs[0].target, processes, show)
    except KeyboardInterrupt:
        # Ctrl-C reached the workers too (same process group); SIGTERM reached only us. Either
        # way each worker fails its running trial and exits; wait for that, then report.
        interrupted = True
        for process in processes:
            if process.is_alive():
                process.terminate()
    for process in processes:
        process.join()
    codes = [process.exitcode or 0 for process in processes]
    return [cli.EXIT_INTERRUPTED, *codes] if interrupted else codes
