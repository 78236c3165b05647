"""The classic sets from their published files, as uint8 tensors: MNIST and Fashion-MNIST (IDX,
gzipped or not) and CIFAR-10 and CIFAR-100 (pickled batches).

The files are read here, not by torchvision's dataset classes, so that every file is checked
against its format and a bad one is named: torchvision's readers stop on an ``assert``, accept
label counts that disagree with image counts, and unpickle whatever a batch holds. torchvision
is used to fetch missing files (``--download``, which verifies their MD5). Nothing is written
while reading: a folder holding only the ``.gz`` files is read from them.
"""

from __future__ import annotations

import codecs
import gzip
import io
import math
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from torchvision import datasets as tv

from search.hints import first_line

# Bytes one IDX file may unpack to: ten times MNIST's largest (47 MB of training images), so a
# gzip bomb named like an MNIST file cannot fill the memory.
MAX_IDX_BYTES = 470_000_000
# Bytes one CIFAR batch file may have: six times CIFAR-100's largest (155 MB, its train file).
MAX_PICKLE_BYTES = 1_000_000_000
# CIFAR rows: 1024 red bytes, then green, then blue, of a 32x32 image.
CIFAR_ROW = 3 * 32 * 32


class MissingDataError(FileNotFoundError):
    """A named dataset is not on disk and was not asked to be downloaded."""


class DataFileError(ValueError):
    """A dataset file that is there but not what its format says: truncated, corrupt, foreign,
    or with labels that disagree with its images."""


def expected_folder(name: str, data_dir: Path) -> Path:
    """Where torchvision looks for (and downloads) a named dataset's files."""
    cls = TORCHVISION[name]
    if issubclass(cls, tv.MNIST):
        return data_dir / cls.__name__ / "raw"
    return data_dir / cls.base_folder


def _missing(name: str, data_dir: Path, file: str) -> MissingDataError:
    return MissingDataError(
        f"dataset {name} not found in {str(expected_folder(name, data_dir))!r} (no {file}); pass "
        "--download to fetch it (or --data-dir to point at another folder)")


def _read_at_most(path: Path, limit: int) -> bytes:
    """The file's bytes (unpacked, for a .gz), refusing more than ``limit`` before reading on."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read(limit + 1)
    except (OSError, EOFError, zlib.error) as error:
        kind = "gzip file" if path.suffix == ".gz" else "file"
        raise DataFileError(f"{str(path)!r} is not a readable {kind}: "
                            f"{getattr(error, 'strerror', None) or error}") from None
    if len(data) > limit:
        raise DataFileError(f"{str(path)!r} unpacks to more than {limit / 1e6:.0f} MB: not a "
                            "file of this dataset")
    return data


def _idx_path(raw: Path, name: str) -> Path | None:
    """The unpacked IDX file when there is one (torchvision's download leaves both), else .gz."""
    for path in (raw / name.removesuffix(".gz"), raw / name):
        if path.is_file():
            return path
    return None


def _parse_idx(path: Path, data: bytes, dims: int) -> np.ndarray:
    """An IDX array of unsigned bytes with ``dims`` dimensions, its header checked against its
    length (IDX: magic 0x0000 08 <dims>, then each dimension as a big-endian uint32)."""
    header = 4 + 4 * dims
    if len(data) < header:
        raise DataFileError(f"{str(path)!r} is truncated: {len(data)} bytes, shorter than the "
                            f"{header}-byte IDX header")
    magic = int.from_bytes(data[:4], "big")
    if magic != 0x0800 + dims:
        raise DataFileError(f"{str(path)!r} has magic number {magic:#010x}, not {0x0800 + dims:#010x}"
                            f" (IDX unsigned bytes in {dims} dimension(s)): not this file")
    shape = struct.unpack(f">{dims}I", data[4:header])
    if len(data) != header + math.prod(shape) or 0 in shape:
        raise DataFileError(f"{str(path)!r} holds {len(data) - header} bytes after its header, "
                            f"which says {'x'.join(map(str, shape))}: truncated or damaged")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def _mnist_part(name: str, data_dir: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    raw = expected_folder(name, data_dir)
    first = 0 if train else 2  # resources: train images, train labels, test images, test labels
    image_name, label_name = (file for file, _ in TORCHVISION[name].resources[first:first + 2])
    images_path, labels_path = _idx_path(raw, image_name), _idx_path(raw, label_name)
    if images_path is None or labels_path is None:
        raise _missing(name, data_dir, image_name if images_path is None else label_name)
    images = _parse_idx(images_path, _read_at_most(images_path, MAX_IDX_BYTES), 3)
    labels = _parse_idx(labels_path, _read_at_most(labels_path, MAX_IDX_BYTES), 1)
    _check_labels(labels_path, labels, len(images), len(TORCHVISION[name].classes))
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def _check_labels(path: Path, labels: np.ndarray, count: int, n_classes: int) -> None:
    if len(labels) != count:
        raise DataFileError(f"{str(path)!r} holds {len(labels)} labels for {count} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        bad = labels[(labels < 0) | (labels >= n_classes)][0]
        raise DataFileError(f"{str(path)!r} holds label {bad}, outside the {n_classes} classes "
                            f"(0 to {n_classes - 1})")


def _array_shell(subtype: type, shape: tuple, dtype: object) -> np.ndarray:
    # numpy pickles an array as an empty one filled by __setstate__; any other shape here would
    # allocate whatever the file asks before a byte of data is read.
    if subtype is not np.ndarray or tuple(shape) != (0,):
        raise pickle.UnpicklingError("an array other than numpy's pickled form")
    return np.ndarray.__new__(np.ndarray, (0,), dtype)  # what numpy's _reconstruct returns


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays, nothing else: a planted batch
    file cannot run code when read."""

    ALLOWED = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
               ("numpy.core.multiarray", "_reconstruct"): _array_shell,  # pickled by numpy 1
               ("numpy._core.multiarray", "_reconstruct"): _array_shell,  # and numpy 2
               ("_codecs", "encode"): codecs.encode}  # how Python 3 pickles bytes

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it holds {module}.{name}, which a CIFAR batch never does")
        return self.ALLOWED[module, name]


def _unpickle(path: Path) -> object:
    data = _read_at_most(path, MAX_PICKLE_BYTES)
    try:
        return _BatchUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as error:  # noqa: BLE001 - unpickling bad bytes raises almost any type
        raise DataFileError(f"{str(path)!r} is not a readable CIFAR file: {first_line(error)}") from None


def _cifar_table(path: Path, keys: tuple[str, ...]) -> dict:
    table = _unpickle(path)
    if not isinstance(table, dict):
        raise DataFileError(f"{str(path)!r} is not a CIFAR file: it holds a "
                            f"{type(table).__name__}, not a table")
    absent = [key for key in keys if key not in table]
    if absent:
        raise DataFileError(f"{str(path)!r} is not a CIFAR file: it has no {absent[0]!r} entry")
    return table


def _cifar_classes(name: str, data_dir: Path) -> tuple[str, ...]:
    meta = TORCHVISION[name].meta
    path, key = expected_folder(name, data_dir) / meta["filename"], meta["key"]
    names = _cifar_table(path, (key,))[key]
    if (not isinstance(names, list) or len(names) < 2 or len(set(map(str, names))) != len(names)
            or not all(isinstance(n, str) for n in names)):
        raise DataFileError(f"{str(path)!r}: {key!r} is not a list of two or more distinct "
                            "class names")
    return tuple(names)


def _cifar_batch(path: Path, label_key: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    table = _cifar_table(path, ("data", label_key))
    data = table["data"]
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == CIFAR_ROW and len(data) > 0):
        raise DataFileError(f"{str(path)!r}: 'data' is not rows of {CIFAR_ROW} bytes (32x32 RGB)")
    labels = _label_array(path, label_key, table[label_key])
    _check_labels(path, labels, len(data), n_classes)
    return data, labels


def _label_array(path: Path, key: str, labels: object) -> np.ndarray:
    """The published batches hold a list of ints; an integer array is taken too."""
    if isinstance(labels, list) and all(type(label) is int for label in labels):
        return np.array(labels, dtype=np.int64)
    if (isinstance(labels, np.ndarray) and labels.ndim == 1
            and np.issubdtype(labels.dtype, np.integer)):
        return labels.astype(np.int64)
    raise DataFileError(f"{str(path)!r}: {key!r} is not a list of whole numbers")


def _cifar_part(name: str, data_dir: Path, train: bool,
                n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    cls, folder = TORCHVISION[name], expected_folder(name, data_dir)
    batches = [_cifar_batch(folder / file, LABEL_KEYS[name], n_classes)
               for file, _ in (cls.train_list if train else cls.test_list)]
    x = np.concatenate([data for data, _ in batches]).reshape(-1, 3, 32, 32)
    y = np.concatenate([labels for _, labels in batches])
    return torch.from_numpy(x), torch.from_numpy(y)


def _files(name: str) -> list[str]:
    """Every file a named dataset is read from, in its folder."""
    cls = TORCHVISION[name]
    if issubclass(cls, tv.MNIST):
        return [file for file, _ in cls.resources]
    return [file for file, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]


def _first_missing(name: str, data_dir: Path) -> str | None:
    folder = expected_folder(name, data_dir)
    if issubclass(TORCHVISION[name], tv.MNIST):  # each file unpacked or as .gz
        return next((file for file in _files(name) if _idx_path(folder, file) is None), None)
    return next((file for file in _files(name) if not (folder / file).is_file()), None)


def _download(name: str, data_dir: Path) -> None:
    """Fetch the files with torchvision, which checks their MD5 sums."""
    try:
        for train in (True, False):
            TORCHVISION[name](root=str(data_dir), train=train, download=True)
    except Exception as error:  # noqa: BLE001 - network, archive and disk errors of every type
        raise MissingDataError(f"cannot download {name} into {str(data_dir)!r}: "
                               f"{str(error).strip() or type(error).__name__}") from None


def load_torchvision(name: str, data_dir: Path, download: bool
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                tuple[str, ...]]:
    """(train x, train y, test x, test y, classes) of a named dataset, every file checked.

    Raises MissingDataError for files that are not there (and not downloaded), DataFileError
    for a file that is there but not what its format says, naming the file.
    """
    missing = _first_missing(name, data_dir)
    if missing is not None:
        if not download:
            raise _missing(name, data_dir, missing)
        _download(name, data_dir)
    try:
        return _read(name, data_dir)
    except DataFileError as error:
        raise DataFileError(f"{error}; delete it and pass --download to fetch it again") from None


def _read(name: str, data_dir: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                              torch.Tensor, tuple[str, ...]]:
    if issubclass(TORCHVISION[name], tv.MNIST):
        classes = tuple(TORCHVISION[name].classes)
        train, test = (_mnist_part(name, data_dir, train) for train in (True, False))
    else:
        classes = _cifar_classes(name, data_dir)
        train, test = (_cifar_part(name, data_dir, train, len(classes)) for train in (True, False))
    return (*train, *test, classes)


TORCHVISION: dict[str, type] = {
    "mnist": tv.MNIST,
    "fashion-mnist": tv.FashionMNIST,
    "cifar10": tv.CIFAR10,
    "cifar100": tv.CIFAR100,
}
# The label list of a CIFAR batch: CIFAR-100's 100 fine classes, not its 20 coarse ones.
LABEL_KEYS = {"cifar10": "labels", "cifar100": "fine_labels"}
