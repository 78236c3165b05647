"""The classic sets through torchvision's own dataset classes, as uint8 tensors.

torchvision reads the files and hands over whole arrays (``.data``/``.targets``), so no image
ever passes through PIL. Files live under ``--data-dir`` (default ``data/``); they are fetched
only with ``--download``.
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import torch
from torchvision import datasets as tv


class MissingDataError(FileNotFoundError):
    """A named dataset is not on disk and was not asked to be downloaded."""


class _PresentCIFAR10(tv.CIFAR10):
    """CIFAR-10 that checks the batch files are present instead of re-hashing them.

    torchvision verifies the MD5 when it downloads; re-hashing 170 MB on every load of every
    worker buys nothing and refuses re-written copies of the same batches.
    """

    def _check_integrity(self) -> bool:
        folder = Path(self.root) / self.base_folder
        return all((folder / name).is_file() for name, _ in self.train_list + self.test_list)

    def _load_meta(self) -> None:
        path = Path(self.root) / self.base_folder / self.meta["filename"]
        if not path.is_file():
            raise RuntimeError(f"dataset metadata file {str(path)!r} not found")
        with open(path, "rb") as infile:
            self.classes = pickle.load(infile, encoding="latin1")[self.meta["key"]]
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}


class _PresentCIFAR100(_PresentCIFAR10):
    base_folder = tv.CIFAR100.base_folder
    url = tv.CIFAR100.url
    filename = tv.CIFAR100.filename
    tgz_md5 = tv.CIFAR100.tgz_md5
    train_list = tv.CIFAR100.train_list
    test_list = tv.CIFAR100.test_list
    meta = tv.CIFAR100.meta


def _unpack_mnist_gz(raw: Path, resources: list[tuple[str, str]]) -> None:
    # torchvision reads the unpacked IDX files; a folder holding only the .gz files (copied from
    # another machine, or a download cut short after fetching) is unpacked here once.
    for name, _ in resources:
        packed, unpacked = raw / name, raw / name.removesuffix(".gz")
        if packed.is_file() and not unpacked.is_file():
            with gzip.open(packed, "rb") as src, open(f"{unpacked}.tmp", "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(f"{unpacked}.tmp", unpacked)


def expected_folder(name: str, data_dir: Path) -> Path:
    """Where torchvision looks for a named dataset's files."""
    cls = TORCHVISION[name]
    if issubclass(cls, tv.MNIST):
        return data_dir / cls.__name__ / "raw"
    return data_dir / cls.base_folder


def _open(name: str, data_dir: Path, train: bool, download: bool):
    cls = TORCHVISION[name]
    if issubclass(cls, tv.MNIST):
        _unpack_mnist_gz(expected_folder(name, data_dir), cls.resources)
    try:
        return cls(root=str(data_dir), train=train, download=download)
    except RuntimeError as error:
        if download:
            raise MissingDataError(f"cannot download {name} into {str(data_dir)!r}: {error}") from None
        raise MissingDataError(
            f"dataset {name} not found in {str(expected_folder(name, data_dir))!r}; pass "
            f"--download to fetch it (or --data-dir to point at another folder)") from None


def _as_tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    data = dataset.data
    if isinstance(data, np.ndarray):  # CIFAR: (N, H, W, C) uint8
        x = torch.from_numpy(data).permute(0, 3, 1, 2).contiguous()
    else:  # MNIST: (N, H, W) uint8 tensor
        x = data.unsqueeze(1).contiguous()
    y = torch.as_tensor(dataset.targets, dtype=torch.int64)
    return x, y


def load_torchvision(name: str, data_dir: Path, download: bool):
    """(train x, train y, test x, test y, classes) of a named torchvision dataset."""
    try:
        train = _open(name, data_dir, train=True, download=download)
        test = _open(name, data_dir, train=False, download=download)
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as error:
        if isinstance(error, MissingDataError):
            raise
        raise MissingDataError(f"cannot read {name} from {str(data_dir)!r}: {error}") from None
    x, y = _as_tensors(train)
    test_x, test_y = _as_tensors(test)
    return x, y, test_x, test_y, tuple(str(c) for c in train.classes)


TORCHVISION: dict[str, type] = {
    "mnist": tv.MNIST,
    "fashion-mnist": tv.FashionMNIST,
    "cifar10": _PresentCIFAR10,
    "cifar100": _PresentCIFAR100,
}
