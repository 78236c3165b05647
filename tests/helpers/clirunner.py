"""Run a CLI as a real process, and tell whether it changed any file.

``python -m search.run`` spends 2-3 s importing torch before it reads its first flag, which a
corpus of fifty bad inputs cannot afford. ``run_forked`` forks each case from a multiprocessing
fork server that has imported the CLIs once: still a process of its own, with its own stdout
and stderr files, exit code, signal handlers, warnings and uncaught-exception traceback, run
through ``runpy`` exactly as ``python -m`` runs it after its imports. ``run_process`` is the
plain ``python -m`` for the cases that must prove the whole thing, imports included.

This module imports no pytest: the fork server preloads it.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import runpy
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

CLI_MODULES = ("search.run", "search.report", "search.retrain", "search.predict",
               "search.dashboard")
LIBRARY_MODULES = ("search.training.session", "search.training.workers",
                   "search.results.reporting", "search.results.classify", "search.data.images")


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str
    seconds: float  # wall time of the process


def _child(module: str, argv: list[str], cwd: str, out: str, err: str) -> None:
    os.chdir(cwd)
    for fd, path in ((1, out), (2, err)):
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(handle, fd)
        os.close(handle)
    sys.argv = [module, *argv]
    # As under `python -m`, the module runs as __main__ and is not also imported by its name.
    sys.modules.pop(module, None)
    # SystemExit(code) becomes the exit code; any other exception is printed with its traceback
    # on our stderr by multiprocessing, just as the interpreter would print it.
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def run_forked(module: str, argv: list[str], cwd: Path, logs: Path, timeout: float = 60) -> Outcome:
    """``python -m module argv`` in ``cwd``, forked from a server that imported the CLIs."""
    context = multiprocessing.get_context("forkserver")
    # Only effective before the server starts; search.training.workers' own preload is a subset.
    # The commands import their work lazily (--help loads no torch): preload that work too.
    context.set_forkserver_preload([*CLI_MODULES, *LIBRARY_MODULES, __name__])
    logs.mkdir(parents=True, exist_ok=True)
    out, err = logs / "stdout", logs / "stderr"
    process = context.Process(target=_child, args=(module, argv, str(cwd), str(out), str(err)))
    started = time.perf_counter()
    process.start()
    process.join(timeout)
    seconds = time.perf_counter() - started
    if process.exitcode is None:
        process.kill()
        process.join()
        raise TimeoutError(f"python -m {module} {' '.join(argv)} ran past {timeout} s")
    return Outcome(process.exitcode, out.read_text(), err.read_text(), seconds)


def run_process(module: str, argv: list[str], cwd: Path, prefix: tuple[str, ...] = (),
                timeout: float = 120) -> Outcome:
    """A plain ``python -m module argv`` (after ``prefix``, e.g. an unshare command)."""
    started = time.perf_counter()
    result = subprocess.run([*prefix, sys.executable, "-m", module, *argv], cwd=cwd, text=True,
                            capture_output=True, timeout=timeout)
    return Outcome(result.returncode, result.stdout, result.stderr,
                   time.perf_counter() - started)


def _database_rows(path: Path) -> str | None:
    """A SQLite file's content as SQL, and its journal mode (a command that only reads must not
    switch someone's file to WAL for good), or None if it is not a readable database."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
            mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
            return f"journal_mode={mode}\n" + "\n".join(connection.iterdump())
    except sqlite3.Error:
        return None


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with a digest of its content; a database by its rows.

    SQLite's -wal and -shm files come and go as a database is opened; the rows are what count.
    """
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.name.endswith(("-wal", "-shm")):
            continue
        rows = _database_rows(path) if path.suffix == ".db" else None
        content = rows.encode() if rows is not None else path.read_bytes()
        files[str(path.relative_to(root))] = hashlib.sha256(content).hexdigest()
    return files
