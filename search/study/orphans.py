"""Trials left RUNNING by a process on this machine that no longer exists (kill -9, OOM killer).

Optuna's heartbeat fails such a trial once it has been silent for the grace period (40 s):
right across machines, where nobody can tell a dead worker from a slow one. On a local SQLite
file every worker runs on this machine, so a process id that is gone says at once that its trial
will never finish. The next run (or a surviving worker) fails it and queues its parameters
again, exactly as the heartbeat would have, without waiting out the grace period.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from pathlib import Path

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from search.optuna_private import rdb_backend, storage_of, trial_id
from search.schema import FAIL_REASON, WORKER_ATTR


def process_gone(pid: int) -> bool:
    """Whether no live process has this id on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, and someone else's
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no /proc (not Linux): trust the signal test
    # A killed worker its parent has not reaped yet is a zombie: it will never run again.
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def orphan_pid(trial: FrozenTrial, host: str) -> int | None:
    """The id of the local process that ran ``trial`` if that process is gone, else None."""
    label = trial.user_attrs.get(WORKER_ATTR)  # "host:pid:worker", set by search.study.gate
    parts = label.split(":") if isinstance(label, str) else []
    if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
        return None  # another machine's, or not labelled yet: the heartbeat decides
    pid = int(parts[1])
    return pid if process_gone(pid) else None


def is_local_sqlite(study: optuna.Study) -> bool:
    backend = rdb_backend(study)
    return backend is not None and backend.engine.dialect.name == "sqlite"


def fail_orphans(study: optuna.Study, trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """Fail the RUNNING ``trials`` whose local process is gone and queue them again.

    Only on SQLite, whose workers all share this machine (and so its process ids); a server
    may hold trials of machines with the same host name. Call it under the study's gate lock.
    """
    if not is_local_sqlite(study):
        return []
    host, storage, failed = socket.gethostname(), storage_of(study), []
    for trial in trials:
        pid = orphan_pid(trial, host) if trial.state == TrialState.RUNNING else None
        if pid is None:
            continue
        try:
            storage.set_trial_user_attr(trial_id(trial), FAIL_REASON,
                                        f"its process {pid} on {host} ended during the trial")
            if storage.set_trial_state_values(trial_id(trial), TrialState.FAIL):
                failed.append(storage.get_trial(trial_id(trial)))
        except UpdateFinishedTrialError:
            continue  # it finished after all
    retry = storage.get_heartbeat_stale_trial_callback()
    for trial in failed if retry is not None else []:
        retry(study, trial)  # the same re-queue a stale heartbeat gets
    return failed
