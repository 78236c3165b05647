"""What the user sees: a progress bar over the study-wide target, and the final summary."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import optuna
from optuna.trial import TrialState
from tqdm import tqdm

from search.schema import FAIL_REASON, RESUMED_FROM_EPOCH
from search.study.counts import count_states, finished
from search.study.next_steps import dashboard_command, report_command
from search.study.storage import mask_url

# Stop a run whose trials keep failing: the space or the data is broken, not unlucky.
MAX_CONSECUTIVE_FAILURES = 10


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The most accurate complete trial (in a multi-objective study too), or None."""
    if len(study.directions) > 1:
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return max(complete, key=lambda t: t.values[0], default=None)
    try:
        return study.best_trial
    except ValueError:
        return None


@dataclass
class ProgressCallback:
    """Draws the study-wide progress bar and counts failures in a row.

    Stopping is not its job: search.study.gate decides, before each trial, whether the target is
    reached or the run has given up, so counting the study here again only serves the bar.
    """

    target: int
    show: bool = True
    consecutive_failures: int = 0
    last_failure: str = ""
    bar: tqdm | None = field(default=None, init=False)

    @property
    def gave_up(self) -> bool:
        return self.consecutive_failures >= MAX_CONSECUTIVE_FAILURES

    def start(self, done: int) -> None:
        if self.show:
            self.bar = tqdm(total=self.target, initial=done, unit="trial", file=sys.stderr,
                            dynamic_ncols=True, leave=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._track_failures(trial)
        if self.bar is None:
            return
        counts = count_states(study)
        best = best_trial(study)
        best_text = f"{best.values[0]:.4f}" if best is not None else "-"
        self.bar.n = min(finished(counts), self.target)
        self.bar.set_postfix_str(f"best {best_text} pruned {counts[TrialState.PRUNED]} "
                                 f"failed {counts[TrialState.FAIL]}", refresh=True)

    def _track_failures(self, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state != TrialState.FAIL:
            self.consecutive_failures = 0
            return
        self.consecutive_failures += 1
        self.last_failure = str(trial.user_attrs.get(FAIL_REASON, "see the log above"))


def format_params(params: dict[str, object]) -> str:
    parts = []
    for key, value in params.items():
        parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(parts)


def resumed_epochs(study: optuna.Study) -> list[int]:
    """Epochs each resumed trial restored instead of training them again."""
    return [int(t.user_attrs[RESUMED_FROM_EPOCH]) for t in study.get_trials(deepcopy=False)
            if RESUMED_FROM_EPOCH in t.user_attrs]


def summary(study: optuna.Study, target: int, url: str, seconds: float) -> str:
    """A few lines for the end of a run: counts, best trial, where it is and what to do next."""
    counts = count_states(study)
    name = study.study_name
    lines = [
        f"study {name!r}: {finished(counts)} finished trials (target {target}) - "
        f"{counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} pruned, "
        f"{counts[TrialState.FAIL]} failed; this run took {seconds:.1f} s",
    ]
    best = best_trial(study)
    if best is None:
        lines.append("no trial has completed yet")
    else:
        lines.append(f"best val_accuracy {best.values[0]:.4f} (trial {best.number}): "
                     f"{format_params(best.params)}")
        if len(study.directions) > 1:
            lines.append(f"pareto front: {len(study.best_trials)} trials "
                         "(python -m search.report shows them)")
    resumed = resumed_epochs(study)
    if resumed:
        lines.append(f"resumed: {len(resumed)} trial(s) continued from their checkpoint, "
                     f"{sum(resumed)} epoch(s) not trained again")
    lines.append(f"storage: {mask_url(url)}")
    lines.append(f"browse:  {dashboard_command(name, url)}")
    if best is not None:  # the report needs a complete trial
        lines.append(f"export:  {report_command(name, url)}")
    return "\n".join(lines)
