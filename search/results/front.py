"""Which trial a report exports: the one asked for, the most accurate, or, in a multi-objective
study, the cheapest trial of the Pareto front that is nearly as accurate as its most accurate."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.errors import UsageError
from search.schema import LATENCY_MS, LATENCY_SETUP, MACS, N_PARAMS

# A front trial within this much val accuracy of the most accurate one is as good a choice:
# about the spread between retrains of one configuration on digits (test_accuracy_std
# 0.003-0.006 over 3 seeds), so a cheaper model there gives up nothing we can measure.
NEARLY_AS_ACCURATE = 0.005


@dataclass(frozen=True)
class Choice:
    trial: FrozenTrial
    why: str  # one sentence for the report


def accuracy(trial: FrozenTrial) -> float:
    """A complete trial's val accuracy, its first objective in every study of ours."""
    return float(trial.values[0])


def costs_of(trial: FrozenTrial) -> dict[str, object]:
    """The costs measured before the trial trained (absent from studies made before them)."""
    keys = (N_PARAMS, MACS, LATENCY_MS, LATENCY_SETUP)
    return {key: trial.user_attrs[key] for key in keys if key in trial.user_attrs}


def pareto_trials(study: optuna.Study) -> list[FrozenTrial]:
    """A multi-objective study's front, cheapest first (by its first cost)."""
    return sorted(study.best_trials, key=lambda t: (t.values[1], -accuracy(t)))


def choose(study: optuna.Study, number: int | None = None) -> Choice:
    """The trial to export; ``number`` picks one (complete) trial by its number."""
    if number is not None:
        return Choice(_complete_trial(study, number), f"trial {number}, as asked (--trial)")
    if len(study.directions) == 1:
        return Choice(study.best_trial, "the most accurate trial")
    front = pareto_trials(study)
    top = max(front, key=accuracy)
    near = [t for t in front if accuracy(t) >= accuracy(top) - NEARLY_AS_ACCURATE]
    chosen = near[0]  # the cheapest of them: the front is sorted by cost
    cost = study.metric_names[1] if study.metric_names else "cost"
    if chosen.number == top.number:
        return Choice(chosen, f"the most accurate trial of the Pareto front ({len(front)} trials); "
                              f"no cheaper front trial is within {NEARLY_AS_ACCURATE} of it")
    return Choice(chosen, f"the cheapest ({cost}) trial of the Pareto front ({len(front)} trials) "
                          f"within {NEARLY_AS_ACCURATE} val accuracy of the most accurate, "
                          f"trial {top.number} ({accuracy(top):.4f})")


def _complete_trial(study: optuna.Study, number: int) -> FrozenTrial:
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        raise UsageError(f"study {study.study_name!r} has no trial {number}; its trials are "
                         f"0 to {len(trials) - 1}")
    trial = trials[number]
    if trial.state != TrialState.COMPLETE:
        complete = [t.number for t in trials if t.state == TrialState.COMPLETE]
        raise UsageError(f"trial {number} of study {study.study_name!r} is "
                         f"{trial.state.name.lower()}, not complete; complete trials: "
                         f"{', '.join(map(str, complete[:20]))}{' ...' if len(complete) > 20 else ''}")
    return trial
