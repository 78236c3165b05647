"""How a study loads its data, without loading anything: options, names and checks that the
storage and spec layers use (no torch here; search.data.registry does the loading)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from search.errors import InputError

# The datasets known by name (search.data.registry.DATASETS loads them); any other dataset
# value is the path of an ImageFolder tree.
NAMED_DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100")


class DataError(InputError):
    """A dataset cannot be found, read or split as asked."""


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
    # Where torchvision datasets live and where decoded ImageFolder trees are cached (cache/).
    data_dir: str = "data"
    # Square side images are resized to; None keeps a named dataset's size and gives an
    # ImageFolder tree its typical size, capped at 64.
    image_size: int | None = None
    # Search on a stratified subset of this many training images; None uses them all. The
    # report retrains on the full train + val (load_train_pool).
    train_subset: int | None = None
    # Fetch a missing torchvision dataset. How to get the files, not what they are: it is left
    # out of equality and of the stored spec.
    download: bool = field(default=False, compare=False)


def is_folder_dataset(name: str) -> bool:
    """A dataset that is not a known name is a path to an ImageFolder tree."""
    return name not in NAMED_DATASETS


def default_study_name(dataset: str) -> str:
    """The dataset's name, or for a tree its folder's name made safe for file names."""
    if not is_folder_dataset(dataset):
        return dataset
    folder = Path(dataset).expanduser().resolve().name
    safe = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._-]+", "-", folder))
    return safe.strip("-.")[:128] or "images"


def augment_default(input_shape: tuple[int, int, int]) -> bool:
    """Crop + flip by default only for colour images of at least 32 px.

    Digits and MNIST-like grayscale sets are not flip-invariant (a flipped 2 is no 2), and
    small images lose too much to a padded crop.
    """
    channels, height, width = input_shape
    return channels == 3 and min(height, width) >= 32
