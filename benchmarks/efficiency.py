"""Search efficiency: the same search under several sampler/pruner strategies, side by side.

For each task (digits, and a CIFAR-shaped 3x32x32 task written by benchmarks/shapes.py) and
each seed, every strategy runs the real objective (search.training.objective.Objective: our model,
training loop, reporting and pruning) for the same number of trials, interleaved strategy by
strategy so machine noise hits all alike. Each finished trial is logged with wall seconds,
process CPU seconds and cumulative epochs since the run began, and the best validation
accuracy so far: the anytime curves. Studies are in memory, so storage is not compared here
(benchmarks/overhead.py measures it).

Results go to reports/benchmarks/efficiency-<task>.jsonl (one line per run; a rerun skips runs
already there), then efficiency.md (tables) and efficiency.png (curves).

    python benchmarks/efficiency.py                       # everything (about 1.5 h on 2 cores)
    python benchmarks/efficiency.py --tasks digits --seeds 0
    python benchmarks/efficiency.py --tasks shapes --strategies tpe+hyperband gp+none
    python benchmarks/efficiency.py --strategies tpe+sha tpe+none --baseline   # as search.run
    python benchmarks/efficiency.py --tasks digits --epochs 15 --out reports/benchmarks/epochs15
    python benchmarks/efficiency.py --tasks shapes --train-subset 2000 --epochs 24
    python benchmarks/efficiency.py --summary-only
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from efficiency_summary import (  # benchmarks/ is on sys.path
    EPOCHS,
    TRAIN_SUBSET,
    TRIALS,
    best,
    label,
    max_epochs,
    summarise,
    train_subset,
)

from model_space import SearchSpace
from search.data.options import DataOptions
from search.data.registry import DataBundle, load_bundle
from search.strategy.samplers import make_pruner, make_sampler
from search.study.studies import enqueue_baseline
from search.training.objective import Objective

OUT = Path("reports/benchmarks")
SHAPES_DIR = Path("data/bench-shapes")


@dataclass(frozen=True)
class Task:
    data: DataOptions
    space: SearchSpace
    epochs: int
    trials: int


def tasks() -> dict[str, Task]:
    # The shapes task narrows widths so a trial costs seconds, not minutes, on 2 cores.
    return {
        "digits": Task(DataOptions(), SearchSpace(), epochs=EPOCHS["digits"],
                       trials=TRIALS["digits"]),
        "shapes": Task(DataOptions(dataset=str(SHAPES_DIR.resolve()),
                                   train_subset=TRAIN_SUBSET["shapes"]),
                       SearchSpace(depth=(1, 3), widths=(8, 16, 32), augment=(True,)),
                       epochs=EPOCHS["shapes"], trials=TRIALS["shapes"]),
    }


# (sampler, pruner, patience). Patience 0 trains until the pruner or the epoch budget stops.
STRATEGIES = [
    ("tpe", "sha", 0), ("tpe", "hyperband", 0), ("tpe", "median", 0), ("tpe", "none", 0),
    ("random", "sha", 0), ("random", "hyperband", 0), ("random", "median", 0),
    ("random", "none", 0), ("cmaes", "none", 0), ("gp", "none", 0),
    ("tpe", "sha", 2), ("tpe", "none", 2), ("tpe", "hyperband", 2), ("gp", "hyperband", 0),
]


SHAPES_FILES = 3000  # training files in the generated tree (a quarter becomes validation)


def shapes_dir(files: int = SHAPES_FILES) -> Path:
    return SHAPES_DIR if files == SHAPES_FILES else Path(f"{SHAPES_DIR}-{files}")


def ensure_shapes(files: int = SHAPES_FILES) -> None:
    if not (shapes_dir(files) / "train").is_dir():
        from shapes import write_tree  # benchmarks/ is on sys.path when run as a script

        write_tree(shapes_dir(files), n_train=files, n_test=1000)


def run_one(task: Task, data: DataBundle, sampler: str, pruner: str, patience: int,
            seed: int, baseline: bool) -> dict[str, Any]:
    """One in-memory search; returns its per-trial log. ``baseline``: the recipe goes first."""
    # A fixed name: Hyperband puts each trial in a bracket by a hash of the study's name, and
    # Optuna's default name is a random UUID, so reruns of a seed would not repeat.
    study = optuna.create_study(direction="maximize", sampler=make_sampler(sampler, seed),
                                pruner=make_pruner(pruner, task.epochs),
                                study_name=f"efficiency-seed-{seed}")
    if baseline:
        enqueue_baseline(study, task.space)
    objective = Objective(data, task.space, task.epochs, seed, torch.device("cpu"),
                          patience=patience)
    log: list[dict[str, Any]] = []
    wall0, cpu0 = time.perf_counter(), time.process_time()
    epochs = 0

    def record(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal epochs
        epochs += int(trial.user_attrs.get("epochs_run", 0))
        value = trial.value if trial.state == optuna.trial.TrialState.COMPLETE else None
        log.append({"wall": time.perf_counter() - wall0, "cpu": time.process_time() - cpu0,
                    "epochs": epochs, "state": trial.state.name, "value": value})

    study.optimize(objective, n_trials=task.trials, callbacks=[record],
                   catch=(RuntimeError, MemoryError), gc_after_trial=False)
    # The best trial's parameters and seed, so its model can be retrained and tested later.
    top = study.best_trial
    return {"sampler": sampler, "pruner": pruner, "patience": patience, "seed": seed,
            "baseline": baseline, "max_epochs": task.epochs,
            "dataset": task.data.dataset, "train_subset": task.data.train_subset,
            "train_images": len(data.train.y),
            "best": {"number": top.number, "params": top.params}, "trials": log}


def done_runs(path: Path) -> set[tuple]:
    if not path.exists():
        return set()
    rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    return {(r["task"], r["sampler"], r["pruner"], r["patience"], r["seed"], len(r["trials"]),
             r.get("baseline", False), max_epochs(r), train_subset(r)) for r in rows}


def chosen(only: list[str] | None) -> list[tuple[str, str, int]]:
    """The strategies named by their labels (as in the tables), or all of them."""
    if only is None:
        return STRATEGIES
    by_label = {label({"sampler": s, "pruner": p, "patience": n}): (s, p, n)
                for s, p, n in STRATEGIES}
    unknown = sorted(set(only) - set(by_label))
    if unknown:
        raise SystemExit(f"unknown strategy {unknown[0]!r}; known: {', '.join(by_label)}")
    return [by_label[name] for name in only]


def run_all(names: list[str], seeds: list[int], out: Path, trials: int | None,
            strategies: list[tuple[str, str, int]], baseline: bool, epochs: int | None,
            subset: int | None = None, shapes_files: int = SHAPES_FILES) -> None:
    for name in names:
        # One file per task, so the tasks can run as two processes side by side.
        path = out / f"efficiency-{name}.jsonl"
        done = done_runs(path)
        task = tasks()[name]
        if trials is not None:
            task = dataclasses.replace(task, trials=trials)
        if epochs is not None:
            task = dataclasses.replace(task, epochs=epochs)
        if subset is not None:
            task = dataclasses.replace(task, data=dataclasses.replace(task.data,
                                                                      train_subset=subset))
        if name == "shapes":
            ensure_shapes(shapes_files)
            task = dataclasses.replace(task, data=dataclasses.replace(
                task.data, dataset=str(shapes_dir(shapes_files).resolve())))
        data = load_bundle(task.data)
        for seed in seeds:
            for sampler, pruner, patience in strategies:
                key = (name, sampler, pruner, patience, seed, task.trials, baseline, task.epochs,
                       task.data.train_subset)
                if key in done:
                    continue
                row = {"task": name,
                       **run_one(task, data, sampler, pruner, patience, seed, baseline)}
                with path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                last = row["trials"][-1]
                print(f"{name} seed {seed} {label(row)}: best {best(row):.4f}, "
                      f"epochs {last['epochs']}, wall {last['wall']:.0f} s, "
                      f"cpu {last['cpu']:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["digits", "shapes"],
                        choices=["digits", "shapes"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--trials", type=int,
                        help="override every task's trial count (smoke runs, equal-budget runs); "
                             "the tables list such runs apart, as '<strategy>, N trials'")
    parser.add_argument("--epochs", type=int,
                        help="override every task's epochs per trial (the pruners' maximum); "
                             "the tables list such runs apart, as '<strategy>, N epochs'")
    parser.add_argument("--train-subset", type=int, metavar="N",
                        help="train on a stratified N-image subset (shapes: 1000 unless given; "
                             "digits: all); the tables list such runs apart, as "
                             "'<strategy>, N train images'")
    parser.add_argument("--shapes-files", type=int, default=SHAPES_FILES, metavar="N",
                        help="generate the shapes tree with N training files (a quarter become "
                             f"validation) in data/bench-shapes-N; {SHAPES_FILES} is "
                             "data/bench-shapes. Use with --train-subset and an --out of its own")
    parser.add_argument("--strategies", nargs="+", metavar="LABEL",
                        help="only these, by table label (tpe+sha, gp+none, tpe+sha+patience2)")
    parser.add_argument("--baseline", action="store_true",
                        help="queue the textbook recipe as each study's first trial, as "
                             "search.run does by default; the tables add '+baseline'")
    parser.add_argument("--summary-only", action="store_true")
    args = parser.parse_args()
    strategies = chosen(args.strategies)
    if args.epochs is not None and args.epochs < 1:
        raise SystemExit(f"--epochs must be at least 1, got {args.epochs}")
    if args.train_subset is not None and args.train_subset < 2:
        raise SystemExit(f"--train-subset must be at least 2, got {args.train_subset}")
    if args.shapes_files < 40:
        raise SystemExit(f"--shapes-files must be at least 40, got {args.shapes_files}")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.summary_only:
        run_all(args.tasks, args.seeds, args.out, args.trials, strategies, args.baseline,
                args.epochs, args.train_subset, args.shapes_files)
    summarise(args.out)


if __name__ == "__main__":
    main()
