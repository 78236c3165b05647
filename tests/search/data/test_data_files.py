"""torchvision datasets' files spoiled the ways a copy or a download can be: each is one DataError
line naming the file, and reading writes nothing."""

from __future__ import annotations

import gzip
import hashlib
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from search.data import torchvision_sets
from search.data.options import DataError, DataOptions
from search.data.registry import load_bundle
from tests.helpers.badinput import MARKER, Crafted
from tests.helpers.dataset_files import (
    relabel,
    rewrite_gz,
    rewrite_pickle,
    truncate,
    write_cifar10,
    write_cifar100,
    write_mnist,
)

TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"


def _only_unpacked_cut_short(raw: Path) -> None:
    (raw / TRAIN_IMAGES.removesuffix(".gz")).write_bytes(
        gzip.decompress((raw / TRAIN_IMAGES).read_bytes())[:3000])
    (raw / TRAIN_IMAGES).unlink()


# spoil(raw folder), the file named, what the message says
IDX_SPOILED: dict[str, tuple[Callable[[Path], object], str, str]] = {
    "truncated-gz": (lambda raw: truncate(raw / TRAIN_IMAGES, 200), TRAIN_IMAGES,
                     "not a readable gzip file"),
    "noise-gz": (lambda raw: (raw / TEST_LABELS).write_bytes(bytes(range(256))), TEST_LABELS,
                 "not a readable gzip file"),
    "wrong-magic": (lambda raw: rewrite_gz(raw / TRAIN_LABELS, lambda c: b"\0\0\x08\x03" + c[4:]),
                    TRAIN_LABELS, "magic number 0x00000803, not 0x00000801"),
    "header-cut": (lambda raw: rewrite_gz(raw / TEST_IMAGES, lambda c: c[:10]), TEST_IMAGES,
                   "shorter than the 16-byte IDX header"),
    "body-cut": (lambda raw: rewrite_gz(raw / TEST_IMAGES, lambda c: c[:-1]), TEST_IMAGES,
                 "truncated or damaged"),
    "body-padded": (lambda raw: rewrite_gz(raw / TRAIN_IMAGES, lambda c: c + b"\0" * 10),
                    TRAIN_IMAGES, "truncated or damaged"),
    "no-images": (lambda raw: rewrite_gz(raw / TRAIN_IMAGES,
                                         lambda c: struct.pack(">iiii", 0x0803, 0, 28, 28)),
                  TRAIN_IMAGES, "which says 0x28x28"),
    "fewer-labels": (lambda raw: rewrite_gz(raw / TRAIN_LABELS, relabel(lambda y: y[:-3])),
                     TRAIN_LABELS, "holds 57 labels for 60 images"),
    "more-labels": (lambda raw: rewrite_gz(raw / TEST_LABELS, relabel(lambda y: np.r_[y, y])),
                    TEST_LABELS, "holds 40 labels for 20 images"),
    "label-out-of-range": (lambda raw: rewrite_gz(raw / TEST_LABELS,
                                                  relabel(lambda y: np.where(y == 4, 200, y))),
                           TEST_LABELS, "holds label 200, outside the 10 classes"),
    "unpacked-cut-short": (_only_unpacked_cut_short, TRAIN_IMAGES.removesuffix(".gz"),
                           "truncated or damaged"),
}


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(options: DataOptions, named: str, says: str) -> None:
    before = _files(Path(options.data_dir))
    with pytest.raises(DataError) as error:
        load_bundle(options)
    message = str(error.value)
    assert f"{named}'" in message and says in message and "\n" not in message, message
    assert _files(Path(options.data_dir)) == before


@pytest.mark.parametrize("folder", ["MNIST", "FashionMNIST"])
@pytest.mark.parametrize("spoil", list(IDX_SPOILED))
def test_load_bundle_spoiled_idx_file_is_one_line_naming_it(tmp_path: Path, folder: str,
                                                            spoil: str) -> None:
    write_mnist(tmp_path, folder)
    change, named, says = IDX_SPOILED[spoil]
    change(tmp_path / folder / "raw")
    name = "mnist" if folder == "MNIST" else "fashion-mnist"
    # Rule: a truncated, foreign or inconsistent IDX file is one DataError naming it and what
    # is wrong; nothing is unpacked or written beside it.
    _refused(DataOptions(dataset=name, data_dir=str(tmp_path)), named, says)


def test_load_bundle_idx_gzip_bomb_stops_at_the_limit(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    write_mnist(tmp_path, "MNIST")
    monkeypatch.setattr(torchvision_sets, "MAX_IDX_BYTES", 10_000)  # 60 images take 47 KB
    # Rule: an IDX file is read up to MAX_IDX_BYTES and no further: a gzip bomb named like
    # MNIST's files is refused, not unpacked into memory.
    _refused(DataOptions(dataset="mnist", data_dir=str(tmp_path)), TRAIN_IMAGES,
             "unpacks to more than 0 MB")


def _batch(file: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    return lambda folder: rewrite_pickle(folder / file, change)


# spoil(batch folder), the file named, what the message says
CIFAR_SPOILED: dict[str, tuple[Callable[[Path], object], str, str]] = {
    "truncated": (lambda folder: truncate(folder / "data_batch_2", 1500), "data_batch_2",
                  "not a readable CIFAR file"),
    "noise": (lambda folder: (folder / "test_batch").write_bytes(bytes(range(256)) * 4),
              "test_batch", "not a readable CIFAR file"),
    "not-a-table": (_batch("data_batch_1", lambda t: [t["data"]]), "data_batch_1",
                    "it holds a list, not a table"),
    "no-data": (_batch("data_batch_3", lambda t: {k: v for k, v in t.items() if k != "data"}),
                "data_batch_3", "it has no 'data' entry"),
    "no-labels": (_batch("test_batch", lambda t: {k: v for k, v in t.items() if k != "labels"}),
                  "test_batch", "it has no 'labels' entry"),
    "rows-short": (_batch("data_batch_4", lambda t: {**t, "data": t["data"][:, :3000]}),
                   "data_batch_4", "'data' is not rows of 3072 bytes"),
    "rows-float": (_batch("data_batch_5", lambda t: {**t, "data": t["data"] / 255}),
                   "data_batch_5", "'data' is not rows of 3072 bytes"),
    "labels-text": (_batch("data_batch_1", lambda t: {**t, "labels": ["cat"] * 12}),
                    "data_batch_1", "'labels' is not a list of whole numbers"),
    "fewer-labels": (_batch("data_batch_2", lambda t: {**t, "labels": t["labels"][:5]}),
                     "data_batch_2", "holds 5 labels for 12 images"),
    "label-out-of-range": (_batch("test_batch", lambda t: {**t, "labels": [-1] + t["labels"][1:]}),
                           "test_batch", "holds label -1, outside the 10 classes"),
    "meta-not-names": (_batch("batches.meta", lambda t: {**t, "label_names": [0, 1, 2]}),
                       "batches.meta", "'label_names' is not a list"),
    "meta-one-class": (_batch("batches.meta", lambda t: {**t, "label_names": ["all"]}),
                       "batches.meta", "'label_names' is not a list of two or more"),
    "missing-batch": (lambda folder: (folder / "data_batch_4").unlink(), "cifar-10-batches-py",
                      "(no data_batch_4); pass --download"),
}


@pytest.mark.parametrize("spoil", list(CIFAR_SPOILED))
def test_load_bundle_spoiled_cifar10_file_is_one_line_naming_it(tmp_path: Path, spoil: str) -> None:
    write_cifar10(tmp_path)
    change, named, says = CIFAR_SPOILED[spoil]
    change(tmp_path / "cifar-10-batches-py")
    # Rule: a truncated, foreign or inconsistent CIFAR file is one DataError naming it.
    _refused(DataOptions(dataset="cifar10", data_dir=str(tmp_path)), named, says)


def test_load_bundle_cifar100_fine_label_out_of_range_is_refused(tmp_path: Path) -> None:
    write_cifar100(tmp_path, n_classes=20)  # meta names 20 fine classes, labels use 20
    rewrite_pickle(tmp_path / "cifar-100-python" / "train",
                   lambda t: {**t, "fine_labels": [99] * len(t["fine_labels"])})
    # Rule: labels are checked against the classes the meta file names, not a fixed count.
    _refused(DataOptions(dataset="cifar100", data_dir=str(tmp_path)), "train",
             "holds label 99, outside the 20 classes")


def test_load_bundle_cifar_batch_that_runs_code_is_refused_unrun(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    rewrite_pickle(tmp_path / "cifar-10-batches-py" / "data_batch_1",
                   lambda t: {**t, "data": Crafted(tmp_path / MARKER)})
    # Rule: a batch file may hold only tables, lists, strings, numbers and arrays: one that
    # would call a function when unpickled is refused, and the function never runs.
    _refused(DataOptions(dataset="cifar10", data_dir=str(tmp_path)), "data_batch_1",
             "io.open, which a CIFAR batch never does")
    assert not (tmp_path / MARKER).exists()


def test_load_bundle_reads_cifar_pickled_by_numpy_1(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    for path in (tmp_path / "cifar-10-batches-py").iterdir():
        # The published batches name numpy 1's module; ours were written by numpy 2.
        path.write_bytes(path.read_bytes().replace(b"numpy._core.multiarray\n",
                                                   b"numpy.core.multiarray\n"))
    bundle = load_bundle(DataOptions(dataset="cifar10", data_dir=str(tmp_path)))
    # Rule: the arrays of the published files (numpy.core.multiarray) are read.
    assert bundle.input_shape == (3, 32, 32) and len(bundle.train) + len(bundle.val) == 60
