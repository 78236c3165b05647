"""Opening the storage a user named, with one line that says what is wrong and what to do.

Every CLI opens its storage here, so a typo, a missing file, a corrupt one, an old schema or a
server that does not answer reads the same everywhere, and never as a traceback.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import optuna
from optuna.storages import RDBStorage
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from search.hints import first_line, nearest
from search.study import mask_url, open_storage

EXAMPLE_URLS = "sqlite:///studies/NAME.db or postgresql://USER@HOST/DB"
# SQLAlchemy prefixes driver errors with their class, e.g. "(sqlite3.DatabaseError) ".
_DRIVER_PREFIX = re.compile(r"^\([\w.]+\)\s*")
_MADE_BY = re.compile(r"set up by optuna ([\w.+-]+)\)")


class StorageError(ValueError):
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
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    return open_user_storage(url, must_exist=False)


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


def open_user_storage(url: str, *, must_exist: bool) -> RDBStorage:
    """Open ``url``; ``must_exist`` refuses to create a missing SQLite file (readers do)."""
    path = sqlite_path(url)
    if path is not None:
        _check_file(url, path, must_exist)
    try:
        return open_storage(url)
    except (SQLAlchemyError, ValueError, RuntimeError, ImportError) as error:
        raise StorageError(_explain(url, error)) from None
