"""Warm starts: a new study's first trials are an earlier study's best configurations.

The earlier study is only read; its configurations are fitted into the new study's space
(model_space.fit_config, rules in docs/warm-start.md) and enqueued before the sampler's own
trials, each marked with where it came from (schema.WARM_START_ATTR).
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from model_space import SearchSpace, fit_config, sample_config
from search.errors import UsageError
from search.schema import WARM_START_ATTR
from search.study.storage import check_study_name, default_storage, mask_url
from search.study.studies import open_existing, spec_of


def split_source(text: str) -> tuple[str, str]:
    """``STUDY`` or ``STUDY@URL`` as (study name, storage URL); the URL defaults to the study's
    own SQLite file. Study names hold no '@' while URLs may (postgresql://user@host/db), so the
    first '@' is the one that separates them."""
    name, at, url = text.partition("@")
    if at and "://" not in url:
        raise UsageError(f"warm start {text!r}: after '@' comes a storage URL such as "
                         f"sqlite:///studies/NAME.db, but got {url!r}")
    check_study_name(name)
    return name, url if at else default_storage(name)


@dataclass(frozen=True)
class WarmStart:
    """What a warm start enqueues: configurations from an earlier study, best first."""

    study: str  # the earlier study's name
    url: str
    # (the earlier trial's number, its parameters fitted into the new space), best first.
    configs: tuple[tuple[int, dict], ...]
    fitted: int  # configurations enqueued after a value moved to fit
    skipped: int  # better configurations passed over: a value the new space does not allow
    same: int  # configurations passed over: identical, after fitting, to a better one

    def line(self) -> str:
        same = f", {self.same} the same as a better one after fitting" if self.same else ""
        n = len(self.configs)
        return (f"warm start from study {self.study!r} ({mask_url(self.url)}): {n} "
                f"configuration{'s' * (n != 1)} enqueued ({self.fitted} fitted into this space, "
                f"{self.skipped} skipped{same})")


def _ranked(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials by val accuracy (the first objective), best first; ties: earlier first."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.values]
    return sorted(complete, key=lambda t: (-t.values[0], t.number))


def plan_warm_start(text: str, top: int, space: SearchSpace) -> WarmStart:
    """The earlier study's ``top`` best configurations that fit ``space``; it is only read.

    Skipped configurations are replaced by the next best that fit, so ``top`` are enqueued
    while the earlier study has them. Refused: an unknown study or storage, a study with no
    complete trial, or one none of whose configurations fits.
    """
    name, url = split_source(text)
    source = open_existing(name, url)
    source_space = spec_of(source).space
    ranked = _ranked(source)
    where = f"study {name!r} in {mask_url(url)}"
    if not ranked:
        raise UsageError(f"{where} has no complete trial to warm-start from")
    configs: list[tuple[int, dict]] = []
    fitted = skipped = same = 0
    first_clash = ""
    for trial in ranked:
        if len(configs) == top:
            break
        fit = fit_config(sample_config(optuna.trial.FixedTrial(trial.params), source_space), space)
        if fit.clash is not None:
            skipped += 1
            first_clash = first_clash or f"trial #{trial.number}'s {fit.clash}"
        elif any(fit.params == params for _, params in configs):
            same += 1
        else:
            configs.append((trial.number, fit.params))
            fitted += fit.moved
    if not configs:
        raise UsageError(f"{where} has nothing in common with this study's space: none of its "
                         f"{len(ranked)} complete trials fits (e.g. {first_clash} is not allowed "
                         "here)")
    return WarmStart(name, url, tuple(configs), fitted, skipped, same)


def enqueue_warm_start(study: optuna.Study, warm: WarmStart) -> None:
    """Queue the configurations, best first, ahead of anything the sampler would draw.

    Callers do this only for a study with no trials yet, under the study's lock.
    """
    for number, params in warm.configs:
        study.enqueue_trial(params, user_attrs={WARM_START_ATTR: f"{warm.study}#{number}"})
