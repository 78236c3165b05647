"""``python -m search.report``: export a finished study's best configuration, retrain it on
train+val, test it once, and write a report people can read.

It runs no search trials. Everything lands in ``reports/<study>/``: best_config.json,
model.pt, model.pt2, metrics.json, report.md, report.html and plots/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from model_space import TrialConfig, sample_config
from search import cli, interrupts
from search.artifacts import open_store, upload_report_artifacts
from search.report_sections import ReportFacts, sections, trial_counts
from search.retrain import FORMAT, read_best_config, retrain
from search.spec import StudySpec
from search.staging import staged
from search.storage import open_user_storage
from search.study import SPEC_ATTR, default_storage, mask_url

PROG = "python -m search.report"


def build_parser() -> argparse.ArgumentParser:
    p = cli.Parser(prog=PROG, description="Export the best configuration of a study, retrain it, "
                   "test it once and write reports/<study>/.")
    p.add_argument("--study", default="digits", help="study name (default digits)")
    p.add_argument("--storage", help="SQLAlchemy URL (default sqlite:///studies/<study>.db)")
    p.add_argument("--seeds", type=cli.positive_int, default=3, help="retrains, one per seed (default 3)")
    p.add_argument("--out", type=Path, default=Path("reports"), help="root folder (default reports)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    return p


def open_study(name: str, url: str) -> optuna.Study:
    """The study, or an error that lists the studies the storage does hold."""
    storage = open_user_storage(url, must_exist=True)  # reading must not create a file
    names = sorted(s.study_name for s in storage.get_all_studies())
    if name not in names:
        known = ", ".join(names) if names else "none"
        raise cli.UsageError(f"no study {name!r} in {mask_url(url)}; studies there: {known}")
    return optuna.load_study(study_name=name, storage=storage)


def study_spec(study: optuna.Study) -> StudySpec:
    raw = study.user_attrs.get(SPEC_ATTR)
    if not raw:
        raise cli.UsageError(f"study {study.study_name!r} has no stored spec; only studies made by "
                             "python -m search.run can be reported")
    return StudySpec.from_flat(json.loads(raw))


def best_complete(study: optuna.Study) -> FrozenTrial:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise cli.UsageError(f"study {study.study_name!r} has no complete trial yet "
                             f"({trial_counts(study.get_trials(deepcopy=False))}); "
                             f"run python -m search.run --study {study.study_name} first")
    return study.best_trial


def best_config(study: optuna.Study, trial: FrozenTrial, spec: StudySpec,
                config: TrialConfig) -> dict[str, Any]:
    """Everything a retrain needs, plus where it came from. Read back by search.retrain."""
    flat = spec.to_flat()
    flat.pop("space")
    return {
        "format": FORMAT,
        # The study's data, split and budget settings; the search space is left out.
        "spec": flat,
        "model": config.to_dict(),
        "epochs": spec.epochs,
        "batch_size": config.batch_size,
        "seed": spec.seed,
        "provenance": {
            "study": study.study_name,
            "trial": trial.number,
            "val_accuracy": trial.value,
            "params": trial.params,
            "optuna_version": optuna.__version__,
            "torch_version": torch.__version__,
            "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
    }


def write_report(args: argparse.Namespace) -> int:
    from search.plots import confusion_matrix_plot, study_plots
    from search.render import html_page, markdown
    from search.run import resolve_device

    started = time.perf_counter()
    name = cli.check_study_name(args.study)
    study = open_study(name, args.storage or default_storage(name))
    spec = study_spec(study)
    trial = best_complete(study)
    config = sample_config(optuna.trial.FixedTrial(trial.params), spec.space)
    final = args.out / name
    # Written whole or not at all: a report stopped part-way leaves the last one as it was.
    with staged(final) as out:
        config_path = out / "best_config.json"
        config_path.write_text(json.dumps(best_config(study, trial, spec, config), indent=2) + "\n")
        # The same path as python -m search.retrain: the file, not the study, drives the retrain.
        result = retrain(read_best_config(config_path), args.seeds, out, resolve_device(args.device))
        plots = study_plots(study, out / "plots")
        plots["confusion_matrix"] = confusion_matrix_plot(
            result.test_labels, result.test_predictions, result.classes,
            out / "plots" / "confusion_matrix.png")
        facts = ReportFacts(study, spec, trial, config, result.metrics, plots,
                            report_seconds=time.perf_counter() - started)
        title = f"cnn-search report: study {name}"
        (out / "report.md").write_text(markdown(title, sections(facts), out))
        (out / "report.html").write_text(html_page(title, sections(facts)))
    # The dashboard's "Study Artifacts" view offers both for download.
    upload_report_artifacts(study, open_store(name), [final / "model.pt", final / "report.html"])
    m = result.metrics
    print(f"best trial {trial.number}: val_accuracy {trial.value:.4f}; test accuracy "
          f"{m['test_accuracy_mean']:.4f} +- {m['test_accuracy_std']:.4f} over {args.seeds} seed(s)")
    print(f"wrote {final}/: best_config.json model.pt model.pt2 metrics.json report.md report.html "
          f"plots/ in {time.perf_counter() - started:.1f} s")
    print("attached model.pt and report.html to the study (optuna-dashboard: Study Artifacts)")
    return cli.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cli.quiet_libraries()
    interrupts.install()
    return cli.run_cli(PROG, lambda: write_report(args))


if __name__ == "__main__":
    sys.exit(main())
