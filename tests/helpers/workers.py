"""Studies and worker jobs for tests of several workers, and a way to catch one mid-trial."""

from __future__ import annotations

import os
import signal
import time
import tomllib
import uuid

import optuna
from optuna.trial import TrialState

from search.optuna_private import storage_of, trial_id
from search.schema import WORKER_ATTR
from search.study.spec import StudySpec
from search.study.storage import open_storage
from search.study.studies import load_or_create
from search.training.workers import WorkerJob
from tests.helpers.configs import TINY_SPACE_TOML

# Short heartbeat settings for tests: beat every 1 s, fail a trial silent for 3 s.
FAST_HEARTBEAT = (1, 3)


def tiny_spec(epochs: int = 1, pruner: str = "sha") -> StudySpec:
    return StudySpec.from_flat({"epochs": epochs, "pruner": pruner,
                                "space": tomllib.loads(TINY_SPACE_TOML)["space"]})


def new_study(url: str, spec: StudySpec) -> tuple[str, optuna.Study]:
    name = f"scale-{uuid.uuid4().hex[:12]}"
    return name, load_or_create(name, open_storage(url, FAST_HEARTBEAT), spec)


def jobs_for(name: str, url: str, target: int, n: int) -> list[WorkerJob]:
    return [WorkerJob(study=name, url=url, target=target, worker=i, heartbeat=FAST_HEARTBEAT,
                      poll_s=0.2) for i in range(n)]


def stop_mid_trial(study: optuna.Study, pids: set[int],
                   min_epochs: int = 1) -> optuna.trial.FrozenTrial:
    """SIGSTOP a worker mid-training (params set, ``min_epochs`` reported); return its trial."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if WORKER_ATTR not in trial.user_attrs or len(trial.intermediate_values) < min_epochs:
                continue  # not training yet
            pid = int(trial.user_attrs[WORKER_ATTR].split(":")[1])
            if pid not in pids:
                continue
            os.kill(pid, signal.SIGSTOP)  # from here its trial can no longer move on
            now = storage_of(study).get_trial(trial_id(trial))
            if now.state == TrialState.RUNNING:
                return now
            os.kill(pid, signal.SIGCONT)
        time.sleep(0.05)
    raise TimeoutError("no worker was caught mid-trial")
