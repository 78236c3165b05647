"""What a model costs where it will run, measured before it trains: parameters, multiply-
accumulates per image and inference latency.

- Parameters: every trainable and frozen tensor's elements (model_space.count_parameters).
- MACs: from the layer shapes of one forward pass of one image in evaluation mode, through
  forward hooks: a convolution costs (output elements) x (input channels / groups) x (kernel
  area), a linear layer (rows) x in x out. These are nearly all of a CNN's arithmetic; batch
  norm, ReLU, pooling and the residual additions are not counted. A model with test-time flips
  runs twice, and is counted twice. The count equals torch's FlopCounterMode's halved (tested);
  that counter costs 80-140 ms a trial here, the hooks under a millisecond.
- Latency: the median wall time of ``repeats`` forward passes of a batch of ``batch`` float
  images on ``device`` in evaluation mode under torch.inference_mode, after ``warmup`` passes
  that are not timed; on the CPU with ``threads`` torch threads (1 by default: a served
  model shares its machine), restored afterwards; on CUDA synchronised around each pass.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from model_space import SearchSpace, TrialConfig, build_model, count_parameters
from search.study.spec import LIMIT_OF, StudySpec

WARMUP = 3
REPEATS = 15


@dataclass(frozen=True)
class LatencySetup:
    """How latency is measured: on which device, at which batch size, with how many threads."""

    device: str = "cpu"
    batch: int = 1
    threads: int = 1

    def describe(self) -> str:
        threads = f", {self.threads} thread{'s' if self.threads > 1 else ''}" \
            if self.device == "cpu" else ""
        return f"{self.device}, batch {self.batch}{threads}"


@dataclass(frozen=True)
class Costs:
    n_params: int
    macs: int
    latency_ms: float

    def value(self, name: str) -> float:
        """The cost named as an objective or a limit: n_params, macs or latency_ms."""
        return float(getattr(self, name))


@contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


@contextmanager
def _threads(count: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def count_macs(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Multiply-accumulates of one image's forward pass in evaluation mode."""
    device = next(model.parameters()).device
    total = [0]

    def conv(layer: nn.Module, _: object, out: torch.Tensor) -> None:
        assert isinstance(layer, nn.Conv2d)
        kernel = layer.kernel_size[0] * layer.kernel_size[1]
        total[0] += out.numel() * (layer.in_channels // layer.groups) * kernel

    def linear(layer: nn.Module, _: object, out: torch.Tensor) -> None:
        assert isinstance(layer, nn.Linear)
        total[0] += out.numel() * layer.in_features

    hooks = [m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else linear)
             for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    try:
        with _evaluating(model):
            model(torch.zeros((1, *input_shape), device=device))
    finally:
        for hook in hooks:
            hook.remove()
    return total[0]


def measure_latency(model: nn.Module, input_shape: tuple[int, int, int], setup: LatencySetup,
                    warmup: int = WARMUP, repeats: int = REPEATS) -> float:
    """Median milliseconds of one forward pass of ``setup.batch`` images (see the module doc).

    The model is moved to the latency device for the measurement and back afterwards.
    """
    home = next(model.parameters()).device
    device = torch.device(setup.device)
    model.to(device)
    x = torch.zeros((setup.batch, *input_shape), device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    try:
        with _evaluating(model), _threads(setup.threads):
            for i in range(warmup + repeats):
                sync()
                started = time.perf_counter()
                model(x)
                sync()
                if i >= warmup:
                    times.append(time.perf_counter() - started)
    finally:
        model.to(home)
    return round(statistics.median(times) * 1000, 4)


def measure(model: nn.Module, input_shape: tuple[int, int, int], setup: LatencySetup) -> Costs:
    return Costs(n_params=count_parameters(model), macs=count_macs(model, input_shape),
                 latency_ms=measure_latency(model, input_shape, setup))


def _cheapest_candidates(space: SearchSpace) -> list[TrialConfig]:
    """The space's configurations that could be its cheapest: every depth, the narrowest
    width, the fewest convs, with and without width doubling, test-time flips off if allowed.
    Costs grow with width and convs, so the cheapest configuration is among these."""
    narrow = min(space.widths)
    tta = all(space.tta_flip) and False not in space.augment
    candidates = []
    for depth in range(space.depth[0], space.depth[1] + 1):
        for doubling in space.width_doubling:
            widths = tuple(narrow * 2**i if doubling else narrow for i in range(depth))
            candidates.append(TrialConfig(widths=widths, optimizer="sgd", lr=0.1, weight_decay=0.0,
                                          dropout=0.0, batch_size=1, convs=min(space.convs),
                                          tta_flip=tta))
    return candidates


def smallest(space: SearchSpace, input_shape: tuple[int, int, int], n_classes: int,
             setup: LatencySetup) -> dict[str, float]:
    """The least each cost can be in ``space``: n_params and macs exactly, latency_ms measured
    on the configuration with the fewest MACs."""
    models = [build_model(c, input_shape, n_classes) for c in _cheapest_candidates(space)]
    params = [count_parameters(m) for m in models]
    macs = [count_macs(m, input_shape) for m in models]
    fastest = models[macs.index(min(macs))]
    return {"n_params": min(params), "macs": min(macs),
            "latency_ms": measure_latency(fastest, input_shape, setup)}


def _given(params: dict[str, Any], name: str, choices: tuple[Any, ...]) -> Any:
    """A drawn parameter, or the only choice a space leaves (never drawn); KeyError if neither."""
    return choices[0] if len(choices) == 1 else params[name]


def architecture(params: dict[str, Any], space: SearchSpace) -> TrialConfig | None:
    """The model a draw (``trial.params``, or part of them) describes; None where the draw lacks
    a parameter the model needs. The optimizer and its settings are placeholders: they cost
    nothing at inference. Mirrors model_space's sample_config."""
    try:
        low, high = space.depth
        depth = low if low == high else int(params["depth"])
        if _given(params, "width_doubling", space.width_doubling):
            first = _given(params, "width_0", space.widths)
            widths = tuple(first * 2**i for i in range(depth))
        else:
            widths = tuple(_given(params, f"width_{i}", space.widths) for i in range(depth))
        convs = _given(params, "convs", space.convs)
        augment = _given(params, "augment", space.augment)
        return TrialConfig(widths=widths, optimizer="sgd", lr=0.1, weight_decay=0.0, dropout=0.0,
                           batch_size=1, convs=convs,
                           residual=convs > 1 and _given(params, "residual", space.residual),
                           augment=augment,
                           tta_flip=augment and _given(params, "tta_flip", space.tta_flip))
    except KeyError:
        return None


def over_limit(costs: Costs, limits: dict[str, float]) -> str | None:
    """Why a model may not be trained (the first limit it breaks), or None when it fits."""
    for cost, limit in limits.items():
        if costs.value(cost) > limit:
            return f"{cost} {costs.value(cost):,g} > {LIMIT_OF[cost]} {limit:,g}"
    return None


def latency_setup(spec: StudySpec) -> LatencySetup:
    return LatencySetup(spec.latency_device, spec.latency_batch, spec.latency_threads)


def limit_check(spec: StudySpec, input_shape: tuple[int, int, int],
                n_classes: int) -> Callable[[dict[str, Any]], bool | None]:
    """Whether a draw's model fits the spec's limits (None: the draw lacks what it takes to
    tell), for search.strategy.feasible. Each distinct model is built and measured once."""
    limits, space, setup = spec.limits, spec.space, latency_setup(spec)
    known: dict[tuple[Any, ...], bool] = {}

    def fits(params: dict[str, Any]) -> bool | None:
        config = architecture(params, space)
        if config is None:
            return None
        key = (config.widths, config.convs, config.residual, config.tta_flip)
        if key not in known:
            model = build_model(config, input_shape, n_classes)
            costs = measure(model, input_shape, setup) if "latency_ms" in limits else Costs(
                count_parameters(model), count_macs(model, input_shape), 0.0)
            known[key] = over_limit(costs, limits) is None
        return known[key]

    return fits


def _draw_architecture(space: SearchSpace, rng: random.Random) -> dict[str, Any]:
    """Uniformly random values of the parameters that shape a model, named as sample_config
    names them, and only those it would ask for."""
    params: dict[str, Any] = {}

    def draw(name: str, choices: Sequence[Any]) -> Any:
        value = rng.choice(choices)
        if len(choices) > 1:  # a single choice is never asked for (see _given)
            params[name] = value
        return value

    low, high = space.depth
    depth = rng.randint(low, high)
    if low != high:
        params["depth"] = depth
    doubling = draw("width_doubling", space.width_doubling)
    for i in range(1 if doubling else depth):
        draw(f"width_{i}", space.widths)
    if draw("convs", space.convs) > 1:
        draw("residual", space.residual)
    if len(space.tta_flip) > 1:
        params["tta_flip"] = False  # asked only of augmented trials; never costs more unasked
    return params


def feasible_starts(spec: StudySpec, input_shape: tuple[int, int, int], n_classes: int, count: int,
                    seed: int) -> list[dict[str, Any]]:
    """Up to ``count`` random model shapes within the spec's limits (partial trial params: the
    rest is the sampler's), drawn with rejection, at most 50 draws per shape."""
    fits = limit_check(spec, input_shape, n_classes)
    rng = random.Random(seed)
    starts = []
    for _ in range(count * 50):
        params = _draw_architecture(spec.space, rng)
        if fits(params) and params not in starts:
            starts.append(params)
        if len(starts) == count:
            break
    return starts
