"""Framework overhead per trial (sampler + storage) at trial 10, 100 and 1,000, side by side.

A trivial objective samples our search space (model_space.sample_config), reports 8 epochs of
a made-up accuracy, asks the pruner after each and returns: everything a trial costs but the
training. Four setups advance in lockstep, one trial each in turn, so machine noise hits all:

- optuna-tpe-memory: Optuna's default TPESampler, in memory (Optuna quotes about 4 ms/trial);
- optuna-random-sqlite: RandomSampler on a plain SQLite URL (Optuna quotes about 10 ms);
- optuna-ours-sqlite: Optuna's own TPESampler with our settings (grouped multivariate, 10
  start-up trials) and our pruner on a plain SQLite URL, plain study.optimize: what a
  hand-written script with the same strategy would pay;
- cnn-search: the real path of `python -m search.run` (search.study.studies.open_storage with WAL and
  heartbeat, load_or_create, the trial gate with its lock, stale check and count, progress).

    python benchmarks/overhead.py [--trials 1000]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna

from model_space import SearchSpace, sample_config
from search.strategy.samplers import make_pruner
from search.study.gate import FileLock, _try_one
from search.study.progress import ProgressCallback
from search.study.spec import StudySpec
from search.study.storage import open_storage
from search.study.studies import load_or_create

EPOCHS = 8
SPACE = SearchSpace()
WINDOWS = {10: range(5, 15), 100: range(95, 105), 1000: range(990, 1000)}


def objective(trial: optuna.Trial) -> float:
    config = sample_config(trial, SPACE)
    peak = 1.0 - abs(math.log10(config.lr) + 2.0) / 4.0 - 0.2 * config.dropout
    for epoch in range(1, EPOCHS + 1):
        value = peak * (1.0 - 0.5**epoch)
        trial.report(value, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


class Setup:
    """One study advanced a trial at a time; ``seconds[i]`` is what trial i cost."""

    def __init__(self, name: str, step: Callable[[int], None]) -> None:
        self.name = name
        self.step = step
        self.seconds: list[float] = []

    def advance(self, i: int) -> None:
        started = time.perf_counter()
        self.step(i)
        self.seconds.append(time.perf_counter() - started)


def plain(name: str, storage: str | None, sampler: optuna.samplers.BaseSampler,
          pruner: optuna.pruners.BasePruner) -> Setup:
    study = optuna.create_study(storage=storage, sampler=sampler, pruner=pruner,
                                direction="maximize", study_name=name)
    return Setup(name, lambda i: study.optimize(objective, n_trials=1))


def stock_tpe() -> optuna.samplers.TPESampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=0, multivariate=True, group=True,
                                          n_startup_trials=10)


def ours(root: Path, target: int) -> Setup:
    url = f"sqlite:///{root / 'ours.db'}"
    storage = open_storage(url)
    study = load_or_create("ours", storage, StudySpec(), parallel=False)
    lock = FileLock(root / "ours.db.lock")
    progress = ProgressCallback(target, show=False)
    progress.start(0)

    def step(i: int) -> None:
        # One pass of optimize_to_target's loop: what the real run pays per trial (the gate's
        # lock, stale check and count, then the trial). Calling optimize_to_target for one
        # trial at a time would count a second gate pass per trial, the one that ends it.
        assert _try_one(study, objective, target, lock, None,
                        {"callbacks": [progress], "catch": ()}) == "ran"

    return Setup("cnn-search", step)


def measure(trials: int, root: Path) -> dict[str, dict[int, float]]:
    spec = StudySpec()
    setups = [
        plain("optuna-tpe-memory", None, optuna.samplers.TPESampler(seed=0),
              optuna.pruners.NopPruner()),
        plain("optuna-random-sqlite", f"sqlite:///{root / 'random.db'}",
              optuna.samplers.RandomSampler(seed=0), optuna.pruners.NopPruner()),
        plain("optuna-ours-sqlite", f"sqlite:///{root / 'plain.db'}", stock_tpe(),
              make_pruner(spec.pruner, EPOCHS)),
        ours(root, trials),
    ]
    for i in range(trials):
        for setup in setups:
            setup.advance(i)
        if (i + 1) % 100 == 0:
            print(f"{i + 1} trials: " + ", ".join(
                f"{s.name} {1000 * statistics.median(s.seconds[-20:]):.1f} ms" for s in setups),
                flush=True)
    return {s.name: {at: 1000 * statistics.median(s.seconds[j] for j in window)
                     for at, window in WINDOWS.items() if window.stop <= trials}
            for s in setups}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("reports/benchmarks"))
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(args.trials, Path(tmp))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "overhead.json").write_text(json.dumps(result, indent=1))
    print("ms per trial (median of 10 trials around each mark)")
    print("| setup | " + " | ".join(f"trial {at}" for at in WINDOWS) + " |")
    print("| --- |" + " --- |" * len(WINDOWS))
    for name, row in result.items():
        print(f"| {name} | " + " | ".join(f"{row.get(at, float('nan')):.1f}" for at in WINDOWS)
              + " |")


if __name__ == "__main__":
    main()
