"""Searching under limits and for fronts on digits: what a limit costs in accuracy, how often
the sampler still proposes models over it, and whether pruning finds a Pareto front sooner.

Per seed, each a real `python -m search.run` in one folder of its own (OMP_NUM_THREADS as
the caller sets it):
- limit: `--trials 100 --max-params 20000` beside the unconstrained default. Reports each
  run's best val accuracy and the share of trials 51-100 that were over the limit (proposed,
  measured, never trained).
- n_params / latency_ms: `--objectives val_accuracy,COST` with the default pruning (successive
  halving on Pareto ranks, search.strategy.pareto) beside `--pruner none`. Reports the
  front's hypervolume after each trial against the epochs trained so far, and the epochs the
  pruned search needed to reach 95% of the unpruned search's final hypervolume.

Hypervolume: of the points (val accuracy, log10 cost) of complete trials, accuracy maximised
and cost minimised, up to the reference point (accuracy --floor, default 0; cost
REFERENCE[COST]): a log scale, so that going from 20,000 to 2,000 parameters counts as much as
from 200,000 to 20,000. With a floor of 0 nearly all of the area comes from any accurate cheap
model, which random start-up trials find; a floor of 0.9 counts only the front's useful part.
`--from-runs` recomputes the figures from the studies a finished run left in --out; with
`--pruned-trials N` it first resumes each pruned study up to N trials, so that the pruned search
can spend up to the unpruned search's epochs (the figure reads the pruned curve at half of them).

    python benchmarks/deployment.py [--seeds 0 1 2] [--trials 100] [--parts limit n_params ...]
        [--out benchmarks-out/deployment] [--floor 0.9] [--from-runs [--pruned-trials 150]]

Writes <out>/results.json and <out>/hypervolume.png, and prints the tables for
docs/benchmarks/deployment.md.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from search.schema import OVER_LIMIT, VAL_CURVE
from search.strategy.pareto import hypervolume_2d

MAX_PARAMS = 20_000
# Above the most any model of the default digits space costs (445,000 parameters; latency
# well under 10 ms on one CPU thread).
REFERENCE = {"n_params": 1e6, "latency_ms": 10.0}


def search(folder: Path, study: str, seed: int, trials: int, extra: list[str]) -> float:
    """One search in ``folder``; returns its wall seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "search.run", "--trials", str(trials), "--seed",
                    str(seed), "--study", study, "--quiet", *extra], cwd=folder, check=True,
                   capture_output=True)
    return time.perf_counter() - started


def load(folder: Path, study: str) -> optuna.Study:
    return optuna.load_study(study_name=study, storage=f"sqlite:///{folder}/studies/{study}.db")


def epochs_of(trial: optuna.trial.FrozenTrial) -> int:
    return int(trial.user_attrs.get("epochs_run", len(trial.intermediate_values)))


def limit_part(out: Path, seed: int, trials: int) -> dict[str, Any]:
    row: dict[str, Any] = {"seed": seed}
    for name, extra in (("limited", ["--max-params", str(MAX_PARAMS)]), ("free", [])):
        seconds = search(out / f"limit-{name}-{seed}", name, seed, trials, extra)
        study = load(out / f"limit-{name}-{seed}", name)
        late = [t for t in study.trials if t.number >= trials // 2]
        row[name] = {"best": study.best_value, "seconds": round(seconds, 1),
                     "epochs": sum(epochs_of(t) for t in study.trials),
                     "over_limit_late": sum(OVER_LIMIT in t.user_attrs for t in late) / len(late),
                     "over_limit_all": sum(OVER_LIMIT in t.user_attrs for t in study.trials)}
    return row


def anytime_hypervolume(study: optuna.Study, cost: str, floor: float) -> list[tuple[int, float]]:
    """(epochs trained so far, hypervolume of the complete trials so far), trial by trial."""
    reference = (floor, math.log10(REFERENCE[cost]))
    points, curve, epochs = [], [], 0
    for t in sorted(study.trials, key=lambda t: t.number):
        epochs += len(t.user_attrs.get(VAL_CURVE, []))
        if t.state == TrialState.COMPLETE:
            points.append((-t.values[0], math.log10(max(t.values[1], 1e-9))))
        curve.append((epochs, hypervolume_2d(points, (-reference[0], reference[1]))))
    return curve


def pareto_part(out: Path, seed: int, trials: int, cost: str, floor: float,
                again: bool, pruned_trials: int = 0) -> dict[str, Any]:
    row: dict[str, Any] = {"seed": seed, "floor": floor}
    for name, extra in (("pruned", []), ("unpruned", ["--pruner", "none"])):
        folder = out / f"{cost}-{name}-{seed}"
        seconds = 0.0 if again else search(folder, name, seed, trials,
                                           ["--objectives", f"val_accuracy,{cost}", *extra])
        if again and name == "pruned" and pruned_trials:
            seconds = search(folder, name, seed, pruned_trials, [])  # resumes the study
        curve = anytime_hypervolume(load(folder, name), cost, floor)
        row[name] = {"seconds": round(seconds, 1), "epochs": curve[-1][0],
                     "hypervolume": curve[-1][1], "curve": curve}
    goal = 0.95 * row["unpruned"]["hypervolume"]
    reached = next((e for e, hv in row["pruned"]["curve"] if hv >= goal), None)
    row["epochs_to_95"] = reached
    row["epochs_ratio"] = None if reached is None else reached / row["unpruned"]["epochs"]
    row["final_ratio"] = row["pruned"]["hypervolume"] / row["unpruned"]["hypervolume"]
    half = row["unpruned"]["epochs"] / 2
    row["half_ratio"] = max([hv for e, hv in row["pruned"]["curve"] if e <= half],
                            default=0.0) / row["unpruned"]["hypervolume"]
    return row


def limit_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| seed | best, max_params 20,000 | best, no limit | difference | over the limit, "
             "trials 51-100 | epochs (limited / free) |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lim, free = r["limited"], r["free"]
        lines.append(f"| {r['seed']} | {lim['best']:.4f} | {free['best']:.4f} | "
                     f"{lim['best'] - free['best']:+.4f} | {lim['over_limit_late']:.0%} | "
                     f"{lim['epochs']} / {free['epochs']} |")
    if len(rows) > 1:
        med = statistics.median
        lines.append(f"| median | {med(r['limited']['best'] for r in rows):.4f} | "
                     f"{med(r['free']['best'] for r in rows):.4f} | "
                     f"{med(r['limited']['best'] - r['free']['best'] for r in rows):+.4f} | "
                     f"{med(r['limited']['over_limit_late'] for r in rows):.0%} | |")
    return "\n".join(lines)


def pareto_table(rows: list[dict[str, Any]], cost: str) -> str:
    lines = [f"| seed ({cost}) | hypervolume pruned / unpruned | epochs pruned / unpruned | "
             "epochs to 95% of unpruned final | as a share of unpruned epochs | pruned at half "
             "the unpruned epochs / unpruned final |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        p, u = r["pruned"], r["unpruned"]
        ratio = "never" if r["epochs_ratio"] is None else f"{r['epochs_ratio']:.0%}"
        lines.append(f"| {r['seed']} | {p['hypervolume']:.4f} / {u['hypervolume']:.4f} "
                     f"({r['final_ratio']:.1%}) | {p['epochs']} / {u['epochs']} | "
                     f"{r['epochs_to_95']} | {ratio} | {r['half_ratio']:.1%} |")
    ratios = [r["epochs_ratio"] if r["epochs_ratio"] is not None else math.inf for r in rows]
    if len(rows) > 1:
        lines.append(f"| median | {statistics.median(r['final_ratio'] for r in rows):.1%} | | | "
                     f"{statistics.median(ratios):.0%} | "
                     f"{statistics.median(r['half_ratio'] for r in rows):.1%} |")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    costs = [c for c in REFERENCE if results.get(c)]
    if not costs:
        return
    fig, axes = plt.subplots(1, len(costs), figsize=(6 * len(costs), 4), squeeze=False)
    for ax, cost in zip(axes[0], costs, strict=True):
        for row in results[cost]:
            for name, style in (("pruned", "-"), ("unpruned", "--")):
                epochs, hv = zip(*row[name]["curve"], strict=True)
                ax.step(epochs, hv, style, where="post", label=f"seed {row['seed']}, {name}")
        ax.set_xlabel("epochs trained")
        ax.set_ylabel(f"hypervolume (val accuracy, log10 {cost})")
        ax.set_title(f"digits: val_accuracy vs {cost}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--parts", nargs="+", default=["limit", "n_params", "latency_ms"],
                        choices=["limit", "n_params", "latency_ms"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks-out/deployment"))
    parser.add_argument("--floor", type=float, default=0.0, help="reference val accuracy")
    parser.add_argument("--from-runs", action="store_true", help="read the studies in --out again")
    parser.add_argument("--pruned-trials", type=int, default=0,
                        help="with --from-runs: first resume each pruned study up to N trials")
    ns = parser.parse_args()
    ns.out = ns.out.resolve()
    ns.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {part: [] for part in ns.parts}
    for seed in ns.seeds:
        for part in ns.parts:
            if part == "limit" and ns.from_runs:
                continue
            row = (limit_part(ns.out, seed, ns.trials) if part == "limit"
                   else pareto_part(ns.out, seed, ns.trials, part, ns.floor, ns.from_runs,
                                    ns.pruned_trials))
            results[part].append(row)
            name = f"results-floor-{ns.floor:g}.json" if ns.from_runs else "results.json"
            (ns.out / name).write_text(json.dumps(results, indent=1) + "\n")
            print(limit_table(results[part]) if part == "limit" else pareto_table(results[part], part),
                  flush=True)
    plot(results, ns.out / f"hypervolume-floor-{ns.floor:g}.png")


if __name__ == "__main__":
    main()
