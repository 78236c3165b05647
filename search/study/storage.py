"""Study storage: the default URL, engines with heartbeats, and one line for what is wrong.

Every CLI opens its storage here, so a typo, a missing file, a corrupt one, an old schema or a
server that does not answer reads the same everywhere, and never as a traceback.
"""

from __future__ import annotations

import copy
import os
import re
import sqlite3
import time
import warnings
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial
from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, SQLAlchemyError

from search.errors import InputError, UsageError
from search.hints import first_line, nearest
from search.paths import check_path
from search.schema import FAIL_REASON, WORKER_ATTR

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
# (docs/benchmarks/scaling.md) but has no heartbeat: a killed worker's trial would stay RUNNING forever.
SQLITE_TIMEOUT_S = 60
# Seconds to wait for a PostgreSQL or MySQL server to answer a new connection. Either client
# library counts it per attempt (psycopg also per address), so a dead host fails within ~10 s.
CONNECT_TIMEOUT_S = 3


def check_study_name(name: str) -> str:
    # Study names become file names under studies/ and reports/: nothing may escape them.
    if not _STUDY_NAME.match(name) or ".." in name:
        raise UsageError(f"study name {name!r} must be 1-128 letters, digits, '.', '_' or '-' "
                         "and must not contain '..'")
    return name


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


def open_storage(url: str, heartbeat: tuple[int, int] = (HEARTBEAT_INTERVAL, GRACE_PERIOD),
                 max_retry: int = MAX_RETRY, *, new_file: bool = False) -> RDBStorage:
    """An RDB storage with heartbeats, so a killed worker's trial is failed and retried.

    ``new_file``: a SQLite file this run creates, switched to WAL for good. An existing file
    keeps its journal mode: a command never changes how someone else's file is kept.
    """
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
                heartbeat_stale_trial_callback=RetryAsNew(max_retry=max_retry,
                                                          inherit_intermediate_values=True),
            )

    try:
        storage = connect()
    except IntegrityError:
        # Two processes opening a brand-new database both create Optuna's schema and stamp its
        # version; the loser hits a unique constraint. The schema exists now: open it again.
        time.sleep(0.5)
        storage = connect()
    if storage.engine.dialect.name == "sqlite":
        _use_wal(storage, new_file)
    return storage


class RetryAsNew(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a stale trial, without the dead attempt's failure reason and worker.

    The retry copies the trial's user attrs; a retry that then completes would still say why
    the first attempt failed, and who ran it. It keeps the values reported so far (the pruner
    sees the whole curve) and the system attrs (the rungs passed, the first trial's number,
    which names its checkpoint).
    """

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        kept = {k: v for k, v in trial.user_attrs.items() if k not in (FAIL_REASON, WORKER_ATTR)}
        retried = copy.copy(trial)
        retried.user_attrs = kept
        super().__call__(study, retried)


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


def _sqlite_pragmas(new_file: bool) -> Callable[[Any, Any], None]:
    def on_connect(connection: Any, record: Any) -> None:
        cursor = connection.cursor()
        if new_file:
            cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL is safe from corruption in WAL mode only; a rollback journal keeps FULL.
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return on_connect


def _use_wal(storage: RDBStorage, new_file: bool) -> None:
    # WAL lets readers run beside the one writer, and synchronous=NORMAL syncs once per
    # checkpoint instead of per commit: together they cut per-trial storage time by a third.
    # A crash can lose the last commits, never corrupt the file. Files this project created
    # are in WAL for good; another's file is left in its own mode.
    if ":memory:" in storage.url or storage.url.rstrip("/") == "sqlite:":
        return
    event.listen(storage.engine, "connect", _sqlite_pragmas(new_file))
    storage.engine.dispose()


EXAMPLE_URLS = "sqlite:///studies/NAME.db or postgresql://USER@HOST/DB"
# SQLAlchemy prefixes driver errors with their class, e.g. "(sqlite3.DatabaseError) ".
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_DRIVER_PREFIX = re.compile(r"^\([\w.]+\)\s*")
_MADE_BY = re.compile(r"set up by optuna ([\w.+-]+)\)")


class StorageError(InputError):
    """A storage that cannot be opened as asked (bad URL, missing or unusable file, no server)."""


def sqlite_path(url: str) -> Path | None:
    """The file of a file-backed SQLite URL, or None (a server, or SQLite in memory)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def _missing(shown: str, path: Path) -> str:
    """Why a SQLite file to read is missing, and what its folder holds instead."""
    names = sorted(p.stem for p in path.parent.glob("*.db")) if path.parent.is_dir() else []
    first = f"no study storage at {shown!r} (the file does not exist)"
    if not names:
        return (f"{first}; start a search first (python -m search.run) or name another with "
                "--study or --storage")
    held = f"{path.parent}/ holds: {', '.join(names)}"
    guess = nearest(path.stem, names)
    if guess:
        return f"{first}; did you mean --study {guess}? ({held})"
    return f"{first}; {held}. Name one with --study, or start a search first (python -m search.run)"


def _check_file(url: str, path: Path, must_exist: bool) -> None:
    shown = mask_url(url)
    if path.is_dir():
        raise StorageError(f"storage {shown!r} is a folder, not a database file")
    if not path.exists():
        if must_exist:
            raise StorageError(_missing(shown, path))
        return
    if not os.access(path, os.R_OK):
        raise StorageError(f"storage file {str(path)!r} is not readable")


def check_writable(url: str) -> None:
    """Refuse early (before data loads) a SQLite location a search could not write.

    A search writes the file and, beside it, its journal and lock files; missing folders on the
    way are created later, so the nearest existing one must be a writable folder.
    """
    path = sqlite_path(url)
    if path is None:
        return
    if path.exists() and not path.is_dir() and not os.access(path, os.W_OK):
        raise StorageError(f"storage file {str(path)!r} is read-only; make it writable or pass "
                           "--storage with a writable location")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise StorageError(f"cannot keep studies under {str(folder)!r}: it is a file, not a folder")
    # os.access asks the kernel, so a read-only mount is caught even when running as root.
    if not os.access(folder, os.W_OK):
        raise StorageError(f"cannot write studies to folder {str(folder)!r}: it is read-only; "
                           "make it writable or pass --storage with a writable location")


def storage_exists(url: str) -> bool:
    """False only for a SQLite file not yet created (a server storage is assumed to exist)."""
    path = sqlite_path(url)
    return path is None or path.exists()


def create_user_storage(url: str) -> RDBStorage:
    """Open ``url`` for a new study, creating a SQLite file's missing folders."""
    path = sqlite_path(url)
    new_file = path is not None and not path.exists()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    return open_user_storage(url, must_exist=False, new_file=new_file)


def _reason(error: Exception) -> str:
    return _DRIVER_PREFIX.sub("", first_line(error))


def _explain(url: str, error: Exception) -> str:
    """One line for a storage that failed to open; Optuna's schema advice made concrete."""
    shown, reason = mask_url(url), _reason(error)
    if "optuna storage upgrade" in reason:
        # Optuna's text says "$STORAGE_URL"; the user needs the real command.
        made_by = _MADE_BY.search(reason)
        older = f"Optuna {made_by.group(1)}" if made_by else "an older Optuna"
        return (f"storage {shown!r} has the table schema of {older}; this is Optuna "
                f"{optuna.__version__}. Back the database up, then run: optuna storage upgrade "
                f"--storage {shown}")
    if "file is not a database" in reason:
        return (f"storage {shown!r} is not a readable SQLite database ({reason}); move it aside "
                "or name another with --study or --storage")
    if "Could not parse SQLAlchemy URL" in reason or "Can't load plugin" in reason:
        # Heroku and others write postgres://, which SQLAlchemy does not read.
        hint = " (SQLAlchemy spells it postgresql://)" if url.startswith("postgres:") else ""
        return f"storage URL {shown!r} is not a database URL{hint}; expected e.g. {EXAMPLE_URLS}"
    if isinstance(error, ImportError):
        return f"storage {shown!r} needs a database driver that is not installed ({reason})"
    if isinstance(error, OperationalError) and sqlite_path(url) is None:
        return f"cannot reach storage {shown!r}: {reason}; is the server up and the URL right?"
    return f"cannot open storage {shown!r}: {reason}"


def open_user_storage(url: str, *, must_exist: bool, new_file: bool = False) -> RDBStorage:
    """Open ``url``; ``must_exist`` refuses to create a missing SQLite file (readers do).

    Nothing is written before every check has passed: an in-memory or a foreign database is
    refused before Optuna would create its tables in it.
    """
    check_location(url)
    path = sqlite_path(url)
    if path is not None:
        _check_file(url, path, must_exist)
    try:
        _refuse_foreign_tables(url, path)
        return open_storage(url, new_file=new_file)
    except (SQLAlchemyError, ValueError, RuntimeError, ImportError) as error:
        raise StorageError(_explain(url, error)) from None


# Tables Optuna creates in every storage it sets up; a database holding tables but none of
# these belongs to something else.
_OPTUNA_TABLES = {"studies", "trials", "version_info"}


def _refuse_foreign_tables(url: str, path: Path | None) -> None:
    tables = _sqlite_tables(path) if path is not None else _server_tables(url)
    if not tables or tables >= _OPTUNA_TABLES:
        return
    shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
    raise StorageError(f"storage {mask_url(url)!r} is not an Optuna storage: it holds other "
                       f"tables ({shown}); cnn-search does not add its tables to a database it "
                       "did not set up. Name a new file or an empty database with --storage")


def _sqlite_tables(path: Path) -> set[str]:
    if not path.is_file() or path.stat().st_size == 0:
        return set()
    # immutable: read the file as it is, creating no journal or -shm file beside it.
    uri = f"file:{path.resolve()}?mode=ro&immutable=1"
    try:
        with closing(sqlite3.connect(uri, uri=True)) as db:
            rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    except sqlite3.DatabaseError:
        return set()  # not a database: opening it says so in its own words
    return {name for (name,) in rows if not name.startswith("sqlite_")}


def _server_tables(url: str) -> set[str]:
    parsed = _parse(url)
    if parsed is None or parsed.get_backend_name() not in ("postgresql", "mysql", "mariadb"):
        return set()  # a bad URL or another backend: RDBStorage reports it
    timeouts = _connect_timeout(parsed)
    if parsed.get_backend_name() in ("mysql", "mariadb") and parsed.get_driver_name() == "pymysql":
        # PyMySQL's connect_timeout covers the TCP connect only (see _probe_mysql).
        timeouts = {**timeouts, "read_timeout": CONNECT_TIMEOUT_S}
    engine = create_engine(parsed, connect_args=timeouts)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def check_location(url: str) -> None:
    """Refuse a storage no study can live in: in memory, or a path no file can have."""
    if url.startswith("sqlite") and sqlite_path(url) is None:
        raise StorageError(f"storage {mask_url(url)!r} is in memory: every trial would be lost "
                           "when the run ends, and other workers could not see it; name a file "
                           "(sqlite:///studies/NAME.db)")
    path = sqlite_path(url)
    if path is not None:
        check_path(path, "storage file")
