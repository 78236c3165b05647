"""What experiment tracking costs: the default digits search (`python -m search.run --trials 100`)
with no tracker, with `--track mlflow` and with `--track tensorboard`, side by side.

Each run is the real CLI in a fresh folder (cold start included), as in digits_search.py. For
each seed every variant runs once, the order rotating from seed to seed (the machine warms and
cools, and other work comes and goes); a seed's variants train the same trials (CPU training
is bit-reproducible), which the script checks by the epochs each trained. MLflow logs to its
default store, ./mlflow.db: "mlflow" finds the store made beforehand (untimed), as a team's
store is; "mlflow, new store" makes it, which mlflow does once per store (creating its tables).
After each tracked run the script counts what the tracker holds: one run or folder per trial.
Beside the wall time it prints the CPU time of the whole process tree (the search and its
tracker host), which moves less than wall time on a machine shared with other work.

    python benchmarks/tracking_cost.py [--seeds 0 1 2] [--repeats 1] [--trials 100] \
        [--variants none mlflow ...] [--epochs N] [--pruner none]

--epochs and --pruner make the search's trials longer than the default's (0.3-2 s on digits),
to measure what tracking costs a study whose trials last seconds, as on photos.

A variant written VARIANT@PATH runs from the checkout at PATH (PYTHONPATH), to set a change
side by side with the commit before it. With --repeats R every seed runs R rounds (the order
still rotating each round): on an idle 2-core VM one search moves by up to 20% from run to run,
so a 5% effect needs many rounds.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from search.strategy.samplers import PRUNER_NAMES

VARIANTS = {
    "none": [],
    "mlflow": ["--track", "mlflow"],
    "mlflow, new store": ["--track", "mlflow"],
    "tensorboard": ["--track", "tensorboard"],
}


def make_store(folder: Path) -> None:
    """mlflow.db with MLflow's tables, as a store that has been used before has them."""
    subprocess.run([sys.executable, "-c", "from mlflow import MlflowClient; "
                    "MlflowClient('sqlite:///mlflow.db').search_experiments()"],
                   cwd=folder, check=True, capture_output=True)


def tracked(variant: str, folder: Path) -> int:
    """How many trials the variant's tracker holds (-1: no tracker)."""
    if variant.startswith("mlflow"):
        from mlflow import MlflowClient

        client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("digits")
        runs = client.search_runs([experiment.experiment_id], "tags.`cnn_search.role` = 'trial'",
                                  max_results=10_000)
        return len(runs)
    if variant == "tensorboard":
        return sum(1 for p in (folder / "runs" / "digits").iterdir() if p.is_dir())
    return -1


def one_run(label: str, seed: int, trials: int, extra: list[str]) -> dict[str, float]:
    variant, _, code = label.partition("@")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if variant == "mlflow":
            make_store(folder)
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        if code:  # another checkout's code (a git worktree), side by side with this one's
            env["PYTHONPATH"] = str(Path(code).resolve())
        cpu_before = _children_cpu()
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "search.run", "--trials", str(trials), "--seed",
                        str(seed), "--quiet", *extra, *VARIANTS[variant]], cwd=folder, check=True,
                       stdout=subprocess.DEVNULL, env=env)
        wall = time.perf_counter() - started
        cpu = _children_cpu() - cpu_before
        study = optuna.load_study(study_name="digits",
                                  storage=f"sqlite:///{folder / 'studies' / 'digits.db'}")
        epochs = sum(t.user_attrs.get("epochs_run", 0) for t in study.get_trials())
        return {"wall_s": wall, "cpu_s": cpu, "epochs": epochs, "tracked": tracked(variant, folder),
                "trials": len(study.get_trials())}


def _children_cpu() -> float:
    """User + system CPU seconds of every finished child process, and theirs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=1, help="rounds per seed")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS),
                        help=f"of {', '.join(VARIANTS)}; VARIANT@PATH runs it from the checkout "
                        "at PATH (a git worktree of another commit)")
    parser.add_argument("--epochs", type=int, help="max epochs per trial (default: the study's)")
    parser.add_argument("--pruner", choices=PRUNER_NAMES,
                        help="the search's pruner (default: the study's)")
    args = parser.parse_args()
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    extra = [*(["--epochs", str(args.epochs)] if args.epochs else []),
             *(["--pruner", args.pruner] if args.pruner else [])]
    for label in args.variants:
        if label.partition("@")[0] not in VARIANTS:
            parser.error(f"unknown variant {label!r}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rounds = [seed for seed in args.seeds for _ in range(args.repeats)]
    walls: dict[str, dict[int, float]] = {v: {} for v in args.variants}
    cpus: dict[str, dict[int, float]] = {v: {} for v in args.variants}
    for i, seed in enumerate(rounds):
        order = args.variants[i % len(args.variants):] + args.variants[:i % len(args.variants)]
        epochs = set()
        for variant in order:
            row = one_run(variant, seed, args.trials, extra)
            walls[variant][i], cpus[variant][i] = row["wall_s"], row["cpu_s"]
            epochs.add(row["epochs"])
            print(f"{time.strftime('%H:%M:%S')} seed {seed} {variant}: wall {row['wall_s']:.1f} s, "
                  f"cpu {row['cpu_s']:.1f} s, "
                  f"epochs {row['epochs']}, trials {row['trials']}, tracked {row['tracked']}",
                  flush=True)
        if len(epochs) != 1:
            print(f"seed {seed}: the variants trained different epochs {sorted(epochs)}", flush=True)
    for label, table in (("wall", walls), ("CPU", cpus)):
        print(f"\n{label} seconds\n\n| variant | " + " | ".join(f"seed {s}" for s in rounds)
              + " | median ratio to none |")
        print("| --- |" + " --- |" * (len(rounds) + 1))
        for variant in args.variants:
            ratios = ([table[variant][i] / table["none"][i] for i in range(len(rounds))]
                      if "none" in table else [])
            median = f"{statistics.median(ratios):.3f}" if ratios else "-"
            cells = " | ".join(f"{table[variant][i]:.1f}" for i in range(len(rounds)))
            print(f"| {variant} | {cells} | {median} |")


if __name__ == "__main__":
    main()
