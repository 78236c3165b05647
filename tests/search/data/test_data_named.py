"""torchvision datasets read from tiny files in the real formats."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from search.data.options import DataError, DataOptions, augment_default
from search.data.registry import load_bundle, load_test_split, load_train_pool
from search.study.spec import StudySpec
from tests.helpers.dataset_files import write_cifar10, write_cifar100, write_mnist

# name -> (writer, input shape, number of classes)
NAMED = {
    "mnist": (lambda d: write_mnist(d, "MNIST"), (1, 28, 28), 10),
    "fashion-mnist": (lambda d: write_mnist(d, "FashionMNIST"), (1, 28, 28), 10),
    "cifar10": (write_cifar10, (3, 32, 32), 10),
    "cifar100": (write_cifar100, (3, 32, 32), 100),
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for writer, _, _ in NAMED.values():
        writer(root)
    return root


@pytest.mark.parametrize("name", list(NAMED))
def test_load_bundle_named_reads_real_format_into_uint8(data_dir: Path, name: str) -> None:
    _, shape, n_classes = NAMED[name]
    options = DataOptions(dataset=name, data_dir=str(data_dir))
    bundle = load_bundle(options)
    test = load_test_split(options)
    # Rule: torchvision's class reads our files; images are uint8 NCHW, the shipped test part
    # stays apart, and train + val is the whole train file.
    assert bundle.train.x.dtype == torch.uint8 and bundle.input_shape == shape
    assert bundle.n_classes == n_classes
    assert len(bundle.train) + len(bundle.val) == len(load_train_pool(options))
    assert len(test) in (20, 100)


def test_load_bundle_cifar_keeps_pixel_layout(data_dir: Path) -> None:
    import pickle

    with open(data_dir / "cifar-10-batches-py" / "test_batch", "rb") as f:
        batch = pickle.load(f, encoding="latin1")
    test = load_test_split(DataOptions(dataset="cifar10", data_dir=str(data_dir)))
    # Rule: the 3072-byte rows (R plane, G plane, B plane) become (3, 32, 32) unchanged.
    assert torch.equal(test.x, torch.from_numpy(batch["data"].reshape(-1, 3, 32, 32)))
    assert test.y.tolist() == batch["labels"]


def test_load_bundle_mnist_gz_only_is_read_without_writing(tmp_path: Path) -> None:
    write_mnist(tmp_path, "MNIST")
    before = sorted(tmp_path.rglob("*"))
    bundle = load_bundle(DataOptions(dataset="mnist", data_dir=str(tmp_path)))
    # Rule: a folder holding only the .gz files is read from them, and nothing is written.
    assert len(bundle.train) + len(bundle.val) == 60
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("name", list(NAMED))
def test_load_bundle_named_missing_names_folder_and_flag(tmp_path: Path, name: str) -> None:
    # Rule: a missing dataset is one line saying where it was expected and how to download it.
    with pytest.raises(DataError) as error:
        load_bundle(DataOptions(dataset=name, data_dir=str(tmp_path / "empty")))
    message = str(error.value)
    assert str(tmp_path / "empty") in message and "--download" in message and "\n" not in message


def test_load_bundle_image_size_resizes_named_dataset(data_dir: Path) -> None:
    bundle = load_bundle(DataOptions(dataset="mnist", data_dir=str(data_dir), image_size=16))
    # Rule: --image-size applies to named datasets too, as uint8.
    assert bundle.input_shape == (1, 16, 16) and bundle.train.x.dtype == torch.uint8


def test_load_bundle_train_subset_is_stratified_and_leaves_val(data_dir: Path) -> None:
    full = DataOptions(dataset="cifar10", data_dir=str(data_dir))
    small = dataclasses.replace(full, train_subset=20)
    a, b = load_bundle(full), load_bundle(small)
    # Rule: the subset has N images covering every class; val and the retrain pool are untouched.
    assert len(b.train) == 20 and set(b.train.y.tolist()) == set(range(10))
    assert torch.equal(a.val.x, b.val.x)
    assert len(load_train_pool(small)) == len(a.train) + len(a.val)


def test_load_bundle_train_subset_below_class_count_is_refused(data_dir: Path) -> None:
    # Rule: a subset too small to hold every class is an error naming the value.
    with pytest.raises(DataError, match="train_subset 5"):
        load_bundle(DataOptions(dataset="cifar10", data_dir=str(data_dir), train_subset=5))


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((1, 8, 8), False), ((1, 28, 28), False), ((3, 32, 32), True), ((3, 16, 16), False),
     ((3, 64, 48), True), ((1, 64, 64), False)],
)
def test_augment_default_only_colour_images_of_32px(shape: tuple[int, int, int], expected: bool) -> None:
    # Rule: crop + flip by default for 3-channel images of at least 32 px, never for digits/MNIST.
    assert augment_default(shape) is expected


def test_study_spec_flat_round_trip_keeps_data_keys_not_download() -> None:
    data = DataOptions(dataset="cifar10", data_dir="/d", image_size=24, train_subset=500,
                       download=True)
    flat = StudySpec(data=data).to_flat()
    # Rule: the stored spec rebuilds the same data; download is how to fetch, not what to load.
    assert "download" not in flat
    assert StudySpec.from_flat(flat).data == data
    assert np.isclose(flat["val_fraction"], 0.25)
