"""The trackers of one process, by name, each logging from a thread of its own.

The process that runs a trial logs it, once it has ended: Optuna calls its callbacks in that
process, after the trial's state is stored. Each trial runs in exactly one process, so with
``--jobs N`` and on many machines every finished trial is logged exactly once; a retry is a new
trial, logged under its own number.

A tracker is optional: one that cannot start or fails later (a server down, a folder it may not
write, a broken install) is one warning line, and the run goes on without it. Each tracker runs
in its own thread so that neither a slow server nor ``import mlflow`` (about 1 s) holds up
training (docs/benchmarks/tracking.md).
"""

from __future__ import annotations

import importlib
import importlib.util
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import optuna
from tqdm import tqdm

from search.errors import UsageError
from search.hints import first_line
from search.schema import TRACKING_ID_ATTR
from search.study.spec import TRACKERS
from search.tracking.record import TrialRecord


@dataclass(frozen=True)
class Kind:
    """A tracker by name: how messages call it, its module, and what to install for it."""

    title: str
    module: str  # imported in the tracker's thread; defines open_tracker(study) -> Tracker
    package: str  # the top-level package the module needs
    extra: str  # pip install 'cnn-search[EXTRA]'


KINDS = {
    "mlflow": Kind("MLflow", "search.tracking.mlflow_tracker", "mlflow", "mlflow"),
    "tensorboard": Kind("TensorBoard", "search.tracking.tensorboard_tracker", "tensorboard",
                        "tensorboard"),
}
assert tuple(KINDS) == TRACKERS
# How long a run's end waits for its trackers to log what they were given, before it says what
# was not logged and exits; a tracker that works takes milliseconds a trial.
CLOSE_WAIT_S = 60.0
STOPPED_WAIT_S = 5.0  # the same, after Ctrl-C or SIGTERM
# A tracker's reason for failing, cut to this many characters: the warning stays one line.
MAX_REASON = 300


class Tracker(Protocol):
    """What a tracker module's ``open_tracker(study, located)`` returns, connected and ready;
    it calls ``located(where)`` with the URI or folder it logs to before it connects."""

    def log_trial(self, trial: TrialRecord) -> None: ...

    def finish(self, done: bool) -> None:
        """This process is done with the study (``done``: the study reached its target)."""


class TrackerMissing(UsageError):
    """``--track NAME`` without NAME's package installed."""


def installed(package: str) -> bool:
    # find_spec, not import: import mlflow takes a second, and this answers before any work.
    return importlib.util.find_spec(package) is not None


def check_installed(names: Sequence[str], flag: str = "--track") -> None:
    """Refuse, before any work, a tracker whose package is not installed, naming the extra."""
    for name in names:
        kind = KINDS[name]
        if not installed(kind.package):
            raise TrackerMissing(f"{flag} {name} needs {kind.title}, which is not installed: "
                                 f"pip install 'cnn-search[{kind.extra}]'")


def warn(line: str) -> None:
    """One line on stderr that leaves a progress bar intact."""
    tqdm.write(f"warning: {line}", file=sys.stderr)


def _at(where: str) -> str:
    return f" ({where})" if where else ""


def _reason(error: Exception) -> str:
    reason = first_line(error)
    return reason if len(reason) <= MAX_REASON else reason[:MAX_REASON - 3] + "..."


_STOP = object()


class TrackerThread(threading.Thread):
    """One tracker, opened and fed in a daemon thread; its first error turns it off."""

    def __init__(self, name: str, study: optuna.Study) -> None:
        super().__init__(name=f"tracker-{name}", daemon=True)
        self.kind = KINDS[name]
        self.study = study
        self.where = ""
        self.off = False
        # TrialRecord to log, a bool (finish: whether the study reached its target), or _STOP.
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def log_trial(self, record: TrialRecord) -> None:
        if not self.off:
            self._queue.put(record)

    def finish(self, done: bool) -> None:
        self._queue.put(done)
        self._queue.put(_STOP)

    def run(self) -> None:
        tracker = self._open()
        while (item := self._queue.get()) is not _STOP:
            if tracker is None or self.off:
                continue  # off: what comes is dropped, so finishing is not kept waiting
            try:
                if isinstance(item, TrialRecord):
                    tracker.log_trial(item)
                else:
                    tracker.finish(item)
            except Exception as error:  # any failure of an optional tracker: warn, go on
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
        warn(f"{self.kind.title} tracking{_at(self.where)} is off for the rest of this run: "
             f"{_reason(error)}. The search goes on; the study keeps every trial")


class Tracking:
    """The trackers of one process, and the Optuna callback that feeds them finished trials."""

    def __init__(self, threads: list[TrackerThread]) -> None:
        self.threads = threads

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        record = TrialRecord.from_trial(trial)
        for thread in self.threads:
            thread.log_trial(record)

    @property
    def callbacks(self) -> list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]]:
        return [self] if self.threads else []

    def close(self, done: bool, wait_s: float = CLOSE_WAIT_S) -> None:
        """Log what is queued and let each tracker finish; wait at most ``wait_s`` in all.

        ``done``: the study has reached its target (MLflow then marks the study's run finished).
        """
        for thread in self.threads:
            thread.finish(done)
        deadline = time.monotonic() + wait_s
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                warn(f"{thread.kind.title} was still logging after {wait_s:.0f} s; the trials it "
                     "had not logged by then are not in it. The study keeps every trial")


def open_tracking(names: Sequence[str], study: optuna.Study) -> Tracking:
    """Start a thread for each named tracker; they connect while the search starts."""
    threads = [TrackerThread(name, study) for name in names]
    for thread in threads:
        thread.start()
    return Tracking(threads)


# What a report attaches to the study's MLflow run, under the report folder.
REPORT_FILES = ("best_config.json", "metrics.json", "model.pt", "model.pt2")
REPORT_FOLDERS = ("plots",)


def report_to_mlflow(study: optuna.Study, asked: bool) -> bool:
    """Whether a report goes to MLflow: asked (report --track mlflow), or the study was tracked
    with it (it then holds the tracking id that finds its run)."""
    return asked or TRACKING_ID_ATTR in study.user_attrs


class _Where:
    """Remembers where a tracker said it logs to (the ``located`` of ``open_tracker``)."""

    def __init__(self) -> None:
        self.text = ""

    def __call__(self, where: str) -> None:
        self.text = where


def log_report(study: optuna.Study, folder: Path, numbers: dict[str, float]) -> str | None:
    """Attach a report folder's files, and its test accuracy, to the study's MLflow run.

    Returns where it went, or None after one warning line: the report itself is written.
    """
    kind, where = KINDS["mlflow"], _Where()
    if not installed(kind.package):
        warn(f"study {study.study_name!r} was tracked with MLflow, which is not installed here: "
             f"the report is not attached to its run (pip install 'cnn-search[{kind.extra}]')")
        return None
    try:
        from search.tracking.mlflow_tracker import connect

        tracker = connect(study, where)
        files = [folder / name for name in REPORT_FILES if (folder / name).is_file()]
        files += sorted(p for sub in REPORT_FOLDERS for p in (folder / sub).rglob("*") if p.is_file())
        tracker.log_files(files, folder)
        tracker.log_numbers(numbers)
    except Exception as error:  # an optional tracker: the report stands without it
        warn(f"the report was not attached to MLflow{_at(where.text)}: {_reason(error)}")
        return None
    return f"MLflow run {tracker.parent_id} ({where.text})"
