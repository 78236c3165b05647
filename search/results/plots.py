"""The report's figures, drawn by optuna.visualization.matplotlib and sklearn, saved as PNG.

Each plot is optional: one that cannot be drawn (too few trials, a single parameter) is
reported with its reason instead of stopping the report.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window; set before pyplot is imported

import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
import torch  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from optuna.trial import TrialState  # noqa: E402
from optuna.visualization import matplotlib as ovm  # noqa: E402

from search.schema import VAL_CURVE  # noqa: E402

DPI = 100
COMPLETE_COLOR = "#1f77b4"
PRUNED_COLOR = "#bbbbbb"


def _figure(ax: Axes | object) -> plt.Figure:
    # Some optuna plots return an array of axes; all share one figure.
    first = ax if isinstance(ax, Axes) else ax.flat[0]  # type: ignore[attr-defined]
    return first.figure


def _single(study: optuna.Study) -> bool:
    return len(study.directions) == 1


def _accuracy(draw: Callable[..., object]) -> Callable[[optuna.Study], object]:
    """An Optuna plot of val accuracy, the first objective, in any study of ours."""
    def drawn(study: optuna.Study, **kwargs: object) -> object:
        if _single(study):
            return draw(study, **kwargs)
        return draw(study, target=lambda t: t.values[0], target_name="val_accuracy", **kwargs)
    return drawn


def _curves(study: optuna.Study) -> Axes:
    """Each trial's val accuracy per epoch: Optuna's plot of intermediate values, or, in a
    multi-objective study (where Trial.report is refused), the curves kept in user attrs."""
    if _single(study):
        return ovm.plot_intermediate_values(study)
    _, ax = plt.subplots()
    for t in study.get_trials(deepcopy=False):
        curve = t.user_attrs.get(VAL_CURVE)
        if isinstance(curve, list) and curve:
            ax.plot(range(1, len(curve) + 1), curve, marker=".", label=f"Trial{t.number}")
    if not ax.get_lines():
        raise ValueError("no trial has finished an epoch")
    return ax


def _learning_curves(study: optuna.Study) -> Axes:
    """Learning curves with complete trials in colour and pruned ones in grey.

    Optuna's own legend names every trial, which is unreadable at 100 trials.
    """
    ax = _curves(study)
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    for line in ax.get_lines():
        number = int(line.get_label().removeprefix("Trial"))
        complete = states.get(number) == TrialState.COMPLETE
        line.set_color(COMPLETE_COLOR if complete else PRUNED_COLOR)
        line.set_zorder(3 if complete else 2)
    ax.legend(handles=[Line2D([], [], color=COMPLETE_COLOR, label="complete"),
                       Line2D([], [], color=PRUNED_COLOR, label="pruned")], loc="lower right")
    ax.set_title("Learning curves (validation accuracy per epoch)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("val_accuracy")
    return ax


def _shared_params(study: optuna.Study) -> list[str]:
    """Parameters every complete trial has: conditional ones would drop trials from the plot."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    names = set.intersection(*(set(t.params) for t in complete)) if complete else set()
    return sorted(names)


def _parallel(study: optuna.Study) -> Axes:
    params = _shared_params(study)
    if len(params) < 2:
        raise ValueError("fewer than two parameters are shared by all complete trials")
    return _accuracy(ovm.plot_parallel_coordinate)(study, params=params)


def _pareto_front(study: optuna.Study) -> Axes:
    ax = ovm.plot_pareto_front(study, target_names=list(study.metric_names or []) or None)
    ax.set_title("Pareto front (complete trials; the front in red)")
    return ax


# name -> (title, drawing function, figure size in inches).
PLOTS: dict[str, tuple[str, Callable[[optuna.Study], object], tuple[float, float]]] = {
    "optimization_history": ("Optimization history", _accuracy(ovm.plot_optimization_history),
                             (8, 5)),
    "intermediate_values": ("Learning curves, complete and pruned", _learning_curves, (8, 5)),
    "param_importances": ("Parameter importances", _accuracy(ovm.plot_param_importances), (8, 5)),
    # One axis per parameter, each with its own tick labels: it needs the width.
    "parallel_coordinate": ("Parallel coordinates", _parallel, (14, 6)),
}


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def study_plots(study: optuna.Study, folder: Path) -> dict[str, Path | str]:
    """Draw every study plot into ``folder``; name -> PNG path, or the reason it is missing."""
    folder.mkdir(parents=True, exist_ok=True)
    drawn: dict[str, Path | str] = {}
    plots = dict(PLOTS)
    if not _single(study):
        plots["pareto_front"] = ("Pareto front", _pareto_front, (8, 6))
    for name, (_, draw, size) in plots.items():
        try:
            with warnings.catch_warnings():
                # The matplotlib backend is marked experimental; its output is what we want.
                warnings.simplefilter("ignore")
                ax = draw(study)
            fig = _figure(ax)
            fig.set_size_inches(*size)
            drawn[name] = _save(fig, folder / f"{name}.png")
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            plt.close("all")
            # A PNG left from an earlier report would contradict this one.
            (folder / f"{name}.png").unlink(missing_ok=True)
            drawn[name] = f"not drawn: {error}"
    return drawn


def confusion_matrix_plot(labels: torch.Tensor, predictions: torch.Tensor,
                          classes: tuple[str, ...], path: Path) -> Path:
    from sklearn.metrics import ConfusionMatrixDisplay

    size = min(12.0, 3.0 + 0.45 * len(classes))
    # Optuna's plots switch pyplot to the ggplot style globally; its grid would cross the cells.
    with plt.style.context("default"):
        fig, ax = plt.subplots(figsize=(size, size))
        ConfusionMatrixDisplay.from_predictions(
            labels.numpy(), predictions.numpy(), labels=list(range(len(classes))),
            display_labels=list(classes), ax=ax, colorbar=False, cmap="Blues",
            xticks_rotation="vertical")
        ax.set_title("Confusion matrix on the test split (first seed's model)")
        return _save(fig, path)
