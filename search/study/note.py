"""The study note shown on optuna-dashboard's study page: data, splits, space, how to export."""

from __future__ import annotations

from collections.abc import Sized
from typing import Protocol

import optuna
from optuna_dashboard import get_note, save_note

from search.study.next_steps import report_command
from search.study.spec import StudySpec


class LoadedData(Protocol):
    """What the note says of the data: search.data.registry.DataBundle fits (and brings torch,
    which this layer does not import)."""

    @property
    def input_shape(self) -> tuple[int, int, int]: ...

    @property
    def n_classes(self) -> int: ...

    @property
    def train(self) -> Sized: ...

    @property
    def val(self) -> Sized: ...


def _value(value: object) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_value(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value).lower()


def _baseline_line(spec: StudySpec) -> str:
    if not spec.baseline:
        return ""
    return ("\nThe first trial (user attr `baseline`) is the textbook recipe fitted into this "
            "space: SGD with Nesterov momentum where allowed, channels doubling per block.")


def study_note(name: str, url: str, spec: StudySpec, data: LoadedData) -> str:
    """Markdown for the study page; no test-split figures, since the search never reads it."""
    c, h, w = data.input_shape
    rows = "\n".join(f"| `{key}` | {_value(value)} |" for key, value in spec.space.to_dict().items())
    return f"""## {name}

**Dataset** `{spec.data.dataset}`: {c}x{h}x{w} images, {data.n_classes} classes.

**Splits** (stratified, split seed {spec.data.split_seed}): train {len(data.train)},
validation {len(data.val)}. The test split (test fraction {spec.data.test_fraction:g} where the
dataset ships none) is read only by the report.

**Search**: up to {spec.epochs} epochs per trial, sampler `{spec.sampler}`, pruner
`{spec.pruner}`, seed {spec.seed}. Objective `val_accuracy`: validation accuracy of the last
epoch.{_baseline_line(spec)}

**Space**

| parameter | range or choices |
| --- | --- |
{rows}

**Best model**: with `--save-models best` (the default) the study's artifacts hold
`best-model-trial-N.pt`, the weights of the best trial so far. Retrain and export it with:

    {report_command(name, url)}
"""


def write_study_note(study: optuna.Study, url: str, spec: StudySpec, data: LoadedData) -> None:
    """Save the note, unless the study already shows this exact text (keeps its history short)."""
    body = study_note(study.study_name, url, spec, data)
    if get_note(study) != body:
        save_note(study, body)
