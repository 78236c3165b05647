"""Scale out: N workers on one study (PostgreSQL, MariaDB, local SQLite), kill -9, exact targets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.schema import FAIL_REASON
from search.study.counts import count_states
from search.study.gate import WORKER_ATTR, may_start
from search.study.storage import open_storage
from search.study.studies import load_or_create
from search.training.device import worker_device
from search.training.workers import run_jobs, start_workers, thread_share
from tests.helpers.servers import SERVERS, reachable
from tests.helpers.studies import read_states
from tests.helpers.workers import jobs_for, new_study, stop_mid_trial, tiny_spec

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@pytest.fixture(params=sorted(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    url = SERVERS[request.param]
    why = reachable(url)
    if why is not None:
        pytest.skip(f"{request.param} server at {url} is unreachable: {why}")
    yield url


def worker_index(trial: optuna.trial.FrozenTrial) -> int:
    return int(trial.user_attrs[WORKER_ATTR].rsplit(":", 1)[1])


@pytest.mark.parametrize(
    ("complete", "pruned", "running", "waiting", "expected"),
    [
        (20, 0, 3, 0, True),  # 23 reserved: one more fits
        (20, 1, 3, 0, False),  # 24 reserved: the target is spoken for
        (22, 0, 2, 1, True),  # a queued retry is resumed, no new trial is made
        (23, 0, 0, 0, True),  # failed trials do not count: their places are free again
    ],
)
def test_may_start_counts_every_trial_that_can_still_finish(
        complete: int, pruned: int, running: int, waiting: int, expected: bool) -> None:
    counts = Counter({TrialState.COMPLETE: complete, TrialState.PRUNED: pruned,
                      TrialState.RUNNING: running, TrialState.WAITING: waiting})
    # Rule: start only if finished + running stays below the target, or a retry is queued.
    assert may_start(counts, 24) is expected


def test_thread_share_and_worker_device_split_the_machine() -> None:
    # Rule: cores are split evenly with at least one thread each; CPU workers stay on the CPU.
    assert [thread_share(n, cores=16) for n in (1, 2, 3, 32)] == [16, 8, 5, 1]
    assert worker_device("cpu", 3) == "cpu"
    assert worker_device("cuda:1", 3) == "cuda:1"


def test_workers_on_a_server_stop_at_exactly_the_target(server: str) -> None:
    name, study = new_study(server, tiny_spec())
    try:
        codes = run_jobs(study, jobs_for(name, server, 24, 4), show=False)
        trials = study.get_trials(deepcopy=False)
        # Rule: 4 workers end with exactly 24 finished trials, no number twice, all contributed.
        assert codes == [0, 0, 0, 0]
        assert sum(t.state in FINISHED for t in trials) == 24
        assert len(trials) == 24
        assert len({t.number for t in trials}) == len(trials)
        assert {worker_index(t) for t in trials} == {0, 1, 2, 3}
    finally:
        optuna.delete_study(study_name=name, storage=server)


def test_killed_worker_trial_fails_and_is_retried_with_same_params() -> None:
    url = SERVERS["postgresql"]
    why = reachable(url)
    if why is not None:
        pytest.skip(f"postgresql server at {url} is unreachable: {why}")
    name, study = new_study(url, tiny_spec(epochs=3, pruner="none"))
    processes = start_workers(jobs_for(name, url, 8, 2))
    try:
        victim = stop_mid_trial(study, {p.pid for p in processes})
        os.kill(int(victim.user_attrs[WORKER_ATTR].split(":")[1]), signal.SIGKILL)
        for process in processes:
            process.join(timeout=180)
        trials = study.get_trials(deepcopy=False)
        retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
        # Rule: the killed trial is failed after the grace period, rerun with its parameters by
        # the surviving worker, and the study still reaches exactly its target.
        assert study._storage.get_trial(victim._trial_id).state == TrialState.FAIL
        assert len(retries) == 1 and retries[0].params == victim.params
        assert retries[0].state in FINISHED
        assert FAIL_REASON not in retries[0].user_attrs  # the dead attempt's reason stays with it
        assert sum(t.state in FINISHED for t in trials) == 8
        assert TrialState.RUNNING not in {t.state for t in trials}
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
        optuna.delete_study(study_name=name, storage=url)


def test_jobs_on_default_sqlite_never_lock_and_stop_at_the_target(workdir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "search.run", "--trials", "16", "--jobs", "4", "--epochs", "1",
         "--baseline", "--config", "tiny.toml", "--quiet"],
        cwd=workdir, text=True, capture_output=True, timeout=240)
    study = optuna.load_study(study_name="digits", storage="sqlite:///studies/digits.db")
    trials = study.get_trials(deepcopy=False)
    # Rule: --jobs 4 on the default SQLite file: no lock error, exactly 16 trials, all finished.
    assert result.returncode == 0, result.stderr
    assert "locked" not in result.stderr
    assert "16 finished trials (target 16)" in result.stdout
    assert len(trials) == 16 and all(t.state in FINISHED for t in trials)
    assert len({worker_index(t) for t in trials}) >= 2
    assert [t.number for t in trials if t.user_attrs.get("baseline")] == [0]


def test_machines_starting_a_new_study_together_queue_one_baseline(server: str,
                                                                   workdir: Path) -> None:
    # Rule: three runs that open the same new study on a server at once (three machines) run
    # the textbook recipe once between them, as one of the target's trials.
    name = f"scale-{uuid.uuid4().hex[:12]}"
    args = [sys.executable, "-m", "search.run", "--study", name, "--storage", server,
            "--trials", "6", "--epochs", "1", "--baseline", "--config", "tiny.toml", "--quiet"]
    procs = [subprocess.Popen(args, cwd=workdir, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(3)]
    try:
        outcomes = [proc.communicate(timeout=240) for proc in procs]
        assert [proc.returncode for proc in procs] == [0, 0, 0], [err for _, err in outcomes]
        trials = optuna.load_study(study_name=name, storage=server).get_trials(deepcopy=False)
        assert len(trials) == 6 and all(t.state in FINISHED for t in trials)
        assert sum(bool(t.user_attrs.get("baseline")) for t in trials) == 1
    finally:
        optuna.delete_study(study_name=name, storage=server)


def test_jobs_sigterm_fails_running_trials_and_leaves_none_running(workdir: Path) -> None:
    args = [sys.executable, "-m", "search.run", "--trials", "40", "--jobs", "2", "--epochs", "6",
            "--config", "tiny.toml", "--quiet"]
    proc = subprocess.Popen(args, cwd=workdir, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    db = workdir / "studies" / "digits.db"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        # Read-only polling: opening the file through Optuna could race the schema creation.
        if sum(s in ("COMPLETE", "PRUNED") for s in read_states(db)) >= 1:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    trials = optuna.load_study(study_name="digits", storage=f"sqlite:///{db}").trials
    # Rule: SIGTERM to the parent stops every worker, fails their running trials (no RUNNING
    # left behind), exits 130 and says how to resume with the same number of jobs.
    assert proc.returncode == 130, err
    assert "--jobs 2" in err
    assert TrialState.RUNNING not in {t.state for t in trials}


def _mixed_states(study: optuna.Study) -> Counter[TrialState]:
    for state in (TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
        study.tell(study.ask(), 0.5 if state == TrialState.COMPLETE else None, state=state)
    study.ask()  # left RUNNING
    study.enqueue_trial({"lr": 0.01})  # WAITING
    return Counter({TrialState.COMPLETE: 2, TrialState.PRUNED: 1, TrialState.FAIL: 1,
                    TrialState.RUNNING: 1, TrialState.WAITING: 1})


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask/tell by hand, on purpose
def test_count_states_on_a_server_is_what_the_trials_say(server: str) -> None:
    # Rule: the one-query count (the gate's and the progress bar's) agrees with the trials.
    _, study = new_study(server, tiny_spec())
    expected = _mixed_states(study)
    assert count_states(study) == expected == Counter(t.state for t in study.get_trials())


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask/tell by hand, on purpose
@pytest.mark.parametrize("where", ["sqlite", "memory"])
def test_count_states_on_sqlite_and_in_memory_is_what_the_trials_say(tmp_path: Path,
                                                                     where: str) -> None:
    if where == "sqlite":
        study = load_or_create("counts", open_storage(f"sqlite:///{tmp_path / 'c.db'}"),
                               tiny_spec())
    else:
        study = optuna.create_study()
    expected = _mixed_states(study)
    assert count_states(study) == expected == Counter(t.state for t in study.get_trials())
