from __future__ import annotations

import pytest
import torch

from search.data.options import DataError, DataOptions
from search.data.registry import load_bundle, load_test_split


def test_load_bundle_digits_splits_are_disjoint_stratified_uint8() -> None:
    # Rule: train, val and test never share an image, keep every class, and are uint8 NCHW.
    options = DataOptions()
    bundle = load_bundle(options)
    test = load_test_split(options)
    assert bundle.train.x.dtype == torch.uint8 and bundle.input_shape == (1, 8, 8)
    total = len(bundle.train) + len(bundle.val) + len(test)
    assert total == 1797
    assert len(test) == pytest.approx(0.2 * 1797, abs=1)
    for split in (bundle.train, bundle.val, test):
        assert set(split.y.tolist()) == set(range(10))


def test_load_bundle_is_loaded_once_per_process() -> None:
    # Rule: every trial shares one in-memory copy of the data.
    assert load_bundle(DataOptions()) is load_bundle(DataOptions())


def test_load_bundle_normalisation_comes_from_train() -> None:
    # Rule: mean/std are the train split's statistics.
    bundle = load_bundle(DataOptions())
    mean = bundle.train.x.double().div(255).mean().item()
    assert bundle.mean[0] == pytest.approx(mean)


def test_load_bundle_split_seed_changes_split_not_the_test_part_size() -> None:
    # Rule: the split is seeded; another seed gives another, equally sized split.
    a = load_bundle(DataOptions(split_seed=0))
    b = load_bundle(DataOptions(split_seed=1))
    assert len(a.val) == len(b.val)
    assert not torch.equal(a.val.y, b.val.y) or not torch.equal(a.val.x, b.val.x)


def test_load_bundle_unknown_dataset_lists_known() -> None:
    # Rule: an unknown name is refused, listing the names that exist.
    with pytest.raises(DataError, match="unknown dataset 'imagenet'.*digits"):
        load_bundle(DataOptions(dataset="imagenet"))
