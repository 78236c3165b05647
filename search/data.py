"""Datasets by name, decoded once into uint8 tensors and split train/val/test.

The search only ever sees ``DataBundle`` (train and val). The test split comes from
``load_test_split`` alone, which only the report calls.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import train_test_split


class DataError(ValueError):
    """A dataset cannot be found, read or split as asked."""


@dataclass(frozen=True)
class Source:
    """A dataset as decoded: uint8 images (N, C, H, W), int64 labels, and class names."""

    x: torch.Tensor
    y: torch.Tensor
    classes: tuple[str, ...]
    # A test part shipped with the dataset; when None, one is held out from x/y.
    test_x: torch.Tensor | None = None
    test_y: torch.Tensor | None = None


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # uint8 (N, C, H, W)
    y: torch.Tensor  # int64 (N,)

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class DataOptions:
    """How to load and split a dataset; part of a study's identity."""

    dataset: str = "digits"
    # Fraction of the labelled pool held out as test, when the dataset ships no test part.
    test_fraction: float = 0.2
    # Fraction of what remains after the test hold-out used for validation.
    val_fraction: float = 0.25
    # Seed of the stratified splits; independent of the search seed, so the split stays put.
    split_seed: int = 0


@dataclass(frozen=True)
class DataBundle:
    """What the search trains and validates on. Normalisation comes from train alone."""

    name: str
    train: Split
    val: Split
    classes: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, in [0, 1] units
    std: tuple[float, ...]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.x.shape[1:]
        return int(c), int(h), int(w)

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def _load_digits(options: DataOptions) -> Source:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Pixel values are 0..16; scale to the 0..255 range every other source uses.
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    x = torch.from_numpy(images).unsqueeze(1).contiguous()
    y = torch.from_numpy(digits.target.astype(np.int64))
    return Source(x=x, y=y, classes=tuple(str(c) for c in digits.target_names))


DATASETS: dict[str, Callable[[DataOptions], Source]] = {
    "digits": _load_digits,
}


def _stratified(y: torch.Tensor, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    index = np.arange(len(y))
    try:
        keep, held = train_test_split(index, test_size=fraction, random_state=seed,
                                      stratify=y.numpy())
    except ValueError as error:
        raise DataError(f"cannot split {len(y)} examples with fraction {fraction}: {error}") from None
    return np.sort(keep), np.sort(held)


@functools.lru_cache(maxsize=4)
def _load_source(options: DataOptions) -> Source:
    loader = DATASETS.get(options.dataset)
    if loader is None:
        raise DataError(f"unknown dataset {options.dataset!r}; known: {', '.join(DATASETS)}")
    return loader(options)


def _pool_and_test(options: DataOptions) -> tuple[Split, Split]:
    source = _load_source(options)
    if source.test_x is not None and source.test_y is not None:
        return Split(source.x, source.y), Split(source.test_x, source.test_y)
    keep, held = _stratified(source.y, options.test_fraction, options.split_seed)
    return Split(source.x[keep], source.y[keep]), Split(source.x[held], source.y[held])


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, in [0, 1] units."""
    values = x.to(torch.float64).div_(255.0)
    mean = values.mean(dim=(0, 2, 3))
    std = values.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(mean.tolist()), tuple(std.tolist())


@functools.lru_cache(maxsize=4)
def load_bundle(options: DataOptions) -> DataBundle:
    """Train and validation splits, loaded once per process and shared by every trial."""
    pool, _ = _pool_and_test(options)
    train_idx, val_idx = _stratified(pool.y, options.val_fraction, options.split_seed)
    train = Split(pool.x[train_idx], pool.y[train_idx])
    mean, std = channel_stats(train.x)
    return DataBundle(
        name=options.dataset,
        train=train,
        val=Split(pool.x[val_idx], pool.y[val_idx]),
        classes=_load_source(options).classes,
        mean=mean,
        std=std,
    )


def load_test_split(options: DataOptions) -> Split:
    """The held-out test split. Only the report reads it; the search never calls this."""
    return _pool_and_test(options)[1]


def load_train_val(options: DataOptions) -> DataBundle:
    """Train and validation pooled as ``train`` (normalised by its own statistics), for the
    final retrain of a chosen configuration; ``val`` is empty. The test split stays apart."""
    pool, _ = _pool_and_test(options)
    mean, std = channel_stats(pool.x)
    return DataBundle(name=options.dataset, train=pool, val=Split(pool.x[:0], pool.y[:0]),
                      classes=_load_source(options).classes, mean=mean, std=std)
