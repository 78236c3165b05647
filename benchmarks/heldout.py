"""What each strategy's best model scores on the held-out test split, after the search.

benchmarks/efficiency.py compares strategies by best validation accuracy, the quantity every
search maximises, so the run that trains more configurations in full also draws more chances
at a lucky validation score. This takes each run's best configuration (logged as "best" since
2026-11-29), retrains it the way ``python -m search.report`` does (train and validation pooled,
the task's epochs, seeds 0..N-1) and tests it once per seed. The test split is read here only,
after the search, as in the report.

    python benchmarks/heldout.py reports/benchmarks [--seeds 3] [--tasks digits]

Writes heldout.md beside the logs: per run the best validation accuracy and the mean test
accuracy, then per strategy the medians over runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import optuna
import torch
from efficiency import tasks  # benchmarks/ is on sys.path
from efficiency_summary import best, label, max_epochs

from model_space import sample_config
from search.results.best_config import BestConfig
from search.results.retrain import retrain


def heldout_accuracy(run: dict[str, Any], seeds: int) -> float:
    """Mean test accuracy of ``run``'s best configuration, retrained with ``seeds`` seeds."""
    task = tasks()[run["task"]]
    # The tree the run searched (efficiency.py --shapes-files writes another); older logs used
    # the task's own.
    data = dataclasses.replace(task.data, dataset=run.get("dataset", task.data.dataset))
    config = sample_config(optuna.trial.FixedTrial(run["best"]["params"]), task.space)
    chosen = BestConfig(data=data, config=config, epochs=max_epochs(run), seed=0, provenance={})
    with tempfile.TemporaryDirectory() as out:
        result = retrain(chosen, seeds, Path(out), torch.device("cpu"))
    return float(result.metrics["test_accuracy_mean"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, nargs="?", default=Path("reports/benchmarks"))
    parser.add_argument("--seeds", type=int, default=3, help="retrain seeds per configuration")
    parser.add_argument("--tasks", nargs="+", default=["digits", "shapes"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = [json.loads(line) for path in sorted(args.out.glob("efficiency-*.jsonl"))
            for line in path.read_text().splitlines() if line]
    runs = [r for r in runs if "best" in r and r["task"] in args.tasks]
    if not runs:
        raise SystemExit(f"no runs with a logged best configuration under {args.out}")
    by_strategy: dict[tuple[str, str], list[tuple[float, float]]] = {}
    lines = ["| task | strategy | seed | best val | test, mean of retrains |",
             "| --- | --- | --- | --- | --- |"]
    for run in runs:
        test = heldout_accuracy(run, args.seeds)
        by_strategy.setdefault((run["task"], label(run)), []).append((best(run), test))
        lines.append(f"| {run['task']} | {label(run)} | {run['seed']} | {best(run):.4f} "
                     f"| {test:.4f} |")
        print(lines[-1], flush=True)
    lines += ["", "| task | strategy | runs | best val, median | test, median |",
              "| --- | --- | --- | --- | --- |"]
    for (task, name), pairs in sorted(by_strategy.items()):
        lines.append(f"| {task} | {name} | {len(pairs)} "
                     f"| {statistics.median(v for v, _ in pairs):.4f} "
                     f"| {statistics.median(t for _, t in pairs):.4f} |")
    text = "\n".join(lines)
    (args.out / "heldout.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
