"""What a warm start saves: a search warm-started from a finished study on smaller data, against
the same search started cold, in epochs to reach the cold search's final median best.

Per seed, in a folder of its own: a finished study ``src`` on the source data (seed S), then on
the target data a cold search and one warm-started search per K in --tops (``--warm-start src
--warm-start-top K``), all with seed S + 100 and the defaults otherwise (the real CLI, cold start
included). Each search's best val accuracy is followed trial by trial against the epochs it has
trained (pruned trials count the epochs they trained). The figure: the epochs a search needs to
reach the cold searches' final median best, as a share of the cold search's epochs (median over
seeds; "never" where it does not get there). Phase by phase over the seeds: the source studies,
the cold searches, then each warm search, run --stage trials at a time until it reaches the cold
searches' median best or has trained --budget of the cold search's epochs (what it would do after
that does not change the figure, and on a CPU the hours matter: --budget 0.5 stops each warm
search where the issue's bound, half the cold search's epochs, is missed whatever follows).

The issue's figure (shapes, 2,000 -> 6,000 images, 3 seeds):

    python benchmarks/shapes.py data/shapes-2000 --n 2000
    python benchmarks/shapes.py data/shapes-6000 --n 6000 --seed 1
    python benchmarks/warm_start.py --source data/shapes-2000 --target data/shapes-6000 \\
        --source-trials 40 --trials 30 --tops 5 --seeds 0 1 2

Whether a same-data source should also inform the sampler directly (--informed: the source
study copied and run on, so TPE sees all its finished trials), on the bundled digits:

    python benchmarks/warm_start.py --source digits --target digits --source-trials 30 \\
        --trials 30 --tops 5 --informed --seeds 0 1 2

The default K (search.study.spec.DEFAULT_WARM_START_TOP), on the bundled digits:

    python benchmarks/warm_start.py --source digits --target digits --source-trials 30 \\
        --trials 30 --tops 1 3 5 10 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

TARGET_SEED_OFFSET = 100  # the target searches must not replay the source's draws


def search(folder: Path, study: str, dataset: str, trials: int, seed: int, extra: list[str],
           data_dir: Path, skip: int = 0) -> list[tuple[int, float]]:
    """Run one search; its (epochs trained so far, best val accuracy so far) after each trial,
    leaving out its first ``skip`` trials (copied in, not run here)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "search.run", "--dataset", dataset, "--study", study,
                    "--trials", str(trials), "--seed", str(seed), "--data-dir", str(data_dir),
                    "--quiet", *extra], cwd=folder, check=True, stdout=subprocess.DEVNULL)
    loaded = optuna.load_study(study_name=study,
                               storage=f"sqlite:///{folder / 'studies' / study}.db")
    curve, epochs, best = [], 0, 0.0
    for t in sorted(loaded.get_trials(deepcopy=False), key=lambda t: t.number)[skip:]:
        epochs += int(t.user_attrs.get("epochs_run", 0))
        if t.state == TrialState.COMPLETE and t.values:
            best = max(best, t.values[0])
        curve.append((epochs, best))
    print(f"{time.strftime('%H:%M:%S')} {study} seed {seed}: best {best:.4f} after {epochs} "
          f"epochs, {time.perf_counter() - started:.0f} s", flush=True)
    return curve


def epochs_to(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((epochs for epochs, best in curve if best >= target), None)


def trials_to(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((i + 1 for i, (_, best) in enumerate(curve) if best >= target), None)


def run_seeds(pool: concurrent.futures.Executor, task: Any, seeds: list[int]) -> dict[int, Any]:
    futures = {seed: pool.submit(task, seed) for seed in seeds}
    return {seed: future.result() for seed, future in futures.items()}


def warm(folder: Path, args: argparse.Namespace, seed: int, k: int, epochs: list[str],
         data_dir: Path, target: float, cold_epochs: int) -> list[tuple[int, float]]:
    """The warm-started search, run --stage trials at a time (the study resumed each time, as
    any search raised with --trials) until it reaches ``target``, has trained --budget of the
    cold search's epochs, or has run --trials: what it does after that does not change the figure."""
    name, done = f"warm-{k}", 0
    extra = [*epochs, "--warm-start", "src", "--warm-start-top", str(k)]
    while True:
        done = min(args.trials, done + args.stage)
        curve = search(folder, name, args.target, done, seed, extra, data_dir)
        extra = epochs  # the warm start applies to a new study only
        if (done >= args.trials or curve[-1][1] >= target
                or curve[-1][0] >= args.budget * cold_epochs):
            return curve


def informed(folder: Path, args: argparse.Namespace, seed: int, epochs: list[str],
             data_dir: Path) -> list[tuple[int, float]]:
    """The source study copied whole, then run on for --trials more: its sampler sees every
    finished source trial (only meaningful on the same data and split). Its sampler seed
    differs from the source's (search.study.studies.sampler_seed counts the trials there)."""
    studies = folder / "studies"
    optuna.copy_study(from_study_name="src", from_storage=f"sqlite:///{studies / 'src'}.db",
                      to_storage=f"sqlite:///{studies / 'informed'}.db", to_study_name="informed")
    copied = optuna.load_study(study_name="informed", storage=f"sqlite:///{studies / 'informed'}.db")
    finished = len(copied.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    return search(folder, "informed", args.target, finished + args.trials, seed, epochs, data_dir,
                  skip=len(copied.get_trials(deepcopy=False)))


def _cell(value: float | None, fmt: str) -> str:
    return "never" if value is None else format(value, fmt)


def _median(shares: list[float | None]) -> float | None:
    # A search that never got there counts as the slowest; the median may still be reached.
    median = statistics.median(float("inf") if v is None else v for v in shares)
    return None if median == float("inf") else median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="digits", help="the earlier study's dataset")
    parser.add_argument("--target", default="digits", help="the new searches' dataset")
    parser.add_argument("--source-trials", type=int, default=30)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--tops", type=int, nargs="+", default=[1, 3, 5, 10])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1,
                        help="seeds run side by side (each search with OMP_NUM_THREADS=1 is wise)")
    parser.add_argument("--informed", action="store_true",
                        help="also run the source study on (same data only): its finished trials "
                        "inform the sampler directly")
    parser.add_argument("--epochs", type=int, help="max epochs per trial, every search (default: "
                        "each study's own, sized from its data); for a quick, smaller run")
    parser.add_argument("--stage", type=int, default=5,
                        help="a warm search runs this many trials at a time and stops once it has "
                        "reached the cold searches' median best or trained --budget of the cold search's "
                        "epochs")
    parser.add_argument("--budget", type=float, default=1.0,
                        help="a warm search also stops once it has trained this share of the cold "
                        "search's epochs (0.5: the issue's bound)")
    parser.add_argument("--workdir", type=Path,
                        help="a folder per seed with its studies, kept (default: a new temporary one)")
    parser.add_argument("--data-dir", type=Path, default=Path("data").resolve(),
                        help="decode cache, shared by every search (default data/)")
    args = parser.parse_args()
    if not 0 < args.budget <= 1:
        parser.error(f"--budget must be a share of the cold search's epochs in (0, 1], got "
                     f"{args.budget:g}")
    # Each search runs in a folder of its own: a tree given relative to here must be found there.
    args.source, args.target = (str(Path(d).resolve()) if Path(d).is_dir() else d
                                for d in (args.source, args.target))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args.workdir = args.workdir or Path(tempfile.mkdtemp(prefix="warm-start-"))
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"studies in {args.workdir}", flush=True)
    folders = {seed: args.workdir / f"seed-{seed}" for seed in args.seeds}
    data_dir, epochs = args.data_dir.resolve(), (["--epochs", str(args.epochs)] if args.epochs else [])
    # Seeds side by side (--jobs), phase by phase: the figure counts epochs, which other work
    # does not change, and the warm searches need every cold search's best first.
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for folder in folders.values():
            folder.mkdir(exist_ok=True)
        run_seeds(pool, lambda s: search(folders[s], "src", args.source, args.source_trials, s,
                                         epochs, data_dir), args.seeds)
        cold = run_seeds(pool, lambda s: search(folders[s], "cold", args.target, args.trials,
                                                s + TARGET_SEED_OFFSET, epochs, data_dir), args.seeds)
        runs = {seed: {"cold": cold[seed]} for seed in args.seeds}
        target = statistics.median(cold[s][-1][1] for s in args.seeds)
        for k in args.tops:
            curves = run_seeds(pool, lambda s, k=k: warm(folders[s], args, s + TARGET_SEED_OFFSET, k,
                                                    epochs, data_dir, target, cold[s][-1][0]),
                               args.seeds)
            for seed, curve in curves.items():
                runs[seed][f"warm K={k}"] = curve
        if args.informed:
            for seed, curve in run_seeds(pool, lambda s: informed(folders[s], args, s, epochs,
                                                                  data_dir), args.seeds).items():
                runs[seed]["informed"] = curve
    print(f"\ncold searches' final median best: {target:.4f}\n")
    print("| search | " + " | ".join(f"seed {s}: epochs (trials) to it / cold epochs"
                                     for s in args.seeds) + " | median share |")
    print("| --- |" + " --- |" * (len(args.seeds) + 1))
    for name in runs[args.seeds[0]]:
        shares, cells = [], []
        for s in args.seeds:
            cold_epochs = runs[s]["cold"][-1][0]
            reached = epochs_to(runs[s][name], target)
            share = None if reached is None else reached / cold_epochs
            shares.append(share)
            cells.append(f"{_cell(reached, 'd')} ({_cell(trials_to(runs[s][name], target), 'd')}) "
                         f"/ {cold_epochs} = {_cell(share, '.2f')}")
        print(f"| {name} | " + " | ".join(cells) + f" | {_cell(_median(shares), '.2f')} |")


if __name__ == "__main__":
    main()
