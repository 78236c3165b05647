"""A study's report: the best configuration exported, retrained, tested once, and written up.

Everything lands in ``<out>/<study>/``, whole or not at all: best_config.json, model.pt,
model.pt2, model.onnx (with the deploy extra), metrics.json, report.md, report.html and plots/.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from model_space import sample_config
from search.errors import UsageError
from search.results import best_config
from search.results.artifacts import open_store, upload_report_artifacts
from search.results.front import Choice, accuracy, choose, costs_of
from search.results.plots import confusion_matrix_plot, study_plots
from search.results.render import html_page, markdown
from search.results.retrain import SOMETIMES_WRITTEN, retrain
from search.results.sections import ReportFacts, sections, trial_counts
from search.results.staging import staged
from search.study.next_steps import search_command
from search.study.spec import StudySpec
from search.training.costs import latency_setup


@dataclass(frozen=True)
class Report:
    """What a finished report says on the terminal."""

    folder: Path
    trial: FrozenTrial
    metrics: dict[str, Any]
    seconds: float
    why: str  # why this trial was exported


def chosen_complete(study: optuna.Study, url: str, number: int | None = None) -> Choice:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise UsageError(f"study {study.study_name!r} has no complete trial yet "
                         f"({trial_counts(study.get_trials(deepcopy=False))}); run "
                         f"{search_command(study.study_name, url)} first")
    return choose(study, number)


def write_report(study: optuna.Study, spec: StudySpec, url: str, *, out_root: Path, seeds: int,
                 device: torch.device, trial_number: int | None = None) -> Report:
    """Export the chosen trial (search.results.front), retrain it ``seeds`` times, write the
    report folder, attach files."""
    started = time.perf_counter()
    name = study.study_name
    choice = chosen_complete(study, url, trial_number)
    trial = choice.trial
    config = sample_config(optuna.trial.FixedTrial(trial.params), spec.space)
    final = out_root / name
    # Written whole or not at all: a report stopped part-way leaves the last one as it was.
    with staged(final, owned=SOMETIMES_WRITTEN) as out:
        config_path = out / best_config.NAME
        best_config.write_best_config(config_path, best_config.from_trial(
            study=name, trial=trial.number, value=accuracy(trial), params=trial.params, spec=spec,
            config=config, costs=costs_of(trial)))
        # The same path as python -m search.retrain: the file, not the study, drives the retrain.
        # Finished seeds are kept beside the folder: a report stopped part-way goes on with the
        # seeds it had not finished.
        result = retrain(best_config.read_best_config(config_path), seeds, out, device,
                         done=final.parent / f".{name}.seeds",
                         latency=latency_setup(spec))
        plots = study_plots(study, out / "plots")
        plots["confusion_matrix"] = confusion_matrix_plot(
            result.test_labels, result.test_predictions, result.classes,
            out / "plots" / "confusion_matrix.png")
        facts = ReportFacts(study, spec, trial, config, result.metrics, plots,
                            report_seconds=time.perf_counter() - started, why=choice.why)
        title = f"cnn-search report: study {name}"
        (out / "report.md").write_text(markdown(title, sections(facts), out))
        (out / "report.html").write_text(html_page(title, sections(facts)))
    # The dashboard's "Study Artifacts" view offers both for download.
    upload_report_artifacts(study, open_store(name), [final / "model.pt", final / "report.html"])
    return Report(final, trial, result.metrics, time.perf_counter() - started, choice.why)
