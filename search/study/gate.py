"""Exactly ``--trials`` finished trials, however many workers share one study.

Optuna's MaxTrialsCallback stops a worker once the target is reached, but workers already in a
trial finish it: four workers aiming at 24 can end with 27. Marking surplus trials afterwards
leaves FAIL rows that look like errors. Instead a worker reserves a trial before creating it:

    lock (one per study, shared by every worker on every machine)
        fail stale trials (a dead worker's trial is failed and, by the retry callback, re-queued)
        count finished (COMPLETE + PRUNED) + RUNNING + WAITING trials
        start only if a WAITING retry is queued (ask() takes it: no new trial) or the count is
        below the target; create the trial (study.ask) while still holding the lock
    unlock, then train

Every trial that can still finish is counted, so the total never passes the target; a trial
that fails (or whose worker dies, once its grace period is over) stops counting, so the target
is still reached. Only trial creation is serialised, not training.

The lock is a session lock held on its own connection, never a row lock in Optuna's
transactions: Optuna creates the trial in its own session and commits, so a lock inside that
transaction cannot span "count, then create". PostgreSQL advisory locks and MySQL/MariaDB
GET_LOCK are released by the server when a killed worker's connection drops, and an flock on
SQLite's side file is released by the kernel when the process dies: a kill -9 never leaves the
study locked.
"""

from __future__ import annotations

import fcntl
import hashlib
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage
from optuna.trial import TrialState
from sqlalchemy import text

from search import interrupts
from search.schema import FAIL_REASON, INTERRUPTED, WORKER_ATTR
from search.study.counts import count_states
from search.study.orphans import fail_orphans

# How often an idle worker (nothing left to start, other workers' trials still running) looks
# again: a running trial may fail or go stale, and then someone must run its replacement.
POLL_S = 1.0
# MySQL's GET_LOCK wants a finite timeout; no trial creation takes anywhere near this long.
MYSQL_LOCK_TIMEOUT_S = 3600


class TargetLock(Protocol):
    def acquire(self) -> None: ...

    def release(self) -> None: ...


class NoLock:
    """For an in-memory study: only this process can see it."""

    def acquire(self) -> None:
        pass

    def release(self) -> None:
        pass


class FileLock:
    """flock on a side file next to a SQLite database (all workers are on this machine)."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "a")  # noqa: SIM115 - held for the worker's life
        self._held = False

    def acquire(self) -> None:
        fcntl.flock(self._file, fcntl.LOCK_EX)
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            fcntl.flock(self._file, fcntl.LOCK_UN)


class ServerLock:
    """A session-level named lock on a connection of its own (PostgreSQL or MySQL/MariaDB)."""

    def __init__(self, storage: RDBStorage, study: str) -> None:
        digest = hashlib.blake2b(f"cnn-search:{study}".encode(), digest_size=8).digest()
        self._key = int.from_bytes(digest, "big", signed=True)
        self._name = f"cnn-search:{digest.hex()}"  # MySQL lock names are at most 64 chars
        self._postgres = storage.engine.dialect.name == "postgresql"
        self._connection = storage.engine.connect()
        self._held = False

    def acquire(self) -> None:
        if self._postgres:
            self._connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
        else:
            got = self._connection.execute(text("SELECT GET_LOCK(:n, :t)"),
                                           {"n": self._name, "t": MYSQL_LOCK_TIMEOUT_S}).scalar()
            if got != 1:
                raise RuntimeError(f"could not take the study lock {self._name!r} in "
                                   f"{MYSQL_LOCK_TIMEOUT_S} s")
        self._connection.commit()  # the lock belongs to the session; end the transaction
        self._held = True

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        if self._postgres:
            self._connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
        else:
            self._connection.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": self._name})
        self._connection.commit()


def target_lock(storage: RDBStorage, study: str) -> TargetLock:
    """The lock that serialises trial creation for ``study`` across all its workers."""
    dialect = storage.engine.dialect.name
    if dialect in ("postgresql", "mysql", "mariadb"):
        return ServerLock(storage, study)
    path = lock_file(storage)
    return FileLock(path) if path is not None else NoLock()


def lock_file(storage: RDBStorage) -> Path | None:
    """The side file a SQLite study's lock is taken on (``<db>.lock``); None for others."""
    database = storage.engine.url.database
    if storage.engine.dialect.name == "sqlite" and database and database != ":memory:":
        return Path(f"{database}.lock")
    return None


def reserved_counts(study: optuna.Study) -> Counter[TrialState]:
    """Trials that count against the target; a trial whose local process died does not."""
    counts = count_states(study)
    if counts[TrialState.RUNNING]:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if fail_orphans(study, running):  # a local worker was killed: its trial is queued again
            counts = count_states(study)
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    return Counter({state: counts[state] for state in states if counts[state]})


def may_start(counts: Counter[TrialState], target: int) -> bool:
    """Whether one more trial may start without the study passing ``target`` finished trials."""
    if counts[TrialState.WAITING]:
        return True  # ask() resumes a queued (retried) trial: the count does not grow
    done = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
    return done + counts[TrialState.RUNNING] < target


def _fail_stale(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _releasing(objective: Callable[[optuna.Trial], Any], lock: TargetLock,
               label: str | None) -> Callable[[optuna.Trial], Any]:
    def run(trial: optuna.Trial) -> Any:
        lock.release()  # the trial exists (RUNNING, committed): others may count it now
        try:
            interrupts.let_in()
            if label is not None:
                trial.set_user_attr(WORKER_ATTR, label)
            return objective(trial)
        except KeyboardInterrupt:
            # Optuna fails the trial; the reason tells a stopped trial from a broken one.
            trial.set_user_attr(FAIL_REASON, INTERRUPTED)
            raise

    return run


def _try_one(study: optuna.Study, objective: Callable[[optuna.Trial], Any], target: int,
             lock: TargetLock, label: str | None, optimize_kwargs: dict[str, Any]) -> str:
    """Run one trial if the target allows: "ran", "wait" (others are running) or "done"."""
    try:
        lock.acquire()
        # Held back from here until the objective starts: between ask() and the objective
        # nothing would fail the new trial, and it would sit RUNNING until its grace period
        # ran out. Held back, a Ctrl-C or SIGTERM arrives inside the objective, which fails it.
        interrupts.hold()
        counts = reserved_counts(study)
        if counts[TrialState.COMPLETE] + counts[TrialState.PRUNED] >= target:
            return "done"
        if not may_start(counts, target):
            # A dead worker's trial may be what holds the count up: fail (and re-queue) the
            # stale ones, then count again. When a trial may start anyway, optimize() runs the
            # same check before ask(), so doing it here too would only cost a query per trial.
            _fail_stale(study)
            if not may_start(reserved_counts(study), target):
                return "wait"
        # optimize(n_trials=1) keeps Optuna's own trial handling: heartbeat thread, FAIL on an
        # exception or Ctrl-C, callbacks. Its ask() runs under the lock; the objective frees it.
        study.optimize(_releasing(objective, lock, label), n_trials=1, gc_after_trial=False,
                       **optimize_kwargs)
        return "ran"
    finally:
        lock.release()
        interrupts.let_in()  # one that came in the meantime is raised here


def optimize_to_target(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], Any],
    target: int,
    lock: TargetLock,
    *,
    timeout: float | None = None,
    callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
    catch: tuple[type[Exception], ...] = (),
    should_stop: Callable[[], bool] = lambda: False,
    after_trial: Callable[[], None] = lambda: None,
    poll_s: float = POLL_S,
    label: str | None = None,
) -> None:
    """Run trials until the study has ``target`` finished trials (never more), or time is up.

    ``timeout`` stops *starting* trials after that many seconds, like ``study.optimize``.
    ``label`` (who runs it: host, pid, worker) is stored in each trial's "worker" user attr.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    kwargs = {"callbacks": list(callbacks), "catch": catch}
    while deadline is None or time.monotonic() < deadline:
        outcome = _try_one(study, objective, target, lock, label, kwargs)
        if outcome == "done":
            return
        if outcome == "wait":
            time.sleep(poll_s)
            continue
        after_trial()
        if should_stop():
            return
