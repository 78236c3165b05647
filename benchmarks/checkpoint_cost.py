"""What trial checkpoints cost: the same trials trained with checkpointing off, written every
epoch, and written at most every SAVE_EVERY_SECONDS (the default), side by side in one run
(rotating which goes first), on digits (the default search's space and 8
epochs) and on a CIFAR-shaped task (3x32x32 colour shapes, widths up to 128: the largest
checkpoints a small-CNN search writes).

Each trial runs through the real objective (search.training.objective.Objective) in its own
in-memory study, with parameters drawn once by random search and enqueued for both runs.

    python benchmarks/checkpoint_cost.py [--trials 24] [--shapes-trials 10] [--shapes-images 3000]
        [--repeats 3] [--clock wall|cpu]
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
from search.study.spec import SAVE_EVERY_SECONDS
from search.training.checkpoints import TrialCheckpoints
from search.training.objective import Objective

optuna.logging.set_verbosity(optuna.logging.WARNING)
# Wall time by default; --clock cpu counts this process's CPU seconds (all its threads, the
# checkpoint writer's included), which other processes on a busy machine barely move. Use it
# with OMP_NUM_THREADS=1, so that no torch thread spins waiting for a core.
CLOCK = time.perf_counter


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
    started = CLOCK()
    study.optimize(objective, n_trials=1)
    return CLOCK() - started


def measure(name: str, data: DataBundle, space: SearchSpace, epochs: int, trials: int,
            every: dict[str, float], repeats: int) -> list[str]:
    """Rows for ``every`` (label -> --checkpoint-every seconds) against checkpointing off.

    Each trial's time is the fastest of ``repeats`` runs: another process's burst on a 2-core
    machine slows one run by tens of percent, far more than the effect measured."""
    times: dict[str, list[float]] = {"off": [], **{label: [] for label in every}}
    with tempfile.TemporaryDirectory() as folder:
        stores = {"off": None, **{label: TrialCheckpoints(Path(folder), seconds)
                                  for label, seconds in every.items()}}
        labels = list(stores)
        for i, params in enumerate(draws(space, trials, data)):
            # Each trial rotates which variant goes first: the machine warms and cools.
            for label in labels[i % len(labels):] + labels[:i % len(labels)]:
                times[label].append(min(timed(params, data, space, epochs, stores[label])
                                        for _ in range(repeats)))
            print(f"{name} trial {i}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
                  flush=True)
    off = times["off"]
    rows = []
    for label in every:
        on = times[label]
        ratio = sum(on) / sum(off)
        per_trial = statistics.median(a / b for a, b in zip(on, off, strict=True))
        rows.append(f"| {name} | {label} | {trials} | {epochs} | {sum(off):.1f} | {sum(on):.1f} | "
                    f"{100 * (ratio - 1):+.1f}% | {100 * (per_trial - 1):+.1f}% |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=24, help="digits trials")
    parser.add_argument("--shapes-trials", type=int, default=10, help="0 skips the shapes task")
    parser.add_argument("--shapes-images", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3, help="runs per trial; the fastest counts")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    default = f"every {SAVE_EVERY_SECONDS:g} s (default)"
    rows = measure("digits", load_bundle(DataOptions()), SearchSpace(), 8, args.trials,
                   {"every epoch": 0.0, default: SAVE_EVERY_SECONDS}, args.repeats)
    if args.shapes_trials > 0:
        # Its epochs last seconds: the default writes every epoch here, as "every epoch" would.
        rows += measure("shapes 3x32x32", shapes_bundle(args.shapes_images, args.shapes_images // 4),
                        SearchSpace(depth=(1, 3), widths=(32, 64, 128), augment=(True,)), 4,
                        args.shapes_trials, {default: SAVE_EVERY_SECONDS}, args.repeats)
    print("\n| task | checkpoints written | trials | epochs | seconds, off | seconds, on | "
          "cost, total | cost, median trial |\n| --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
