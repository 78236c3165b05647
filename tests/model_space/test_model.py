from __future__ import annotations

import pytest
import torch

from model_space import OPTIMIZERS, TrialConfig, build_model, build_optimizer

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 64, 64), (3, 17, 45)]


def config(depth: int, optimizer: str = "adam") -> TrialConfig:
    return TrialConfig(widths=(16, 32, 64, 128, 16, 8)[:depth], optimizer=optimizer, lr=1e-3,
                       weight_decay=1e-4, dropout=0.3, batch_size=32, momentum=0.9, beta1=0.9)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("depth", [1, 2, 3, 4, 6])
def test_build_model_forward_works_for_every_depth_and_shape(
    depth: int, shape: tuple[int, int, int]
) -> None:
    # Rule: the net sizes itself from the input shape; logits are (batch, n_classes).
    model = build_model(config(depth), shape, n_classes=7)
    out = model(torch.randn(3, *shape))
    assert out.shape == (3, 7)
    assert torch.isfinite(out).all()


def test_build_model_is_pure_and_on_cpu() -> None:
    # Rule: building twice under one seed gives the same weights, on the CPU, with no side effects.
    torch.manual_seed(0)
    a = build_model(config(3), (1, 8, 8), 10)
    torch.manual_seed(0)
    b = build_model(config(3), (1, 8, 8), 10)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert pa.device.type == "cpu"
        assert torch.equal(pa, pb)


def test_build_model_rejects_a_single_class() -> None:
    # Rule: a classifier needs at least two classes.
    with pytest.raises(ValueError, match="1 classes"):
        build_model(config(1), (1, 8, 8), 1)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_build_optimizer_takes_a_step_for_every_optimizer(name: str) -> None:
    # Rule: every optimizer in the table builds from a config and updates the weights.
    cfg = config(1, name)
    model = build_model(cfg, (1, 8, 8), 10)
    optimizer = build_optimizer(cfg, model.parameters())
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.randn(4, 1, 8, 8)).sum().backward()
    optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
