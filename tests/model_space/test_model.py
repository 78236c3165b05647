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


def photo(convs: int, residual: bool = False, tta_flip: bool = False) -> TrialConfig:
    return TrialConfig(widths=(8, 16), optimizer="sgd", lr=0.1, weight_decay=5e-4, dropout=0.0,
                       batch_size=32, momentum=0.9, nesterov=True, augment=True, convs=convs,
                       residual=residual, tta_flip=tta_flip)


@pytest.mark.parametrize("convs", [1, 2, 3])
@pytest.mark.parametrize("residual", [False, True])
def test_blocks_hold_convs_layers_with_an_optional_residual(convs: int, residual: bool) -> None:
    # Rule: each block has ``convs`` 3x3 convs; a residual wraps those after the first, so
    # the block's output is its first conv's output plus what the others compute from it.
    model = build_model(photo(convs, residual), (3, 32, 32), 10)
    block = model[0]
    assert sum(isinstance(m, torch.nn.Conv2d) for m in block.modules()) == convs
    wrapped = [m for m in block if type(m).__name__ == "_Residual"]
    assert len(wrapped) == (1 if residual and convs > 1 else 0)
    if wrapped:
        x = torch.randn(2, 8, 32, 32)
        wrapped[0].eval()
        assert torch.equal(wrapped[0](x), x + wrapped[0].body(x))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_one_conv_blocks_keep_the_saved_models_layout() -> None:
    # Rule: models saved before blocks could hold more convs load into today's builder: one
    # conv per block keeps the same state_dict keys (0.0 conv, 0.1 batch norm, ...).
    keys = list(build_model(photo(1), (3, 32, 32), 10).state_dict())
    norm = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert keys == ["0.0.weight", *[f"0.1.{k}" for k in norm], "1.0.weight",
                    *[f"1.1.{k}" for k in norm], "5.weight", "5.bias"]


def test_test_time_flip_averages_an_image_and_its_mirror_in_eval_only() -> None:
    # Rule: with tta_flip, evaluation averages the logits of x and of x mirrored; training
    # sees x alone; the weights are those of the same net without it.
    torch.manual_seed(0)
    plain = build_model(photo(2), (3, 16, 16), 5)
    torch.manual_seed(0)
    flipped = build_model(photo(2, tta_flip=True), (3, 16, 16), 5)
    flipped.load_state_dict(plain.state_dict())
    x = torch.randn(4, 3, 16, 16)
    plain.eval()
    flipped.eval()
    expected = (plain(x) + plain(x.flip(3))) / 2
    assert torch.allclose(flipped(x), expected, atol=1e-6)
    assert not torch.allclose(flipped(x), plain(x), atol=1e-4)
    flipped.train()
    plain.train()
    torch.manual_seed(1)
    a = flipped(x)
    torch.manual_seed(1)
    assert torch.allclose(a, plain(x), atol=1e-6)
