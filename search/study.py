"""Study creation: storage, sampler and pruner by name, and the stored spec."""

from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError

from model_space import SearchSpace, baseline_params
from search.objective import FAIL_REASON, INTERRUPTED
from search.rungs import RungHalving, RungHyperband
from search.spec import StudySpec
from search.tpe import GroupedTPESampler

SPEC_ATTR = "spec"
OBJECTIVE_NAME = "val_accuracy"
# A live worker writes a heartbeat every HEARTBEAT_INTERVAL s: one small UPDATE per running
# trial, so 100 workers cost 10 writes/s, nothing for a server and a few ms of SQLite's lock.
# A trial silent for GRACE_PERIOD s (four missed beats) is failed and re-queued. Four beats ride
# out a busy database or an overloaded host; declaring a live trial dead is the costly mistake
# (its work is lost and it runs twice), while a late retry costs at most 40 s once per crash,
# small beside trials of minutes on real datasets. Retrying MAX_RETRY times with the same
# parameters rides out a preemption or two; more would let a trial that kills its worker (say,
# the kernel's OOM killer on a too-wide net) take down every machine in turn.
HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 40
MAX_RETRY = 2
# Local --jobs N stays on SQLite (WAL, below): one writer at a time, and readers beside it. A
# writer waits up to this long for the lock instead of failing with "database is locked"; no
# write here holds it for more than milliseconds. JournalFileBackend was faster per trial
# (README, "Scale out") but has no heartbeat: a killed worker's trial would stay RUNNING forever.
SQLITE_TIMEOUT_S = 60
# Seconds to wait for a PostgreSQL or MySQL server to answer a new connection. Either client
# library counts it per attempt (psycopg also per address), so a dead host fails within ~10 s.
CONNECT_TIMEOUT_S = 3


def default_storage(study: str, root: Path = Path("studies")) -> str:
    return f"sqlite:///{root / study}.db"


# Query parameters that carry secrets (libpq's password, MySQL's passwd, tokens).
_SECRET_QUERY = re.compile(r"((?:^|[?&;])[\w.-]*(?:password|passwd|pwd|secret|token)[\w.-]*=)"
                           r"[^&;]*", re.IGNORECASE)
_USERINFO = re.compile(r"(://[^/?#@:]*:)[^/?#]*@")


def mask_url(url: str) -> str:
    """The URL with any password (in the user part or the query) replaced by ***, safe to print.

    It works on text, not on SQLAlchemy's parse: a URL too malformed to parse (say, a port
    that is not a number) is exactly the one printed in an error message.
    """
    masked = _USERINFO.sub(r"\1***@", url, count=1)
    head, sep, query = masked.partition("?")
    return head + sep + _SECRET_QUERY.sub(r"\1***", query)


def rdb_backend(study: optuna.Study) -> RDBStorage | None:
    """The database storage behind ``study`` (under Optuna's trial cache); None for others."""
    backend = getattr(study._storage, "_backend", study._storage)
    return backend if isinstance(backend, RDBStorage) else None


def open_storage(url: str, heartbeat: tuple[int, int] = (HEARTBEAT_INTERVAL, GRACE_PERIOD),
                 max_retry: int = MAX_RETRY) -> RDBStorage:
    """An RDB storage with heartbeats, so a killed worker's trial is failed and retried."""
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
    else:
        # Drop dead pooled connections (server restarts, idle timeouts) instead of failing.
        engine_kwargs["pool_pre_ping"] = True
        parsed = _parse(url)
        if parsed is not None:  # a bad URL is RDBStorage's to report
            engine_kwargs["connect_args"] = _connect_timeout(parsed)
            _probe_mysql(parsed)

    def connect() -> RDBStorage:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat[0],
                grace_period=heartbeat[1],
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                    max_retry=max_retry),
            )

    try:
        storage = connect()
    except IntegrityError:
        # Two processes opening a brand-new database both create Optuna's schema and stamp its
        # version; the loser hits a unique constraint. The schema exists now: open it again.
        time.sleep(0.5)
        storage = connect()
    if storage.engine.dialect.name == "sqlite":
        _use_wal(storage)
    return storage


def _parse(url: str) -> URL | None:
    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        return None


def _connect_timeout(parsed: URL) -> dict[str, Any]:
    # A server that is down refuses at once, but one behind a firewall that drops packets, or
    # one that accepts and never answers, would leave the CLI hanging for minutes.
    if parsed.get_backend_name() not in ("postgresql", "mysql", "mariadb"):
        return {}
    if "connect_timeout" in parsed.query:
        return {}  # the user's own choice wins
    return {"connect_timeout": CONNECT_TIMEOUT_S}


def _probe_mysql(parsed: URL) -> None:
    # PyMySQL's connect_timeout covers the TCP connect only: a server that accepts and never
    # sends its greeting would hang the handshake for good. One throwaway connection with a read
    # timeout proves the server answers. The real engine keeps no read timeout, since the
    # gate's GET_LOCK may rightly wait a long time for its answer.
    if parsed.get_backend_name() not in ("mysql", "mariadb"):
        return
    if parsed.get_driver_name() not in ("pymysql", "mysqldb"):
        return  # drivers without read_timeout keep their own behaviour
    timeouts = {"connect_timeout": CONNECT_TIMEOUT_S, "read_timeout": CONNECT_TIMEOUT_S}
    engine = create_engine(parsed, connect_args=timeouts)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


def _sqlite_pragmas(connection: Any, record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _use_wal(storage: RDBStorage) -> None:
    # WAL lets readers run beside the one writer, and synchronous=NORMAL syncs once per
    # checkpoint instead of per commit: together they cut per-trial storage time by a third.
    # A crash can lose the last commits, never corrupt the file.
    if ":memory:" in storage.url or storage.url.rstrip("/") == "sqlite:":
        return
    event.listen(storage.engine, "connect", _sqlite_pragmas)
    storage.engine.dispose()


def _tpe(seed: int, constant_liar: bool = False) -> optuna.samplers.BaseSampler:
    # Grouped multivariate TPE models each optimizer's conditional parameters jointly, and the
    # constant liar keeps parallel workers from sampling the same point.
    return GroupedTPESampler(seed=seed, constant_liar=constant_liar, n_startup_trials=10)


def _cmaes(seed: int) -> optuna.samplers.BaseSampler:
    # CMA-ES covers the continuous parameters; categorical ones fall back to random search.
    return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)


def _gp(seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)


def _qmc(seed: int) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return optuna.samplers.QMCSampler(seed=seed, scramble=True,
                                          warn_independent_sampling=False,
                                          warn_asynchronous_seeding=False)


def _random(seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "tpe": _tpe,
    "random": _random,
    "cmaes": _cmaes,
    "gp": _gp,
    "qmc": _qmc,
}

PRUNERS: dict[str, Callable[[int], optuna.pruners.BasePruner]] = {
    "hyperband": lambda epochs: RungHyperband(min_resource=1, max_resource=epochs,
                                              reduction_factor=3),
    "sha": lambda epochs: RungHalving(min_resource=1, reduction_factor=3),
    "median": lambda epochs: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
    "none": lambda epochs: optuna.pruners.NopPruner(),
}


def make_sampler(name: str, seed: int, parallel: bool = False) -> optuna.samplers.BaseSampler:
    """``parallel``: other workers may run trials at the same time as this one."""
    if name == "tpe":
        # The constant liar only matters beside other workers, and it turns off the sampler's
        # per-trial cache (one storage read per parameter group instead of one per trial).
        return _tpe(seed, constant_liar=parallel)
    return SAMPLERS[name](seed)


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    return PRUNERS[name](epochs)


BASELINE_ATTR = "baseline"


def enqueue_baseline(study: optuna.Study, space: SearchSpace) -> None:
    """Queue the textbook configuration (model_space.baseline_params) as the study's first trial.

    Callers do this only for a study with no trials yet, under the trial gate's lock where other
    workers may race, so one study gets one baseline.
    """
    study.enqueue_trial(baseline_params(space), user_attrs={BASELINE_ATTR: True})


def needs_baseline(trials: Sequence[FrozenTrial]) -> bool:
    """Whether a study that starts from the recipe should queue it now.

    A new study does. So does one whose recipe trial was only ever interrupted (Ctrl-C during
    the first trial): the recipe is the strongest first trial on most data (README, "The first
    trial"), and a study resumed without it would never train it. A recipe trial that failed on
    its own (diverged, out of memory) is not queued again.
    """
    if not trials:
        return True
    recipe = [t for t in trials if t.user_attrs.get(BASELINE_ATTR)]
    return bool(recipe) and all(t.state == TrialState.FAIL
                                and t.user_attrs.get(FAIL_REASON) == INTERRUPTED for t in recipe)


def stored_spec(storage: RDBStorage, study: str) -> dict[str, Any] | None:
    """The spec a study was created with, or None for a new study."""
    try:
        study_id = storage.get_study_id_from_name(study)
    except KeyError:
        return None
    raw = storage.get_study_user_attrs(study_id).get(SPEC_ATTR)
    return json.loads(raw) if raw else None


def _is_shared(storage: RDBStorage) -> bool:
    # A server database is there to be shared by workers; assume others may be running.
    return storage.engine.dialect.name != "sqlite"


def sampler_seed(seed: int, n_existing: int, worker: int = 0) -> int:
    # A resumed run or a second worker must not replay the first one's random draws.
    return (seed * 1_000_003 + n_existing * 101 + worker) % (2**31)


def load_or_create(name: str, storage: RDBStorage, spec: StudySpec,
                   worker: int = 0, parallel: bool | None = None) -> optuna.Study:
    """Open the study, creating it (with its spec stored) if it does not exist."""
    existing = stored_spec(storage, name) is not None
    n_existing = 0
    if existing:
        n_existing = len(storage.get_all_trials(storage.get_study_id_from_name(name),
                                                deepcopy=False))
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=make_sampler(spec.sampler, sampler_seed(spec.seed, n_existing, worker),
                             parallel=_is_shared(storage) if parallel is None else parallel),
        pruner=make_pruner(spec.pruner, spec.epochs),
        direction="maximize",
        load_if_exists=True,
    )
    if not existing:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            study.set_metric_names([OBJECTIVE_NAME])
        study.set_user_attr(SPEC_ATTR, json.dumps(spec.to_flat()))
    return study
