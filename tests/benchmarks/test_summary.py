"""The efficiency tables' readings of the logs: best within a budget, and the pruning ratios."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from efficiency_summary import best_within, label, pruning_ratios  # noqa: E402


def run(pruner: str, trials: list[tuple[int, float | None]]) -> dict:
    """A logged digits run: (cumulative epochs, value) per finished trial."""
    return {"task": "digits", "sampler": "tpe", "pruner": pruner, "patience": 0,
            "trials": [{"epochs": e, "wall": e, "cpu": e, "value": v} for e, v in trials]}


def test_best_within_counts_only_trials_finished_by_the_budget() -> None:
    logged = run("sha", [(1, 0.5), (4, None), (12, 0.9), (20, 0.95)])
    assert best_within(logged, 11, "epochs") == 0.5
    assert best_within(logged, 12, "epochs") == 0.9
    assert best_within(logged, 100, "epochs") == 0.95


def test_pruning_ratio_line_gives_the_best_by_a_third_of_the_unpruned_spend() -> None:
    unpruned = run("none", [(8, 0.8), (16, 0.9), (24, 0.95), (32, 0.97)])
    # A third of 32 epochs is 10.7: the pruned run had 0.93 by then, 0.97 only later.
    pruned = run("sha", [(1, 0.6), (9, 0.93), (10, 0.5), (14, 0.97)])
    lines = pruning_ratios({label(unpruned): [unpruned], label(pruned): [pruned]})
    assert lines == ["- tpe+sha, 4 trials: 14 / 32 epochs = 0.44 of tpe+none, 4 trials; best val "
                     "0.9700 vs 0.9700; "
                     "to reach 0.9700: 14 vs 32 epochs = 0.44; best by a third of its epochs "
                     "(11): 0.9300"]


def test_runs_of_another_length_or_data_size_are_labelled_apart() -> None:
    shapes = {"task": "shapes", "sampler": "tpe", "pruner": "hyperband", "patience": 0,
              "baseline": True, "trials": [{}] * 40}
    assert label(shapes) == "tpe+hyperband+baseline"
    assert label({**shapes, "max_epochs": 24, "train_subset": 2000}) == (
        "tpe+hyperband+baseline, 24 epochs, 2000 train images")
