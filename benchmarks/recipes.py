"""Which textbook recipe a study tries first: one full trial of each, on each efficiency task.

Each candidate is a common starting point for small CNNs with batch norm, run as an enqueued
trial through the real objective (search.training.objective.Objective) with the task's epochs, on three
trial seeds. The architecture is the one model_space.baseline_params picks for the task's
space (three blocks, channels doubling up to the widest choice, batch 64, dropout 0.1). Besides
the two efficiency tasks, the shapes images are searched in the default space too (widths up
to 128), which is what a new ImageFolder tree gets: a recipe must not depend on narrow nets.

    python benchmarks/recipes.py            # about 5 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from typing import Any

import optuna
import torch
from efficiency import Task, ensure_shapes, tasks  # benchmarks/ is on sys.path

from model_space import SearchSpace, baseline_params
from search.data.registry import DataBundle, load_bundle
from search.training.objective import Objective

SGD = {"optimizer": "sgd", "weight_decay": 5e-4, "sgd_momentum": 0.9, "sgd_nesterov": True}
CANDIDATES = {
    "adamw, lr 1e-3, wd 1e-4": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4},
    "adamw, lr 3e-3, wd 1e-4": {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 1e-4},
    "sgd nesterov 0.9, wd 5e-4, lr 0.01": {**SGD, "lr": 0.01},
    "sgd nesterov 0.9, wd 5e-4, lr 0.02": {**SGD, "lr": 0.02},
    "sgd nesterov 0.9, wd 5e-4, lr 0.05": {**SGD, "lr": 0.05},
}
ADAM_BETA1 = 0.9


def settings() -> dict[str, Task]:
    shapes = tasks()["shapes"]
    wide = dataclasses.replace(shapes, space=SearchSpace(augment=(True,)))
    return {**tasks(), "shapes, default space": wide}


def one_trial(params: dict[str, Any], task: Task, data: DataBundle,
              seed: int) -> tuple[float, float]:
    """(val accuracy, seconds) of one full trial of ``params``."""
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(params)
    started = time.perf_counter()
    study.optimize(Objective(data, task.space, task.epochs, seed, torch.device("cpu")), n_trials=1)
    return study.trials[0].value, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(settings()), choices=list(settings()))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    torch.set_num_threads(1)
    print("| task | recipe | val accuracy per seed | median | seconds per trial |\n"
          "| --- | --- | --- | --- | --- |")
    for name in args.tasks:
        if name.startswith("shapes"):
            ensure_shapes()
        task = settings()[name]
        data = load_bundle(task.data)
        architecture = {k: v for k, v in baseline_params(task.space).items()
                        if k.startswith(("depth", "width_", "batch_size", "dropout", "augment",
                                         "schedule"))}
        for label, recipe in CANDIDATES.items():
            params = {**architecture, **recipe, "adam_beta1": ADAM_BETA1}
            runs = [one_trial(params, task, data, seed) for seed in args.seeds]
            values = [v for v, _ in runs]
            print(f"| {name} | {label} | {' / '.join(f'{v:.4f}' for v in values)} | "
                  f"{statistics.median(values):.4f} | "
                  f"{statistics.median(s for _, s in runs):.1f} |", flush=True)


if __name__ == "__main__":
    main()
