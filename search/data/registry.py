"""Datasets by name, decoded once into uint8 tensors and split train/val/test.

The search only ever sees ``DataBundle`` (train and val). The test split comes from
``load_test_split`` alone, which only the report calls.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from search.data.format import InputFormat
from search.data.options import DataError, DataOptions, is_folder_dataset
from search.hints import did_you_mean

if TYPE_CHECKING:
    from search.data.imagefolder import Decoded

# The kernel's own file systems, not anyone's data: a cache written there is never what was
# meant. (/dev is left out: /dev/shm is a RAM disk some choose for data.)
SYSTEM_FOLDERS = (Path("/proc"), Path("/sys"))
# Linux's limits on one file name and on a whole path, in bytes (NAME_MAX, PATH_MAX).
NAME_MAX = 255
PATH_MAX = 4096
# Decoded sources kept per process: one per dataset and image size in use, newest last.
SOURCES_KEPT = 4


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

    @property
    def format(self) -> InputFormat:
        """What a model trained on this data takes and returns."""
        return InputFormat(self.input_shape, self.classes, self.mean, self.std)


def _load_digits(options: DataOptions) -> Source:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Pixel values are 0..16; scale to the 0..255 range every other source uses.
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    x = torch.from_numpy(images).unsqueeze(1).contiguous()
    y = torch.from_numpy(digits.target.astype(np.int64))
    return Source(x=x, y=y, classes=tuple(str(c) for c in digits.target_names))


def _named(name: str) -> Callable[[DataOptions], Source]:
    def load(options: DataOptions) -> Source:
        # Imported here: torchvision's dataset classes are only needed for these names.
        from search.data.torchvision_sets import DataFileError, MissingDataError, load_torchvision

        data_dir = Path(options.data_dir).expanduser()
        try:
            x, y, test_x, test_y, classes = load_torchvision(name, data_dir, options.download)
        except (MissingDataError, DataFileError) as error:
            raise DataError(str(error)) from None
        except OSError as error:  # a folder that cannot be listed: permissions, I/O errors
            raise DataError(f"cannot read {name} from {str(data_dir)!r}: "
                            f"{_os_reason(error)}") from None
        return Source(x=x, y=y, classes=classes, test_x=test_x, test_y=test_y)

    return load


DATASETS: dict[str, Callable[[DataOptions], Source]] = {
    "digits": _load_digits,
    "mnist": _named("mnist"),
    "fashion-mnist": _named("fashion-mnist"),
    "cifar10": _named("cifar10"),
    "cifar100": _named("cifar100"),
}


def _load_folder(options: DataOptions, check: Callable[[Decoded], None] | None = None) -> Source:
    from search.data.imagefolder import FolderError, load_tree

    root = Path(options.dataset).expanduser()
    if not root.exists() and "/" not in options.dataset and "\\" not in options.dataset:
        hint = did_you_mean(options.dataset, DATASETS)
        raise DataError(f"unknown dataset {options.dataset!r}{hint}; known: {', '.join(DATASETS)}, "
                        "or the path of an ImageFolder tree (PATH/train/<class>/<image>)")
    try:
        tree = load_tree(root, Path(options.data_dir).expanduser() / "cache", options.image_size,
                         check)
    except FolderError as error:
        raise DataError(str(error)) from None
    return Source(x=tree.x, y=tree.y, classes=tree.classes, test_x=tree.test_x, test_y=tree.test_y)


def _resized(x: torch.Tensor | None, size: int | None) -> torch.Tensor | None:
    if x is None or size is None or x.shape[-2:] == (size, size):
        return x
    from torchvision.transforms.v2 import functional as F

    return F.resize(x, [size, size], antialias=True)


def _stratified(y: torch.Tensor, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    index = np.arange(len(y))
    try:
        keep, held = train_test_split(index, test_size=fraction, random_state=seed,
                                      stratify=y.numpy())
    except ValueError:
        # sklearn's message lists every short class; one line with the rule reads better.
        raise DataError(f"cannot split {len(y)} examples of {len(torch.unique(y))} classes with "
                        f"fraction {fraction}: every class needs 2 or more examples and each part "
                        "at least one per class") from None
    return np.sort(keep), np.sort(held)


def _os_reason(error: OSError) -> str:
    where = f"{error.filename!r}: " if error.filename else ""
    return f"{where}{error.strerror or error}"


def _too_long(path: Path) -> str | None:
    """Why ``path`` is too long for the system, or None. Checked by hand: the kernel says
    ENAMETOOLONG only once every folder before the long name exists."""
    longest = max(path.parts, key=lambda part: len(os.fsencode(part)), default="")
    if len(os.fsencode(longest)) > NAME_MAX:
        return f"a name in it has {len(os.fsencode(longest))} bytes; file names have at most {NAME_MAX}"
    if len(os.fsencode(str(path.absolute()))) >= PATH_MAX:
        return f"it has {len(os.fsencode(str(path.absolute())))} bytes; paths have fewer than {PATH_MAX}"
    return None


def _lookup(path: Path, what: str) -> str:
    """"folder", "file" or "missing" for ``path``; a path that cannot even be looked up is a
    DataError that names it and the real cause (a name too long, a file on the way, a loop)."""
    reason = _too_long(path)
    if reason is not None:
        raise DataError(f"{what} {str(path)!r} cannot be used: {reason}")
    try:
        return "folder" if stat.S_ISDIR(os.stat(path).st_mode) else "file"
    except FileNotFoundError:
        return "missing"
    except OSError as error:
        if error.errno == errno.ENOTDIR:
            above = next((p for p in reversed(path.parents) if p.is_file()), path.parent)
            reason = f"{str(above)!r} is a file, not a folder"
        else:
            reason = error.strerror or str(error)
        raise DataError(f"{what} {str(path)!r} cannot be used: {reason}") from None


def check_data_paths(options: DataOptions) -> None:
    """Refuse, before anything is read or written, paths that cannot work: a data folder
    (``--data-dir``) that is a file, lies under /proc or /sys, or cannot be looked up,
    and a dataset path that cannot be looked up (a name too long, a file on the way).

    ``load_bundle`` calls it first; a command may call it earlier, before opening storage.
    """
    data_dir = Path(options.data_dir).expanduser()
    if _lookup(data_dir, "data folder (--data-dir)") == "file":
        raise DataError(f"data folder (--data-dir) {str(data_dir)!r} is a file, not a folder")
    resolved = data_dir.resolve()
    system = next((f for f in SYSTEM_FOLDERS if resolved.is_relative_to(f)), None)
    if system is not None:
        raise DataError(f"data folder (--data-dir) {str(data_dir)!r} is under {system}, the "
                        "system's own folder, not one for data; pass --data-dir with a folder of "
                        "yours")
    if is_folder_dataset(options.dataset):
        _lookup(Path(options.dataset).expanduser(), "dataset")


def _absolute(options: DataOptions) -> DataOptions:
    """Paths checked and made absolute, so the per-process caches never mix up two working
    directories."""
    check_data_paths(options)
    data_dir = str(Path(options.data_dir).expanduser().resolve())
    dataset = options.dataset
    if is_folder_dataset(dataset) and Path(dataset).expanduser().exists():
        dataset = str(Path(dataset).expanduser().resolve())
    return dataclasses.replace(options, dataset=dataset, data_dir=data_dir)


_SOURCES: dict[DataOptions, Source] = {}


def _load_source(options: DataOptions) -> Source:
    """The decoded source, once per process. Keyed on what the decoded images depend on, not
    on how they are split, so that the search, the retrain and the test share one copy."""
    absolute = _absolute(options)
    key = DataOptions(dataset=absolute.dataset, data_dir=absolute.data_dir,
                      image_size=options.image_size, download=options.download)
    if key not in _SOURCES:
        source = _decoded_source(key, functools.partial(_check_splits, absolute))
        if len(_SOURCES) >= SOURCES_KEPT:
            del _SOURCES[next(iter(_SOURCES))]  # the oldest
        _SOURCES[key] = source
    return _SOURCES[key]


def _decoded_source(options: DataOptions, check: Callable[[Decoded], None]) -> Source:
    if is_folder_dataset(options.dataset):
        return _load_folder(options, check)  # resized while decoding
    source = DATASETS[options.dataset](options)
    if options.image_size is None:
        return source
    return Source(x=_resized(source.x, options.image_size), y=source.y, classes=source.classes,
                  test_x=_resized(source.test_x, options.image_size), test_y=source.test_y)


def _pool_held(options: DataOptions, y: torch.Tensor,
               shipped_test: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Indices of the labelled pool and of the held-out test (None: the shipped test part)."""
    if shipped_test:
        return np.arange(len(y)), None
    return _stratified(y, options.test_fraction, options.split_seed)


def _train_val(options: DataOptions, y: torch.Tensor,
               pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of train (the subset, when asked) and of val, within the pool."""
    train_rel, val_rel = _stratified(y[pool], options.val_fraction, options.split_seed)
    train_idx = _subset(y, pool[train_rel], options.train_subset, options.split_seed)
    return train_idx, pool[val_rel]


def _check_splits(options: DataOptions, tree: Decoded) -> None:
    """Refuse a freshly decoded tree that cannot be split as asked, before its cache is written."""
    pool, _ = _pool_held(options, tree.y, tree.test_y is not None)
    _train_val(options, tree.y, pool)


def _pool_index(options: DataOptions) -> tuple[Source, np.ndarray, np.ndarray | None]:
    """The source, and indices of its labelled pool and held-out test (None: shipped test)."""
    source = _load_source(options)
    shipped = source.test_x is not None and source.test_y is not None
    return source, *_pool_held(options, source.y, shipped)


def _pool_and_test(options: DataOptions) -> tuple[Split, Split]:
    source, keep, held = _pool_index(options)
    if held is None:
        return Split(source.x, source.y), Split(source.test_x, source.test_y)
    return Split(source.x[keep], source.y[keep]), Split(source.x[held], source.y[held])


# Images per float64 chunk in channel_stats: a float64 copy of all of CIFAR would be 1.2 GB.
STATS_CHUNK = 4096


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, in [0, 1] units."""
    if len(x) <= STATS_CHUNK:
        values = x.to(torch.float64).div_(255.0)
        mean = values.mean(dim=(0, 2, 3))
        std = values.std(dim=(0, 2, 3)).clamp_min(1e-3)
        return tuple(mean.tolist()), tuple(std.tolist())
    sums = torch.zeros(x.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(sums)
    for start in range(0, len(x), STATS_CHUNK):
        values = x[start:start + STATS_CHUNK].to(torch.float64).div_(255.0)
        sums += values.sum(dim=(0, 2, 3))
        squares += values.square_().sum(dim=(0, 2, 3))
    count = x.numel() // x.shape[1]
    mean = sums / count
    std = ((squares - count * mean.square()) / (count - 1)).clamp_min(0).sqrt().clamp_min(1e-3)
    return tuple(mean.tolist()), tuple(std.tolist())


def _subset(y: torch.Tensor, index: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """A stratified subset of ``n`` of ``index``; all of it when n is None or not smaller."""
    if n is None or n >= len(index):
        return index
    n_classes = len(torch.unique(y[index]))
    if n < n_classes:
        raise DataError(f"train_subset {n} is smaller than the {n_classes} classes; "
                        "every class needs at least one training image")
    keep, _ = _stratified(y[index], 1.0 - n / len(index), seed)
    return index[keep]


def load_bundle(options: DataOptions) -> DataBundle:
    """Train and validation splits, loaded once per process and shared by every trial.

    With ``train_subset``, train is a stratified subset of the full train split; val is whole.
    """
    return _bundle(_absolute(options))


@functools.lru_cache(maxsize=4)
def _bundle(options: DataOptions) -> DataBundle:
    # Indices are composed first and images gathered once, so no intermediate copy of the pool
    # is made: peak memory stays near the source plus train and val.
    source, pool, _ = _pool_index(options)
    train_idx, val_idx = _train_val(options, source.y, pool)
    train = Split(source.x[train_idx], source.y[train_idx])
    mean, std = channel_stats(train.x)
    return DataBundle(
        name=options.dataset,
        train=train,
        val=Split(source.x[val_idx], source.y[val_idx]),
        classes=source.classes,
        mean=mean,
        std=std,
    )


def load_train_pool(options: DataOptions) -> Split:
    """All labelled non-test data (full train + val, ignoring train_subset), for retraining."""
    return _pool_and_test(dataclasses.replace(options, train_subset=None))[0]


def load_test_split(options: DataOptions) -> Split:
    """The held-out test split. Only the report reads it; the search never calls this."""
    return _pool_and_test(options)[1]


def load_train_val(options: DataOptions) -> DataBundle:
    """Train and validation pooled as ``train`` (normalised by its own statistics), for the
    final retrain of a chosen configuration; ``val`` is empty. The test split stays apart."""
    pool = load_train_pool(options)
    mean, std = channel_stats(pool.x)
    return DataBundle(name=options.dataset, train=pool, val=Split(pool.x[:0], pool.y[:0]),
                      classes=_load_source(options).classes, mean=mean, std=std)
