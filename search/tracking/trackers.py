"""The experiment trackers by name, and how a search process hands them its finished trials.

The process that runs a trial logs it, once it has ended: Optuna calls its callbacks in that
process, after the trial's state is stored. Each trial runs in exactly one process, so with
``--jobs N`` and on many machines every finished trial is logged exactly once; a retry is a new
trial, logged under its own number.

A tracker is optional: one that cannot start or fails later (a server down, a folder it may not
write, a broken install) is one warning line, and the run goes on without it. The trackers run
in a process of their own (search.tracking.host), so that they never hold up training.
"""

from __future__ import annotations

import importlib.util
import json
import queue
import subprocess
import sys
import threading
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
    module: str  # imported in the tracker host; defines open_tracker(study, located) -> Tracker
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


def check_installed(names: Sequence[str]) -> None:
    """Refuse, before any work, a tracker whose package is not installed, naming the extra."""
    for name in names:
        kind = KINDS[name]
        if not installed(kind.package):
            raise TrackerMissing(f"--track {name} needs {kind.title}, which is not installed: "
                                 f"pip install 'cnn-search[{kind.extra}]'")


def warn(line: str) -> None:
    """One line on stderr that leaves a progress bar intact."""
    tqdm.write(f"warning: {line}", file=sys.stderr)


def at(where: str) -> str:
    return f" ({where})" if where else ""


def reason(error: Exception) -> str:
    """An error's first line, cut to MAX_REASON characters."""
    text = first_line(error)
    return text if len(text) <= MAX_REASON else text[:MAX_REASON - 3] + "..."


class Tracking:
    """The Optuna callback that hands each finished trial to this process's tracker host.

    The host (search.tracking.host) is a process of its own, fed JSON lines on its stdin by a
    thread here, so that neither ``import mlflow`` nor mlflow's work per trial (about 2 s and
    17-30 ms of CPU a trial) takes the GIL from training (docs/benchmarks/tracking.md). Its messages come
    back on its stdout, and are printed here, where the progress bar is.
    """

    def __init__(self, host: subprocess.Popen[str] | None) -> None:
        self.host = host
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=target, name=name, daemon=True) for target, name
                         in ((self._write, "tracking-writer"), (self._read, "tracking-reader"))]
        if host is not None:
            for thread in self._threads:
                thread.start()

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._lines.put(TrialRecord.from_trial(trial).to_json())

    @property
    def callbacks(self) -> list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]]:
        return [self] if self.host is not None else []

    def open(self, study: str, url: str) -> None:
        """Name the study the trials come from: the trackers connect and find its runs now."""
        self.send({"study": study, "storage": url})

    def send(self, message: dict[str, Any]) -> None:
        self._lines.put(json.dumps(message))

    def _write(self) -> None:
        assert self.host is not None and self.host.stdin is not None
        try:
            while (line := self._lines.get()) is not None:
                self.host.stdin.write(line + "\n")
                self.host.stdin.flush()
            self.host.stdin.close()
        except OSError:
            pass  # the host is gone: it said why, or close() will

    def _read(self) -> None:
        assert self.host is not None and self.host.stdout is not None
        for line in self.host.stdout:
            warn(line.rstrip("\n"))

    def close(self, done: bool, wait_s: float = CLOSE_WAIT_S) -> None:
        """Let the host log what it was given and finish; wait at most ``wait_s``.

        ``done``: the study has reached its target (MLflow then marks the study's run finished).
        """
        if self.host is None:
            return
        self.send({"finish": done})
        self._lines.put(None)
        try:
            self.host.wait(wait_s)
        except subprocess.TimeoutExpired:
            self.host.kill()
            self.host.wait()
            warn(f"the trackers were still logging after {wait_s:.0f} s; the trials they had not "
                 "logged by then are not in them. The study keeps every trial")
        for thread in self._threads:
            thread.join(1.0)


def start_tracking(names: Sequence[str]) -> Tracking:
    """Start the tracker host for ``names`` now: it imports its libraries (mlflow: 1 s) while
    this process loads torch and the data. It writes nothing until ``open`` names the study, so
    a run refused for bad input leaves nothing behind."""
    if not names:
        return Tracking(None)
    host = subprocess.Popen([sys.executable, "-m", "search.tracking.host", *names], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    return Tracking(host)


# What a report attaches to the study's MLflow run, under the report folder.
REPORT_FILES = ("best_config.json", "metrics.json", "model.pt", "model.pt2", "model.onnx")
REPORT_FOLDERS = ("plots",)


def report_to_mlflow(study: optuna.Study, asked: bool) -> bool:
    """Whether a report goes to MLflow: asked (report --track mlflow), or the study was tracked
    with it (it then holds the tracking id that finds its run)."""
    return asked or TRACKING_ID_ATTR in study.user_attrs


class Where:
    """Remembers where a tracker said it logs to (the ``located`` of ``open_tracker``)."""

    def __init__(self) -> None:
        self.text = ""

    def __call__(self, where: str) -> None:
        self.text = where


def log_report(study: optuna.Study, folder: Path, numbers: dict[str, float]) -> str | None:
    """Attach a report folder's files, and its test accuracy, to the study's MLflow run.

    Returns where it went, or None after one warning line: the report itself is written.
    """
    kind, where = KINDS["mlflow"], Where()
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
        warn(f"the report was not attached to MLflow{at(where.text)}: {reason(error)}")
        return None
    return f"MLflow run {tracker.parent_id} ({where.text})"
