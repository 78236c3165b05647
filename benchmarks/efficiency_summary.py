"""Tables and anytime curves from benchmarks/efficiency.py's logs (reports/benchmarks/).

    python benchmarks/efficiency_summary.py [reports/benchmarks]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

# The default for each task's kind of data (search.study.spec.default_pruner): what
# docs/benchmarks/search-efficiency.md quotes.
DEFAULTS = {"digits": "tpe+sha", "shapes": "tpe+hyperband+baseline"}
RANDOM = "random+none"
# Trials per run of each task; a run of another length (--trials) is a strategy of its own.
TRIALS = {"digits": 100, "shapes": 40}
# Epochs per trial (the pruners' maximum resource); likewise for a run with --epochs.
EPOCHS = {"digits": 8, "shapes": 6}
# Training images each task draws (None: all); likewise for a run with --train-subset.
TRAIN_SUBSET: dict[str, int | None] = {"digits": None, "shapes": 1000}
Run = dict[str, Any]


def label(run: Run) -> str:
    patience = f"+patience{run['patience']}" if run["patience"] else ""
    start = "+baseline" if run.get("baseline") else ""
    name = f"{run['sampler']}+{run['pruner']}{patience}{start}"
    n = len(run.get("trials", ()))
    if "task" in run and n != TRIALS.get(run["task"], n):
        name += f", {n} trials"
    if "task" in run and max_epochs(run) != EPOCHS.get(run["task"]):
        name += f", {max_epochs(run)} epochs"
    if "task" in run and train_subset(run) != TRAIN_SUBSET.get(run["task"]):
        name += f", {train_subset(run)} train images"
    return name


def max_epochs(run: Run) -> int:
    """Epochs per trial; logs from before --epochs existed ran each task's default."""
    return run.get("max_epochs", EPOCHS.get(run.get("task", ""), 0))


def train_subset(run: Run) -> int | None:
    """Training images drawn; logs from before --train-subset existed drew each task's default."""
    return run.get("train_subset", TRAIN_SUBSET.get(run.get("task", "")))


def load(out: Path) -> dict[str, dict[str, list[Run]]]:
    """task -> strategy -> runs (one per seed)."""
    runs: dict[str, dict[str, list[Run]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(out.glob("efficiency-*.jsonl")):
        for line in path.read_text().splitlines():
            run = json.loads(line)
            runs[run["task"]][label(run)].append(run)
    return runs


def best(run: Run) -> float:
    return max((t["value"] for t in run["trials"] if t["value"] is not None), default=math.nan)


def best_within(run: Run, budget: float, axis: str) -> float:
    """The best value among the trials that finished by ``budget`` of ``axis`` (epochs, wall)."""
    return max((t["value"] for t in run["trials"]
                if t["value"] is not None and t[axis] <= budget + 1e-9), default=math.nan)


def reach(run: Run, target: float, axis: str) -> float:
    """``axis`` (epochs, wall or cpu) spent when the run first had a trial at ``target`` or above."""
    for trial in run["trials"]:
        if trial["value"] is not None and trial["value"] >= target - 1e-9:
            return trial[axis]
    return math.inf


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def median_best(runs: list[Run]) -> float:
    return median([best(r) for r in runs])


def spent(runs: list[Run], axis: str) -> float:
    """Median over seeds of the ``axis`` (epochs, wall or cpu) a whole run spent."""
    return median([r["trials"][-1][axis] for r in runs])


def strategy_rows(strategies: dict[str, list[Run]]) -> list[dict[str, Any]]:
    target = median_best(strategies.get(RANDOM, []))
    rows = []
    for name, runs in strategies.items():
        bests = [best(r) for r in runs]
        rows.append({
            "strategy": name, "seeds": len(runs), "best": median(bests),
            "best_range": (min(bests), max(bests)),
            "epochs": spent(runs, "epochs"), "wall": spent(runs, "wall"),
            "cpu": spent(runs, "cpu"),
            "reach_epochs": median([reach(r, target, "epochs") for r in runs]),
            "reach_wall": median([reach(r, target, "wall") for r in runs]),
            "target": target,
        })
    return sorted(rows, key=lambda row: row["epochs"])


def pruning_ratios(strategies: dict[str, list[Run]]) -> list[str]:
    """Epochs of each pruned or patient strategy over the same sampler with neither."""
    lines = []
    for name, runs in sorted(strategies.items()):
        unpruned = strategies.get(label({**runs[0], "pruner": "none", "patience": 0}))
        if not unpruned or runs is unpruned:
            continue
        epochs_none, epochs = spent(unpruned, "epochs"), spent(runs, "epochs")
        # The anytime reading: epochs until each first matched the unpruned run's median best.
        target = median_best(unpruned)
        to_target = median([reach(r, target, "epochs") for r in runs])
        to_target_none = median([reach(r, target, "epochs") for r in unpruned])
        # The budget reading: what the pruned run had found by a third of the unpruned spend.
        third = median([best_within(r, epochs_none / 3, "epochs") for r in runs])
        lines.append(f"- {name}: {epochs:.0f} / {epochs_none:.0f} epochs = "
                     f"{epochs / epochs_none:.2f} of {label(unpruned[0])}; best val "
                     f"{median_best(runs):.4f} vs {median_best(unpruned):.4f}; to reach "
                     f"{target:.4f}: {to_target:.0f} vs {to_target_none:.0f} epochs = "
                     f"{to_target / to_target_none:.2f}; best by a third of its epochs "
                     f"({epochs_none / 3:.0f}): {third:.4f}")
    return lines


def default_vs_random(task: str, strategies: dict[str, list[Run]]) -> str:
    default = DEFAULTS.get(task, "tpe+sha")
    if default not in strategies or RANDOM not in strategies:
        return ""
    base = strategies[RANDOM]
    target = median_best(base)
    lines = []
    for axis in ("wall", "cpu", "epochs"):
        ours = median([reach(r, target, axis) for r in strategies[default]])
        theirs = spent(base, axis)
        lines.append(f"- {default} reaches {RANDOM}'s median best ({target:.4f}) in "
                     f"{ours:.0f} {axis} (median over seeds) vs {theirs:.0f} for {RANDOM}'s "
                     f"whole run: {ours / theirs:.2f}x")
    return "\n".join(lines)


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| strategy | seeds | best val, median (min-max) | epochs | wall s | CPU s | "
            f"epochs to {RANDOM} best | wall s to it |\n| --- |" + " --- |" * 7)
    body = [f"| {r['strategy']} | {r['seeds']} | {r['best']:.4f} ({r['best_range'][0]:.4f}-"
            f"{r['best_range'][1]:.4f}) | {r['epochs']:.0f} | {r['wall']:.0f} | {r['cpu']:.0f} | "
            f"{r['reach_epochs']:.0f} | {r['reach_wall']:.0f} |" for r in rows]
    return "\n".join([head, *body])


def curve(runs: list[Run], axis: str, grid: list[float]) -> list[float]:
    """Median over seeds of the best value reached by each grid point of ``axis``."""
    per_seed = []
    for run in runs:
        points, best_so_far = [], -math.inf
        trials = iter(run["trials"])
        trial = next(trials, None)
        for x in grid:
            while trial is not None and trial[axis] <= x:
                if trial["value"] is not None:
                    best_so_far = max(best_so_far, trial["value"])
                trial = next(trials, None)
            points.append(best_so_far)
        per_seed.append(points)
    return [statistics.median(column) for column in zip(*per_seed, strict=True)]


def _marker(run: Run) -> str | None:
    if run["patience"]:
        return "o"
    return "^" if run.get("baseline") else None


def plot(runs: dict[str, dict[str, list[Run]]], path: Path) -> None:
    tasks = sorted(runs)
    fig, axes = plt.subplots(len(tasks), 2, figsize=(15, 4.6 * len(tasks)), squeeze=False)
    colours = {"tpe": "tab:blue", "random": "tab:orange", "cmaes": "tab:green", "gp": "tab:red"}
    styles = {"sha": "-", "hyperband": "--", "median": ":", "none": "-."}
    for row, task in enumerate(tasks):
        for col, axis in enumerate(("epochs", "wall")):
            ax = axes[row][col]
            top = max(r["trials"][-1][axis] for rs in runs[task].values() for r in rs)
            grid = [top * i / 200 for i in range(1, 201)]
            early = []
            named = sorted(runs[task].items())
            # Colour by sampler and line by pruner, unless runs differ only in trials, length or
            # data (--trials, --epochs, --train-subset): then each gets its own colour.
            kinds = [(rs[0]["sampler"], rs[0]["pruner"], _marker(rs[0])) for _, rs in named]
            own = len(set(kinds)) < len(kinds)
            for i, (name, strategy_runs) in enumerate(named):
                first = strategy_runs[0]
                width = 2.6 if name == DEFAULTS.get(task) else 1.3
                values = curve(strategy_runs, axis, grid)
                early.append(values[9])
                ax.plot(grid, values, label=name, linewidth=width,
                        color=f"C{i % 10}" if own else colours.get(first["sampler"], "black"),
                        linestyle="-" if own else styles.get(first["pruner"], "-"),
                        marker=_marker(first), markevery=25, markersize=4)
            bests = [best(r) for rs in runs[task].values() for r in rs]
            # Low enough to show where the typical strategy stood at a twentieth of the budget,
            # and the low end of the bests, without the few runs that never learned.
            early = [v for v in early if not math.isnan(v)]
            low = min(sorted(bests)[len(bests) // 10], median(early) if early else 1.0)
            ax.set_ylim(low - 0.02, max(bests) + 0.005)
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # under a decade they overlap
            ax.set_xlabel("cumulative epochs (log)" if axis == "epochs" else "wall seconds (log)")
            ax.set_ylabel("best validation accuracy (median over seeds)")
            ax.set_title(f"{task}: best so far against {axis}")
            ax.grid(alpha=0.3)
        axes[row][1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summarise(out: Path) -> str:
    runs = load(out)
    parts = []
    for task in sorted(runs):
        parts += [f"### {task}", "", table(strategy_rows(runs[task])), "",
                  *pruning_ratios(runs[task]), default_vs_random(task, runs[task]), ""]
    text = "\n".join(parts)
    (out / "efficiency.md").write_text(text)
    if runs:
        plot(runs, out / "efficiency.png")
    print(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", type=Path, default=Path("reports/benchmarks"),
                        help="the folder efficiency.py wrote its logs to")
    args = parser.parse_args()
    if not any(args.out.glob("efficiency-*.jsonl")):
        parser.exit(2, f"efficiency_summary.py: error: no efficiency-*.jsonl logs under "
                       f"{args.out}; run benchmarks/efficiency.py first\n")
    summarise(args.out)


if __name__ == "__main__":
    main()
