"""The headline benchmark: `python -m search.run --trials 100` on digits, over several seeds.

Each seed runs the real CLI in a fresh directory (cold start included) and reads back the
study: wall seconds, epochs trained, best validation accuracy, pruned share.

    python benchmarks/digits_search.py [--seeds 0 1 2] [--trials 100] [-- extra run flags]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState


def one_run(seed: int, trials: int, extra: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "search.run", "--trials", str(trials), "--seed",
                        str(seed), "--quiet", *extra], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        study = optuna.load_study(study_name="digits",
                                  storage=f"sqlite:///{Path(tmp) / 'studies' / 'digits.db'}")
        trials_ = study.get_trials()
        return {
            "wall_s": wall,
            "epochs": sum(t.user_attrs.get("epochs_run", 0) for t in trials_),
            "best_val": study.best_value,
            "pruned": sum(t.state == TrialState.PRUNED for t in trials_) / len(trials_),
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("extra", nargs="*", help="flags passed on to search.run (after --)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    for seed in args.seeds:
        row = one_run(seed, args.trials, args.extra)
        rows.append(row)
        print(f"seed {seed}: wall {row['wall_s']:.1f} s, epochs {row['epochs']:.0f}, "
              f"best val {row['best_val']:.4f}, pruned {row['pruned']:.0%}", flush=True)
    for key in ("wall_s", "epochs", "best_val", "pruned"):
        values = [r[key] for r in rows]
        print(f"median {key}: {statistics.median(values):.4g} (min {min(values):.4g}, "
              f"max {max(values):.4g})")


if __name__ == "__main__":
    main()
