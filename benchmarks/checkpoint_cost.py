"""What trial checkpoints cost: the same trials trained with checkpointing on and off, side by
side in one run (alternating which goes first), on digits (the default search's space and 8
epochs) and on a CIFAR-shaped task (3x32x32 colour shapes, widths up to 128: the largest
checkpoints a small-CNN search writes).

Each trial runs through the real objective (search.training.objective.Objective) in its own
in-memory study, with parameters drawn once by random search and enqueued for both runs.

    python benchmarks/checkpoint_cost.py [--trials 8] [--shapes-images 5000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import optuna
import torch

from model_space import SearchSpace
from search.data.options import DataOptions
from search.data.registry import DataBundle, Split, channel_stats, load_bundle
from search.training.checkpoints import TrialCheckpoints
from search.training.objective import Objective

optuna.logging.set_verbosity(optuna.logging.WARNING)


def shapes_bundle(n_train: int, n_val: int) -> DataBundle:
    from shapes import CLASSES, make_images  # benchmarks/ is on sys.path

    x, y = make_images(n_train, seed=0)
    vx, vy = make_images(n_val, seed=1)
    mean, std = channel_stats(x)
    return DataBundle("shapes", Split(x, y), Split(vx, vy), CLASSES, mean, std)


def draws(space: SearchSpace, n: int, data: DataBundle) -> list[dict]:
    """Parameters of ``n`` random-search trials (one epoch each: only the draw matters)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(Objective(data, space, epochs=1, seed=0, device=torch.device("cpu")), n_trials=n)
    return [t.params for t in study.trials]


def timed(params: dict, data: DataBundle, space: SearchSpace, epochs: int,
          checkpoints: TrialCheckpoints | None) -> float:
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(params)
    objective = Objective(data, space, epochs, seed=0, device=torch.device("cpu"),
                          checkpoints=checkpoints)
    started = time.perf_counter()
    study.optimize(objective, n_trials=1)
    return time.perf_counter() - started


def measure(name: str, data: DataBundle, space: SearchSpace, epochs: int, trials: int) -> str:
    on, off = [], []
    with tempfile.TemporaryDirectory() as folder:
        checkpoints = TrialCheckpoints(Path(folder))
        for i, params in enumerate(draws(space, trials, data)):
            runs = [(on, checkpoints), (off, None)]
            for times, store in (runs if i % 2 == 0 else runs[::-1]):
                times.append(timed(params, data, space, epochs, store))
            print(f"{name} trial {i}: on {on[-1]:.2f} s, off {off[-1]:.2f} s", flush=True)
    ratio = sum(on) / sum(off)
    per_trial = statistics.median(a / b for a, b in zip(on, off, strict=True))
    return (f"| {name} | {trials} | {epochs} | {sum(off):.1f} | {sum(on):.1f} | "
            f"{100 * (ratio - 1):+.1f}% | {100 * (per_trial - 1):+.1f}% |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--shapes-images", type=int, default=5000)
    args = parser.parse_args()
    rows = [
        measure("digits", load_bundle(DataOptions()), SearchSpace(), 8, args.trials),
        measure("shapes 3x32x32", shapes_bundle(args.shapes_images, args.shapes_images // 4),
                SearchSpace(depth=(1, 3), widths=(32, 64, 128), augment=(True,)), 4,
                args.trials),
    ]
    print("\n| task | trials | epochs | seconds, off | seconds, on | cost, total | cost, median "
          "trial |\n| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
