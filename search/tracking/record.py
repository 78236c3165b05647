"""A finished trial as the trackers log it: read from Optuna's record of the trial, and nothing else.

Everything comes from the FrozenTrial that Optuna hands its callbacks once the trial's state is
stored, so a tracker logs what the study holds: a retry's curve includes the epochs its first
attempt trained, and a trial is logged with the state the study gives it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from search.optuna_private import system_attrs
from search.schema import TRAIN_LOSSES, VAL_CURVE

# Optuna's states, as the trackers name them.
STATES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}
# The attr Optuna's retry callback leaves on a retried trial: the number of its first attempt.
RETRY_OF = "failed_trial"


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial: its parameters, per-epoch curves, state and user attrs."""

    number: int
    state: str  # "complete", "pruned" or "failed" (STATES)
    params: dict[str, Any]
    # Epoch (1 first, Optuna's step) -> value; a failed trial may have none.
    val_accuracy: dict[int, float]
    train_loss: dict[int, float]
    started: datetime | None
    ended: datetime | None
    # The trial's user attrs (n_params, seconds_per_epoch, device, fail_reason, worker, ...).
    attrs: dict[str, Any] = field(default_factory=dict)
    retry_of: int | None = None  # the first attempt's number, when this trial is a retry

    @classmethod
    def from_trial(cls, trial: FrozenTrial) -> TrialRecord:
        losses = trial.user_attrs.get(TRAIN_LOSSES, [])
        first = system_attrs(trial).get(RETRY_OF)
        return cls(
            number=trial.number,
            state=STATES.get(trial.state, trial.state.name.lower()),
            params=dict(trial.params),
            val_accuracy=_val_curve(trial),
            train_loss={i + 1: float(v) for i, v in enumerate(losses)},
            started=trial.datetime_start,
            ended=trial.datetime_complete,
            attrs={k: v for k, v in trial.user_attrs.items() if k not in (TRAIN_LOSSES, VAL_CURVE)},
            retry_of=first if isinstance(first, int) else None,
        )

    def to_json(self) -> str:
        """One line for the tracker host (search.tracking.host); read back by from_json."""
        fields = dataclasses.asdict(self)
        fields.update(started=_iso(self.started), ended=_iso(self.ended))
        return json.dumps(fields)

    @classmethod
    def from_json(cls, fields: dict[str, Any]) -> TrialRecord:
        # JSON keys are text: the curves' steps come back as numbers.
        curves = {k: {int(step): v for step, v in fields[k].items()}
                  for k in ("val_accuracy", "train_loss")}
        moments = {k: None if fields[k] is None else datetime.fromisoformat(fields[k])
                   for k in ("started", "ended")}
        return cls(**{**fields, **curves, **moments})

    @property
    def epochs(self) -> int:
        return max([*self.val_accuracy, *self.train_loss], default=0)

    def epoch_time(self, step: int) -> float:
        """When epoch ``step`` ended, in seconds since 1970: the trial's span shared out evenly
        (Optuna keeps no time per epoch), so curves plotted against wall time read sensibly."""
        start, end = _seconds(self.started or self.ended), _seconds(self.ended or self.started)
        return start + (end - start) * step / max(self.epochs, 1)


def _val_curve(trial: FrozenTrial) -> dict[int, float]:
    """Epoch -> val accuracy: Optuna's intermediate values, or a multi-objective trial's curve
    (kept in a user attr: Trial.report serves one objective)."""
    curve = trial.user_attrs.get(VAL_CURVE)
    if isinstance(curve, list) and not trial.intermediate_values:
        return {i + 1: float(v) for i, v in enumerate(curve)}
    return {int(step): float(v) for step, v in sorted(trial.intermediate_values.items())}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _seconds(moment: datetime | None) -> float:
    return moment.timestamp() if moment is not None else time.time()
