"""Trial checkpoints: a running trial keeps the state of its last finished epoch on disk, so a
retry after kill -9, a preemption or Ctrl-C continues at the next epoch instead of epoch 0.

One file per running trial, ``<dir>/trial-<N>.pt`` where N is the trial's first number (a retry
keeps it in its ``failed_trial`` system attr): model, optimizer, the batch-order generator, the
global RNG, the step of the schedule and the epochs so far. The state is copied at every epoch's
end (about a millisecond); the copy goes to disk in a background thread, atomically (a
temporary file, then a rename), once at least ``SAVE_EVERY_SECONDS`` have passed since the last
write, and always when the trial is interrupted (Ctrl-C, SIGTERM), so an interrupt loses no
finished epoch and kill -9 loses at most one epoch or ``SAVE_EVERY_SECONDS`` of training,
whichever is more. Read with ``weights_only=True``. A file that is missing, damaged, foreign or
of another configuration restarts the trial from epoch 0 with a one-line warning; the study
goes on.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from model_space import TrialConfig
from search.hints import first_line
from search.optuna_private import system_attrs
from search.study.spec import SAVE_EVERY_SECONDS
from search.study.storage import sqlite_path
from search.training.loop import EpochResult, TrainState

FORMAT = "cnn-search-trial-checkpoint/1"
PREFIX = "trial-"


def origin(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """The number of the trial's first attempt: retries share it, and so share one checkpoint."""
    first = system_attrs(trial).get("failed_trial")
    return first if isinstance(first, int) else trial.number


def default_dir(study: str, url: str, override: str | None = None) -> Path:
    """``--checkpoint-dir DIR/<study>``, else ``checkpoints/<study>/`` beside a SQLite file, else
    ``studies/checkpoints/<study>/`` (workers on several machines need a shared --checkpoint-dir)."""
    if override:
        return Path(override).expanduser() / study
    path = sqlite_path(url)
    folder = path.parent if path is not None else Path("studies")
    return folder / "checkpoints" / study


@dataclass
class TrialCheckpoints:
    """The checkpoints of one study's trials, in ``directory``."""

    directory: Path
    save_every: float = SAVE_EVERY_SECONDS

    def path(self, number: int) -> Path:
        return self.directory / f"{PREFIX}{number}.pt"

    def writer(self, number: int) -> CheckpointWriter:
        return CheckpointWriter(self.path(number), self.save_every)

    def load(self, number: int, config: TrialConfig) -> TrainState | None:
        """The saved state of trial ``number``, or None (none saved, or unusable: warned)."""
        path = self.path(number)
        if not path.exists():
            return None
        try:
            return _read(path, config)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, pickle.UnpicklingError) as error:
            reason = first_line(error)[:160]
            print(f"warning: trial checkpoint {str(path)!r} is unusable ({reason}); the trial "
                  "starts again from epoch 0", file=sys.stderr)
            path.unlink(missing_ok=True)
            return None

    def clean(self, study: optuna.Study) -> int:
        """Delete checkpoints no running or queued trial will resume; returns how many."""
        if not self.directory.is_dir():
            return 0
        alive = {origin(t) for t in study.get_trials(
            deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))}
        removed = 0
        for path in self.directory.glob(f"{PREFIX}*.pt"):
            number = path.stem.removeprefix(PREFIX)
            if number.isdigit() and int(number) not in alive:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


class CheckpointWriter:
    """Keeps a trial's last finished epoch: copied each epoch, written to disk at most every
    ``save_every`` seconds (one write in flight at a time, in a thread) and at an interrupt."""

    def __init__(self, path: Path, save_every: float = SAVE_EVERY_SECONDS) -> None:
        self.path = path
        self.save_every = save_every
        self._thread: threading.Thread | None = None
        self._pending: dict[str, Any] | None = None
        # The first write waits save_every seconds too: a trial shorter than that writes nothing.
        self._last_write = time.monotonic()

    def save(self, state: TrainState, config: TrialConfig) -> None:
        """Copy the state now (training goes on changing it); write it if it is time to."""
        self._pending = _payload(state, config)
        if time.monotonic() - self._last_write >= self.save_every:
            self._start_write()

    def flush(self) -> None:
        """Write what is not on disk yet and wait for it (Ctrl-C, SIGTERM: no finished epoch is
        lost)."""
        self._start_write()
        self._join()

    def discard(self) -> None:
        """The trial ended for its own reasons: nothing will resume it."""
        self._pending = None
        self._join()
        self.path.unlink(missing_ok=True)

    def _start_write(self) -> None:
        self._join()
        payload, self._pending = self._pending, None
        if payload is None:
            return
        self._last_write = time.monotonic()
        self._thread = threading.Thread(target=self._write, args=(payload,), daemon=True,
                                        name=f"checkpoint-{self.path.stem}")
        self._thread.start()

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _write(self, payload: dict[str, Any]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            buffer = io.BytesIO()
            torch.save(payload, buffer)
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            temporary.write_bytes(buffer.getvalue())
            os.replace(temporary, self.path)
        except OSError as error:  # a full disk: the trial goes on, only without a checkpoint
            warnings.warn(f"trial checkpoint {str(self.path)!r} not written: {error}", stacklevel=1)


def _payload(state: TrainState, config: TrialConfig) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "config": config.to_dict(),
        "model": _copy(state.model),
        "optimizer": _copy(state.optimizer),
        "generator": state.generator.clone(),
        "torch_rng": state.torch_rng.clone(),
        "step": state.step,
        "epochs": [dataclasses.asdict(e) for e in state.epochs],
    }


def _copy(value: Any) -> Any:
    """A CPU copy of nested dicts and lists of tensors; other leaves (numbers, strings, None)
    are immutable and shared. A quarter of copy.deepcopy's time on an optimizer's state, which
    counts on trials whose epochs last milliseconds."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_copy(v) for v in value)
    return value


def _read(path: Path, config: TrialConfig) -> TrainState:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ValueError(f"not a trial checkpoint (no {FORMAT!r} marker)")
    if raw.get("config") != config.to_dict():
        raise ValueError("it was saved by a trial of another configuration")
    epochs = [EpochResult(**e) for e in raw["epochs"]]
    if not epochs or raw["step"] < 1 or not isinstance(raw["generator"], torch.Tensor):
        raise ValueError("it holds no finished epoch")
    return TrainState(model=raw["model"], optimizer=raw["optimizer"], generator=raw["generator"],
                      torch_rng=raw["torch_rng"], step=int(raw["step"]), epochs=epochs)
