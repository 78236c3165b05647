"""What the report says: the summary, the top trials and the figures, as renderable sections."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from model_space import TrialConfig, sample_config
from search.results.front import accuracy, costs_of, pareto_trials
from search.results.plots import PLOTS
from search.results.render import Image, Section, Table, Text
from search.schema import (
    BASELINE_ATTR,
    EPOCHS_RUN,
    LATENCY_MS,
    MACS,
    N_PARAMS,
    OVER_LIMIT,
    RESUMED_FROM_EPOCH,
    WARM_START_ATTR,
)
from search.study.spec import LIMITS, StudySpec

TOP = 10


@dataclass(frozen=True)
class ReportFacts:
    study: optuna.Study
    spec: StudySpec
    best: FrozenTrial
    config: TrialConfig
    metrics: dict[str, Any]  # metrics.json
    plots: dict[str, Path | str]  # name -> PNG, or why it is missing
    report_seconds: float
    why: str = "the most accurate trial"  # why ``best`` is the trial exported


def _epochs(trial: FrozenTrial) -> int:
    return int(trial.user_attrs.get(EPOCHS_RUN, len(trial.intermediate_values)))


def _wall_seconds(trials: list[FrozenTrial]) -> float:
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    return (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0


def trial_counts(trials: list[FrozenTrial]) -> str:
    parts = [f"{sum(t.state == s for t in trials)} {s.name.lower()}" for s in TrialState
             if any(t.state == s for t in trials)]
    return f"{len(trials)} trials: " + ", ".join(parts)


def _baseline(trials: list[FrozenTrial], best: FrozenTrial) -> list[tuple[str, str]]:
    """How far the search got past the textbook recipe it started from, if it did start there."""
    first = next((t for t in trials if t.user_attrs.get(BASELINE_ATTR)), None)
    if first is None:
        return []
    if first.state != TrialState.COMPLETE or not first.values:
        return [("textbook recipe", f"trial #{first.number}, {first.state.name.lower()}")]
    return [("textbook recipe", f"trial #{first.number}, validation accuracy "
                                f"{accuracy(first):.4f}; the exported trial is "
                                f"{accuracy(best) - accuracy(first):+.4f} over it")]


def _warm_start(trials: list[FrozenTrial], best: FrozenTrial) -> list[tuple[str, str]]:
    """Which trials a warm start enqueued, and whether the exported one is among them."""
    warm = [t for t in trials if WARM_START_ATTR in t.user_attrs]
    if not warm:
        return []
    source = str(warm[0].user_attrs[WARM_START_ATTR]).rpartition("#")[0]
    origins = ", ".join("#" + str(t.user_attrs[WARM_START_ATTR]).rpartition("#")[2] for t in warm)
    ours = ", ".join(f"#{t.number}" for t in warm)
    if best.number in {t.number for t in warm}:
        verdict = "the exported trial is one of them"
    else:
        done = [accuracy(t) for t in warm if t.state == TrialState.COMPLETE and t.values]
        over = f", {accuracy(best) - max(done):+.4f} over the best of them" if done else ""
        verdict = f"the exported trial is not one of them{over}"
    return [("warm start", f"trials {ours} from study {source!r} (its {origins}); {verdict}")]


def _costs(f: ReportFacts, trials: list[FrozenTrial]) -> list[tuple[str, str]]:
    m = f.metrics
    rows = []
    if "macs" in m:
        rows.append(("model cost", f"{m['n_params']:,} parameters, {m['macs']:,} MACs per image, "
                                   f"{m['latency_ms']:.3f} ms per forward pass "
                                   f"({m['latency_setup']}; measured again on the saved model)"))
    if f.spec.limits:
        over = sum(OVER_LIMIT in t.user_attrs for t in trials)
        limits = ", ".join(f"{key} {getattr(f.spec, key):,g}" for key in LIMITS
                           if getattr(f.spec, key) is not None)
        rows.append(("limits", f"{limits}: {over} trials over a limit were never trained"))
    return rows


def _resumed(trials: list[FrozenTrial]) -> list[tuple[str, str]]:
    restored = [int(t.user_attrs[RESUMED_FROM_EPOCH]) for t in trials
                if RESUMED_FROM_EPOCH in t.user_attrs]
    if not restored:
        return []
    return [("resumed trials", f"{len(restored)} continued from their checkpoint after a stop; "
                               f"{sum(restored)} epochs not trained again")]


def _pruner(f: ReportFacts) -> str:
    if len(f.spec.objectives) == 1 or f.spec.pruner == "none":
        return f.spec.pruner
    return "successive halving on Pareto ranks (search.strategy.pareto)"


def _summary(f: ReportFacts) -> Table:
    trials = f.study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    spent = sum(_epochs(t) for t in trials)
    unpruned = len(finished) * f.spec.epochs
    m = f.metrics
    per_seed = ", ".join(f"{s['test_accuracy']:.4f}" for s in m["per_seed"])
    rows = [
        ("dataset", f"{f.spec.data.dataset} ({m['n_train']} train+val, {m['n_test']} test images)"),
        ("exported trial", f"#{f.best.number}, validation accuracy {accuracy(f.best):.4f}: "
                           f"{f.why}"),
        ("test accuracy", f"{m['test_accuracy_mean']:.4f} ± {m['test_accuracy_std']:.4f} "
                          f"(mean ± std over {len(m['per_seed'])} retrains: {per_seed})"),
        ("retrained model", f"{m['n_params']:,} parameters, {m['epochs']} epochs on train+val, "
                            f"{m['train_seconds']:.1f} s of training in all on {m['device']}"),
        *_costs(f, trials),
        *_baseline(trials, f.best),
        *_warm_start(trials, f.best),
        ("trials", trial_counts(trials)),
        ("epochs spent", f"{spent} of {unpruned} without pruning ({len(finished)} finished trials × "
                         f"{f.spec.epochs} epochs) = {spent / max(unpruned, 1):.0%}"),
        *_resumed(trials),
        ("search wall time", f"{_wall_seconds(trials):.1f} s (first trial start to last trial end)"),
        ("report time", f"{f.report_seconds:.1f} s (retrains and plots included)"),
        ("search", f"sampler {f.spec.sampler}, pruner {_pruner(f)}, seed {f.spec.seed}"),
    ]
    return Table(("", "value"), rows)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return "-".join(str(v) for v in value)
    return "-" if value is None else str(value)


def _best_params(f: ReportFacts) -> Table:
    return Table(("parameter", "value"), [(k, _format(v)) for k, v in f.config.to_dict().items()])


def _top(f: ReportFacts) -> Table:
    complete = f.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ranked = sorted(complete, key=accuracy, reverse=True)[:TOP]
    rows = []
    for rank, t in enumerate(ranked, 1):
        c = sample_config(optuna.trial.FixedTrial(t.params), f.spec.space)
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.duration else 0.0
        rows.append((str(rank), str(t.number), f"{accuracy(t):.4f}", _format(c.widths), c.optimizer,
                     f"{c.lr:.3g}", f"{c.weight_decay:.2g}", f"{c.dropout:.2f}", str(c.batch_size),
                     f"{t.user_attrs.get(N_PARAMS, 0):,}", f"{seconds:.1f}"))
    return Table(("rank", "trial", "val acc", "widths", "optimizer", "lr", "weight decay",
                  "dropout", "batch", "params", "seconds"), rows)


def _pareto(f: ReportFacts) -> list[Section]:
    """A multi-objective study's front, cheapest first, with the exported trial marked."""
    if len(f.study.directions) == 1:
        return []
    rows = []
    for t in pareto_trials(f.study):
        c = costs_of(t)
        rows.append(("→" if t.number == f.best.number else "", str(t.number),
                     f"{accuracy(t):.4f}", f"{c.get(N_PARAMS, 0):,}", f"{c.get(MACS, 0):,}",
                     f"{float(c.get(LATENCY_MS, 0.0)):.3f}"))
    table = Table(("exported", "trial", "val acc", "params", "MACs", "latency ms"), rows)
    return [Section("Pareto front", [Text(f"Objectives: {', '.join(f.spec.objectives)}. "
                                          f"Exported: {f.why}."), table,
                                     _image(f, "pareto_front", "Pareto front")])]


def _per_seed(f: ReportFacts) -> Table:
    return Table(("seed", "test accuracy", "training seconds"),
                 [(str(s["seed"]), f"{s['test_accuracy']:.4f}", f"{s['train_seconds']:.2f}")
                  for s in f.metrics["per_seed"]])


def _image(f: ReportFacts, name: str, title: str) -> Image:
    value = f.plots.get(name, "not drawn")
    return Image(title, value, "") if isinstance(value, Path) else Image(title, None, str(value))


def _files() -> Text:
    return Text("Files next to this report: best_config.json (retrain with `python -m search.retrain "
                "best_config.json`), model.pt (state_dict and config; "
                "`torch.load(path, weights_only=True)`), model.pt2 (torch.export program: uint8 "
                "images in, logits out; `torch.export.load`), model.onnx (the same for onnxruntime, "
                "with the deploy extra), metrics.json, plots/. Classify images "
                "with `python -m search.predict model.pt IMAGE...`.")


def sections(f: ReportFacts) -> list[Section]:
    plots = [_image(f, name, title) for name, (title, *_) in PLOTS.items()]
    return [
        Section("Summary", [_summary(f)]),
        *_pareto(f),
        Section("Best configuration", [_best_params(f)]),
        Section("Test accuracy per retrain", [_per_seed(f), _image(
            f, "confusion_matrix", "Confusion matrix on the test split (first seed's model)")]),
        Section(f"Top {TOP} complete trials", [_top(f)]),
        Section("Search plots", plots),
        Section("Files", [_files()]),
    ]
