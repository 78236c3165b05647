"""Costs measured before training: parameters, MACs (checked against torch's own counter) and
latency; and the least a space can cost."""

from __future__ import annotations

import dataclasses

import optuna
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from model_space import PHOTO_SPACE, SearchSpace, build_model, count_parameters, sample_config
from search.training.costs import LatencySetup, count_macs, measure, measure_latency, smallest

PHOTOS = dataclasses.replace(SearchSpace(), **PHOTO_SPACE)


def sampled(space: SearchSpace, seed: int):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return sample_config(study.ask(), space)


@pytest.mark.parametrize(("space", "shape"), [(SearchSpace(), (1, 8, 8)), (PHOTOS, (3, 32, 32))])
def test_macs_equal_torch_flop_counter_halved(space: SearchSpace, shape) -> None:
    # Rule: our hook count is the maintained counter's (two FLOPs per multiply-accumulate),
    # for plain, residual, multi-conv and test-time-flip models alike.
    for seed in range(6):
        model = build_model(sampled(space, seed), shape, 10).eval()
        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            model(torch.zeros((1, *shape)))
        assert count_macs(model, shape) == counter.get_total_flops() // 2


def test_latency_is_measured_in_eval_mode_and_restores_the_model() -> None:
    model = build_model(sampled(SearchSpace(), 0), (1, 8, 8), 10).train()
    threads = torch.get_num_threads()
    costs = measure(model, (1, 8, 8), LatencySetup(threads=1))
    assert costs.latency_ms > 0 and costs.n_params == count_parameters(model)
    assert model.training and torch.get_num_threads() == threads
    # A batch of 64 costs more than a batch of 1 (the median of 15 runs after 3 warm-ups).
    big = measure_latency(model, (1, 8, 8), LatencySetup(batch=64))
    assert big > costs.latency_ms


def test_smallest_is_at_most_every_sampled_configuration() -> None:
    least = smallest(SearchSpace(), (1, 8, 8), 10, LatencySetup())
    for seed in range(20):
        model = build_model(sampled(SearchSpace(), seed), (1, 8, 8), 10)
        assert least["n_params"] <= count_parameters(model)
        assert least["macs"] <= count_macs(model, (1, 8, 8))
    # Depth 1, width 16, one conv: the cheapest model of the default space.
    assert least["n_params"] == 826


@pytest.mark.parametrize(("space", "shape", "limit"), [(SearchSpace(), (1, 8, 8), 20_000),
                                                       (PHOTOS, (3, 32, 32), 100_000)])
def test_feasible_starts_are_distinct_shapes_within_the_limit(space, shape, limit) -> None:
    from search.study.spec import StudySpec
    from search.training.costs import architecture, feasible_starts

    spec = StudySpec(space=space, max_params=limit)
    starts = feasible_starts(spec, shape, 10, count=10, seed=0)
    assert len(starts) == 10 and all(starts.count(s) == 1 for s in starts)
    for params in starts:
        config = architecture(params, space)
        assert config is not None  # every parameter that shapes the model is there
        assert count_parameters(build_model(config, shape, 10)) <= limit
