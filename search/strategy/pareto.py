"""Pruning for multi-objective studies: successive halving on Pareto ranks.

Optuna's pruners serve single-objective studies only (``Trial.report`` refuses a study with
several directions). Here the costs (parameters, MACs, latency) are known before a trial
trains and never change; only its accuracy curve does. So at each rung step (1, 3, 9, ...
epochs with a reduction factor of 3) a trial is judged by the point (its accuracy at that
step, its costs) among every trial that reached the same step: the points are sorted into
non-dominated fronts, and the trial goes on if fewer than max(1, n // reduction_factor)
trials lie in fronts before its own. A cheap model is compared, in effect, with models at most
as costly; the best trial of each cost goes on, and so the front's cheap end is not pruned
away by accuracy alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.schema import VAL_CURVE

# A point to minimise in every coordinate: (-accuracy, cost, ...).
Point = tuple[float, ...]


def dominates(a: Point, b: Point) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and a != b


def front_ranks(points: Sequence[Point]) -> list[int]:
    """Each point's non-dominated front, 0 first (fast enough for the hundreds of trials a
    study holds: quadratic in them)."""
    ranks = [-1] * len(points)
    left = set(range(len(points)))
    rank = 0
    while left:
        front = {i for i in left if not any(dominates(points[j], points[i]) for j in left if j != i)}
        for i in front:
            ranks[i] = rank
        left -= front
        rank += 1
    return ranks


def promoted(me: Point, others: Sequence[Point], reduction_factor: int) -> bool:
    """Whether ``me`` is among the best max(1, n // reduction_factor) of all n points, by front."""
    points = [me, *others]
    ranks = front_ranks(points)
    ahead = sum(rank < ranks[0] for rank in ranks)
    return ahead < max(1, len(points) // reduction_factor)


def hypervolume_2d(points: Sequence[Point], reference: Point) -> float:
    """The area dominated by ``points`` (minimised in both coordinates) up to ``reference``."""
    inside = sorted(p for p in points if p[0] < reference[0] and p[1] < reference[1])
    area, best_y = 0.0, reference[1]
    for x, y in inside:  # sorted by the first coordinate: each step adds a slab
        if y < best_y:
            area += (reference[0] - x) * (best_y - y)
            best_y = y
    return area


class ParetoHalving:
    """Successive halving on Pareto ranks; asked by the objective after each epoch."""

    def __init__(self, costs: tuple[str, ...], min_resource: int = 1,
                 reduction_factor: int = 3) -> None:
        self.costs = costs
        self.min_resource = min_resource
        self.reduction_factor = reduction_factor

    def is_rung(self, step: int) -> bool:
        rung = self.min_resource
        while rung < step:
            rung *= self.reduction_factor
        return rung == step

    def point(self, accuracy: float, trial_costs: dict[str, float]) -> Point:
        return (-accuracy, *(float(trial_costs[name]) for name in self.costs))

    def should_prune(self, study: optuna.Study, number: int, step: int, accuracy: float,
                     trial_costs: dict[str, float]) -> bool:
        if not self.is_rung(step):
            return False
        others = [p for t in study.get_trials(deepcopy=False) if t.number != number
                  for p in [self._point_at(t, step)] if p is not None]
        return not promoted(self.point(accuracy, trial_costs), others, self.reduction_factor)

    def _point_at(self, trial: FrozenTrial, step: int) -> Point | None:
        if trial.state == TrialState.FAIL:
            return None
        curve = trial.user_attrs.get(VAL_CURVE)
        if not isinstance(curve, list) or len(curve) < step:
            return None
        try:
            return self.point(float(curve[step - 1]),
                              {name: float(trial.user_attrs[name]) for name in self.costs})
        except (KeyError, TypeError, ValueError):
            return None  # a trial written by hand or by an older version: not a competitor
