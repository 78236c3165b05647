"""The tracker host: the process that logs a search process's finished trials to its trackers.

``python -m search.tracking.host NAME...`` is started by search.tracking.trackers.start_tracking
as the search starts, and imports each tracker's library at once. Then it reads JSON lines on
its stdin: the study (name and storage URL), one line per finished trial, ``{"finish": done}``;
then stdin closes. Until the study comes it writes nothing: stdin closed first (a run refused
for bad input) ends it with nothing written. Each tracker runs in a thread of
its own, so a slow MLflow server does not hold up TensorBoard. What it has to say (a tracker
that failed) is one line each on its stdout, which the search prints.

Ctrl-C reaches every process of the terminal's group: the host ignores it and ends when the
search closes its stdin, having logged what it was given.
"""

from __future__ import annotations

import importlib
import json
import os
import queue
import signal
import sys
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any, TextIO

import optuna

from search.study.storage import open_storage
from search.tracking.record import TrialRecord
from search.tracking.trackers import KINDS, Tracker, at, reason

_STOP = object()


class TrackerThread(threading.Thread):
    """One tracker, opened and fed in a thread; its first error turns it off."""

    def __init__(self, name: str, say: TextIO) -> None:
        super().__init__(name=f"tracker-{name}")
        self.kind = KINDS[name]
        self.say = say
        self.where = ""
        self.off = False
        # First the study (or _STOP: there is none), then TrialRecords to log, a bool (finish:
        # whether the study reached its target), and _STOP.
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def run(self) -> None:
        module = self._import()
        study = self.queue.get()
        if study is _STOP:
            return
        tracker = self._open(module, study) if module is not None else None
        while (item := self.queue.get()) is not _STOP:
            if tracker is None or self.off:
                continue  # off: what comes is dropped
            try:
                if isinstance(item, TrialRecord):
                    tracker.log_trial(item)
                else:
                    tracker.finish(item)
            except Exception as error:  # any failure of an optional tracker: say so, go on
                self._fail(error)

    def _import(self) -> ModuleType | None:
        try:
            return importlib.import_module(self.kind.module)
        except Exception as error:  # a broken install: the same one line as any failure
            self._fail(error)
            return None

    def _open(self, module: ModuleType, study: optuna.Study) -> Tracker | None:
        try:
            return module.open_tracker(study, self._located)
        except Exception as error:  # a store it cannot reach, a folder it cannot write
            self._fail(error)
            return None

    def _located(self, where: str) -> None:
        self.where = where  # known before connecting, so a failure to connect can say where

    def _fail(self, error: Exception) -> None:
        self.off = True
        print(f"{self.kind.title} tracking{at(self.where)} is off for the rest of this run: "
              f"{reason(error)}. The search goes on; the study keeps every trial",
              file=self.say, flush=True)


def serve(names: list[str], lines: TextIO, say: TextIO) -> None:
    """Start the trackers; open the study named on the first line; feed them the later lines."""
    threads = [TrackerThread(name, say) for name in names]
    for thread in threads:
        thread.start()
    try:
        for item in _items(lines):
            for thread in threads:
                thread.queue.put(item)
    finally:
        for thread in threads:
            thread.queue.put(_STOP)
        for thread in threads:
            thread.join()


def _items(lines: TextIO) -> Iterator[Any]:
    """The study, then each trial and the finish; nothing when no study comes first."""
    header = json.loads(lines.readline() or "{}")
    if "study" not in header:
        return
    yield optuna.load_study(study_name=header["study"], storage=open_storage(header["storage"]))
    for line in lines:
        message = json.loads(line)
        yield message["finish"] if "finish" in message else TrialRecord.from_json(message)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Normal CPU priority, on purpose. At nice 19 (and at SCHED_IDLE) the host cost a 100-trial
    # digits search as much wall time as at normal priority (+12% on a busy machine, +5-6% on an
    # idle one: docs/benchmarks/tracking.md), and on a machine kept busy by other work it was
    # starved: a 3-trial search ended with the store not yet opened, and the trials were lost
    # after the search's 60 s wait.
    # Our messages keep the real stdout; anything else printed here goes to stderr.
    say = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        serve(sys.argv[1:], sys.stdin, say)
    except Exception as error:  # the study could not be opened: no tracker can run
        print(f"the trackers are off for this run: {reason(error)}. The search goes on; the "
              "study keeps every trial", file=say, flush=True)


if __name__ == "__main__":
    main()
