"""Warm starts: a new study's first trials are an earlier study's best configurations.

The earlier study is only read; its configurations are fitted into the new study's space
(model_space.fit_config, rules in docs/warm-start.md) and enqueued before the sampler's own
trials, each marked with where it came from (schema.WARM_START_ATTR).
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from model_space import SearchSpace, TrialConfig, fit_config, sample_config
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


@dataclass(frozen=True)
class Source:
    """An earlier study's complete trials as configurations, best first."""

    study: str
    url: str
    # (trial number, its configuration), by val accuracy (the first objective), best first;
    # ties: the earlier trial first.
    ranked: tuple[tuple[int, TrialConfig], ...]


def read_source(text: str) -> Source:
    """The study ``text`` names, only read; refused when unknown or without a complete trial.

    Called before the new study's data loads: a mistyped name is answered at once.
    """
    name, url = split_source(text)
    study = open_existing(name, url)
    space = spec_of(study).space
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.values]
    if not complete:
        raise UsageError(f"study {name!r} in {mask_url(url)} has no complete trial to "
                         "warm-start from")
    complete.sort(key=lambda t: (-t.values[0], t.number))
    ranked = tuple((t.number, sample_config(optuna.trial.FixedTrial(t.params), space))
                   for t in complete)
    return Source(name, url, ranked)


def plan_warm_start(source: Source, top: int, space: SearchSpace) -> WarmStart:
    """The source's ``top`` best configurations that fit ``space``; refused if none does.

    Skipped configurations are replaced by the next best that fit, so ``top`` are enqueued
    while the source has them.
    """
    configs: list[tuple[int, dict]] = []
    fitted = skipped = same = 0
    first_clash = ""
    for number, config in source.ranked:
        if len(configs) == top:
            break
        fit = fit_config(config, space)
        if fit.clash is not None:
            skipped += 1
            first_clash = first_clash or f"trial #{number}'s {fit.clash}"
        elif any(fit.params == params for _, params in configs):
            same += 1
        else:
            configs.append((number, fit.params))
            fitted += fit.moved
    if not configs:
        raise UsageError(f"study {source.study!r} in {mask_url(source.url)} has nothing in "
                         f"common with this study's space: none of its {len(source.ranked)} "
                         f"complete trials fits (e.g. {first_clash} is not allowed here)")
    return WarmStart(source.study, source.url, tuple(configs), fitted, skipped, same)


def enqueue_warm_start(study: optuna.Study, warm: WarmStart) -> None:
    """Queue the configurations, best first, ahead of anything the sampler would draw.

    Callers do this only for a study with no trials yet, under the study's lock.
    """
    for number, params in warm.configs:
        study.enqueue_trial(params, user_attrs={WARM_START_ATTR: f"{warm.study}#{number}"})
