"""Batch augmentation: per-example random crop after padding, and horizontal flip."""

from __future__ import annotations

import torch
from torch import nn

from search.training.loop import augment_batch


def crops_of(image: torch.Tensor, pad: int) -> list[torch.Tensor]:
    """Every crop (and its mirror) that a padded random crop of ``image`` may return."""
    _, h, w = image.shape
    padded = nn.functional.pad(image, (pad,) * 4)
    found = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[:, dy:dy + h, dx:dx + w]
            found += [crop, crop.flip(2)]
    return found


def test_augment_batch_each_image_is_a_padded_crop_or_its_mirror() -> None:
    x = torch.rand(16, 3, 32, 32)
    out = augment_batch(x, torch.Generator().manual_seed(0))
    # Rule: shape is kept, and each output is a 4-px-padded crop of its own input, maybe flipped.
    assert out.shape == x.shape
    for image, augmented in zip(x, out, strict=True):
        assert any(torch.equal(augmented, crop) for crop in crops_of(image, 4))


def test_augment_batch_offsets_and_flips_differ_within_a_batch() -> None:
    x = torch.rand(1, 1, 32, 32).expand(64, 1, 32, 32).contiguous()
    out = augment_batch(x, torch.Generator().manual_seed(0))
    distinct = {tuple(o.flatten().tolist()) for o in out}
    # Rule: the crop and flip are drawn per example, not once per batch.
    assert len(distinct) > 20


def test_augment_batch_is_seeded() -> None:
    x = torch.rand(8, 3, 32, 32)
    a = augment_batch(x, torch.Generator().manual_seed(3))
    b = augment_batch(x, torch.Generator().manual_seed(3))
    # Rule: the same generator state gives the same batch (trials stay reproducible).
    assert torch.equal(a, b)
