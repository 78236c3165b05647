"""Successive halving on Pareto ranks, and the 2-D hypervolume the benchmark measures with."""

from __future__ import annotations

import pytest

from search.strategy.pareto import ParetoHalving, front_ranks, hypervolume_2d, promoted


def test_front_ranks_sorts_points_into_non_dominated_fronts() -> None:
    # (-accuracy, cost): a and b trade off, c is dominated by a only, d by everything.
    a, b, c, d = (-0.9, 10.0), (-0.8, 5.0), (-0.85, 12.0), (-0.5, 20.0)
    assert front_ranks([a, b, c, d]) == [0, 0, 1, 2]
    assert front_ranks([a, a]) == [0, 0]  # equal points do not dominate each other


def test_a_cheap_trial_survives_what_accuracy_alone_would_prune() -> None:
    # Three costly accurate trials and one cheap weak one: successive halving on accuracy
    # would keep only the best third; on Pareto ranks the cheap one is on the first front.
    others = [(-0.95, 50_000.0), (-0.94, 60_000.0), (-0.93, 70_000.0)]
    assert promoted((-0.60, 800.0), others, reduction_factor=3)
    # A costlier, weaker trial is dominated by the first of them and goes.
    assert not promoted((-0.90, 55_000.0), others, reduction_factor=3)


def test_promotion_keeps_the_best_third_by_front() -> None:
    # Nine points on nine fronts (each dominated by the one before): the best three go on.
    chain = [(-1.0 + i / 10, float(i)) for i in range(9)]
    kept = [promoted(p, [q for q in chain if q != p], 3) for p in chain]
    assert kept == [True] * 3 + [False] * 6


def test_rungs_are_the_successive_halving_steps() -> None:
    halving = ParetoHalving(("n_params",))
    assert [s for s in range(1, 30) if halving.is_rung(s)] == [1, 3, 9, 27]


def test_hypervolume_2d_is_the_dominated_area() -> None:
    reference = (0.0, 10.0)
    # One point (-0.5, 4): a rectangle 0.5 x 6.
    assert hypervolume_2d([(-0.5, 4.0)], reference) == pytest.approx(3.0)
    # Adding (-0.8, 8) adds the slab 0.3 x 2; a dominated point adds nothing.
    assert hypervolume_2d([(-0.5, 4.0), (-0.8, 8.0), (-0.4, 9.0)], reference) == pytest.approx(3.6)
    assert hypervolume_2d([(0.5, 4.0)], reference) == 0.0  # beyond the reference point
