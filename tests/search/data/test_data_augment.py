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


def test_cutout_zeroes_one_square_per_image_cut_by_the_border() -> None:
    # Rule: cutout zeroes a square of the given fraction of the side in each image, at a
    # random place (so often cut by the border), on top of the crop and flip; 0 is none.
    ones = torch.ones(64, 3, 16, 16)
    out = augment_batch(ones, torch.Generator().manual_seed(0), cutout=0.5)
    zeroed = (out == 0).all(1)  # (n, h, w): all channels zeroed
    per_image = zeroed.flatten(1).sum(1)
    crop_only = augment_batch(ones, torch.Generator().manual_seed(0))
    assert ((out == 0) <= (crop_only == 0) | zeroed.unsqueeze(1)).all()
    hole = zeroed & (crop_only != 0).all(1)
    sizes = hole.flatten(1).sum(1)
    assert sizes.max() == 64 and sizes.min() < 64  # an 8x8 square, sometimes cut
    for image in hole:  # what is cut is one axis-aligned rectangle
        rows, cols = image.any(1).nonzero(), image.any(0).nonzero()
        if len(rows):
            assert image.sum() == len(rows) * len(cols)
    assert (per_image > 0).all()


def test_cutout_zero_draws_nothing_more() -> None:
    # Rule: trials without cutout draw the same random numbers as before cutout existed, so
    # their batches (and results) are unchanged.
    a, b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    x = torch.rand(8, 3, 16, 16)
    assert torch.equal(augment_batch(x, a, cutout=0.0), augment_batch(x, b))
    assert torch.equal(torch.rand(3, generator=a), torch.rand(3, generator=b))
