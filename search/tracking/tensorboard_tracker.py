"""TensorBoard: a folder per finished trial, ``runs/<study>/trial-N/``: its curves, and its row in
the HParams table.

Written with tensorboard's own event writer and HParams protos, so neither TensorFlow nor torch is
needed. Not torch's ``SummaryWriter.add_hparams``: each call of it writes a new subfolder, named
by the time, holding the hparams, a copy of the metrics and an experiment summary that lists only
that call's parameters; TensorBoard takes the first experiment summary it finds, so parameters
that only some trials have (SGD's momentum) drop out of the table. Here a trial's folder is one
HParams session, its start and end written beside its scalars, and no experiment summary is
written at all: TensorBoard then makes the table's columns from every session's parameters and
reads each metric as the last value of that scalar in the session's folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from search.schema import LATENCY_MS, MACS, N_PARAMS, SECONDS_PER_EPOCH
from search.tracking.record import TrialRecord

# Under the current folder, as torch's SummaryWriter's default; `tensorboard --logdir runs`.
RUNS_DIR = "runs"
# An HParams session's status by trial state. Pruned has no status of its own; "unknown" keeps
# it out of the table's "success" filter, and the state column says "pruned".
STATUS = {"complete": api_pb2.STATUS_SUCCESS, "failed": api_pb2.STATUS_FAILURE,
          "pruned": api_pb2.STATUS_UNKNOWN}
# Trial user attrs written as scalars at step 0, so the HParams table shows them as metrics.
SIZE_METRICS = (N_PARAMS, MACS, LATENCY_MS, SECONDS_PER_EPOCH)


class TensorBoardTracker:
    """Writes each finished trial into a folder of its own under ``root`` (runs/<study>/)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def log_trial(self, trial: TrialRecord) -> None:
        writer = EventFileWriter(str(claim_folder(self.root, f"trial-{trial.number}")))
        try:
            for event in trial_events(trial):
                writer.add_event(event)
        finally:
            writer.close()

    def finish(self, done: bool) -> None:
        pass  # each trial's file is closed as it is written


def claim_folder(root: Path, name: str) -> Path:
    """``root/name``, or ``name-2``, ``name-3``... where a folder of that name exists already:
    a study deleted and made again under the same name numbers its trials from 0 again, and
    two sessions in one folder would read as one trial."""
    for suffix in ("", *(f"-{i}" for i in range(2, 1000))):
        folder = root / f"{name}{suffix}"
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise FileExistsError(f"{root / name}: 999 folders of that name exist already")


def trial_events(trial: TrialRecord) -> list[Event]:
    """The session's start, each epoch's scalars, the size metrics, the session's end."""
    start = trial.epoch_time(0)
    events = [_plugin_event(metadata.SESSION_START_INFO_TAG, start, plugin_data_pb2.HParamsPluginData(
        session_start_info=session_start(trial, start)))]
    sizes = [Summary.Value(tag=name, simple_value=float(trial.attrs[name])) for name in SIZE_METRICS
             if isinstance(trial.attrs.get(name), int | float)]
    if sizes:  # a trial that failed while building its model has none
        events.append(Event(wall_time=start, step=0, summary=Summary(value=sizes)))
    for step in sorted({*trial.val_accuracy, *trial.train_loss}):
        values = [Summary.Value(tag=name, simple_value=curve[step]) for name, curve in
                  (("val_accuracy", trial.val_accuracy), ("train_loss", trial.train_loss))
                  if step in curve]
        events.append(Event(wall_time=trial.epoch_time(step), step=step,
                            summary=Summary(value=values)))
    end = plugin_data_pb2.SessionEndInfo(status=STATUS.get(trial.state, api_pb2.STATUS_UNKNOWN),
                                         end_time_secs=trial.epoch_time(trial.epochs))
    events.append(_plugin_event(metadata.SESSION_END_INFO_TAG, end.end_time_secs,
                                plugin_data_pb2.HParamsPluginData(session_end_info=end)))
    return events


def session_start(trial: TrialRecord, start: float) -> plugin_data_pb2.SessionStartInfo:
    """The trial's parameters, and its state, as HParams values (numbers, text, booleans)."""
    # No group name: TensorBoard then groups by folder, one row per trial.
    info = plugin_data_pb2.SessionStartInfo(start_time_secs=start)
    for name, value in {**trial.params, "state": trial.state}.items():
        _set_value(info.hparams[name], value)
    return info


def _set_value(slot: Any, value: Any) -> None:
    if isinstance(value, bool):  # before int: True is an int too
        slot.bool_value = value
    elif isinstance(value, int | float):
        slot.number_value = value
    else:
        slot.string_value = str(value)


def _plugin_event(tag: str, wall_time: float, data: plugin_data_pb2.HParamsPluginData) -> Event:
    value = Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(data),
                          tensor=metadata.NULL_TENSOR)
    return Event(wall_time=wall_time, summary=Summary(value=[value]))


def open_tracker(study: optuna.Study, located: Callable[[str], None]) -> TensorBoardTracker:
    """The study's folder under runs/, made now, so a folder it cannot write is known at once."""
    root = Path.cwd() / RUNS_DIR / study.study_name
    located(str(root))
    root.mkdir(parents=True, exist_ok=True)
    if not os.access(root, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write to {root}")
    return TensorBoardTracker(root)
