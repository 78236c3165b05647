"""The tracker host: the process that logs a search process's finished trials to its trackers.

``python -m search.tracking.host`` is started by search.tracking.trackers.open_tracking and
reads JSON lines on its stdin: first the study (name, storage URL, trackers), then one line per
finished trial, then ``{"finish": done}``; then stdin closes. Each tracker runs in a thread of
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
from typing import Any, TextIO

import optuna

from search.study.storage import open_storage
from search.tracking.record import TrialRecord
from search.tracking.trackers import KINDS, Tracker, at, reason

_STOP = object()


class TrackerThread(threading.Thread):
    """One tracker, opened and fed in a thread; its first error turns it off."""

    def __init__(self, name: str, study: optuna.Study, say: TextIO) -> None:
        super().__init__(name=f"tracker-{name}")
        self.kind = KINDS[name]
        self.study = study
        self.say = say
        self.where = ""
        self.off = False
        # TrialRecord to log, a bool (finish: whether the study reached its target), or _STOP.
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def run(self) -> None:
        tracker = self._open()
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

    def _open(self) -> Tracker | None:
        try:
            module = importlib.import_module(self.kind.module)
            return module.open_tracker(self.study, self._located)
        except Exception as error:  # a broken install or a store it cannot reach: same line
            self._fail(error)
            return None

    def _located(self, where: str) -> None:
        self.where = where  # known before connecting, so a failure to connect can say where

    def _fail(self, error: Exception) -> None:
        self.off = True
        print(f"{self.kind.title} tracking{at(self.where)} is off for the rest of this run: "
              f"{reason(error)}. The search goes on; the study keeps every trial",
              file=self.say, flush=True)


def serve(lines: TextIO, say: TextIO) -> None:
    """Open the study named on the first line, and feed each later line to every tracker."""
    header = json.loads(lines.readline())
    study = optuna.load_study(study_name=header["study"], storage=open_storage(header["storage"]))
    threads = [TrackerThread(name, study, say) for name in header["trackers"]]
    for thread in threads:
        thread.start()
    for line in lines:
        message = json.loads(line)
        item = message["finish"] if "finish" in message else TrialRecord.from_json(message)
        for thread in threads:
            thread.queue.put(item)
    for thread in threads:
        thread.queue.put(_STOP)
    for thread in threads:
        thread.join()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Our messages keep the real stdout; anything else printed here goes to stderr.
    say = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        serve(sys.stdin, say)
    except Exception as error:  # the study could not be opened: no tracker can run
        print(f"the trackers are off for this run: {reason(error)}. The search goes on; the "
              "study keeps every trial", file=say, flush=True)


if __name__ == "__main__":
    main()
