"""ImageFolder trees (``PATH/train/<class>/*``, optional ``PATH/test/<class>/*``), decoded once.

Images are decoded with ``torchvision.io`` into one preallocated uint8 tensor, resized to one
square size, and cached under ``<data_dir>/cache/`` keyed by every file's path, size and mtime,
so later runs and other workers load a single file instead of decoding again. Workers of one
machine that find the cache cold at the same time decode it once: the others wait on a lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import statistics
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from search.data.images import IMAGE_SUFFIXES, decode, is_gray, is_image_name, resize
# Without --image-size, the tree's typical (median) shorter side, but no larger than this:
# bigger images cost CPU time a small CNN search cannot use.
MAX_DEFAULT_SIZE = 64
# How many evenly spaced files are decoded to estimate the typical size.
SIZE_SAMPLE = 256
# Bump when the cached layout changes, so old caches are not misread.
CACHE_VERSION = 1


class FolderError(ValueError):
    """An ImageFolder tree is missing, empty or otherwise unusable."""


@dataclass(frozen=True)
class Part:
    """One part of a tree (train or test): files in class order, labels, and what keys the cache."""

    files: tuple[str, ...]
    labels: tuple[int, ...]
    stamps: tuple[str, ...]  # "relative/path size mtime_ns", one per file


@dataclass(frozen=True)
class Decoded:
    """A decoded tree, as cached."""

    x: torch.Tensor  # uint8 (N, C, S, S), train part
    y: torch.Tensor  # int64 (N,)
    classes: tuple[str, ...]
    test_x: torch.Tensor | None
    test_y: torch.Tensor | None
    skipped: tuple[str, ...]  # files that could not be decoded, relative to the root
    decoded: int  # files decoded by this load: 0 on a cache hit


def _images(folder: Path) -> list[os.DirEntry]:
    # os.scandir, not Path.iterdir: 50,000 files must scan in well under a second on a cache hit.
    with os.scandir(folder) as entries:
        found = [e for e in entries if is_image_name(e.name) and e.is_file()]
    return sorted(found, key=lambda e: e.name)


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan_part(folder: Path, classes: tuple[str, ...]) -> Part:
    """List the images of each class folder; every class must have at least one."""
    files: list[str] = []
    labels: list[int] = []
    stamps: list[str] = []
    for label, name in enumerate(classes):
        found = _images(folder / name) if (folder / name).is_dir() else []
        if not found:
            raise FolderError(f"class folder {str(folder / name)!r} holds no images "
                              f"({', '.join(IMAGE_SUFFIXES)}); remove it or add images")
        prefix = f"{folder.name}/{name}/"
        for entry in found:
            stat = entry.stat()
            files.append(entry.path)
            stamps.append(f"{prefix}{entry.name} {stat.st_size} {stat.st_mtime_ns}")
        labels += [label] * len(found)
    return Part(tuple(files), tuple(labels), tuple(stamps))


def scan_tree(root: Path) -> tuple[tuple[str, ...], Part, Part | None]:
    """Classes (from train/), the train part, and the test part when the tree has one."""
    train_dir = root / "train"
    if root.exists() and not root.is_dir():
        raise FolderError(f"dataset {str(root)!r} is a file; expected a folder laid out as "
                          "PATH/train/<class>/<image>")
    if not root.is_dir():
        raise FolderError(f"dataset folder {str(root)!r} does not exist")
    if not train_dir.is_dir():
        raise FolderError(f"dataset folder {str(root)!r} has no train/ folder; expected "
                          f"{str(train_dir)}/<class>/<image> (and optionally test/)")
    classes = tuple(p.name for p in _class_dirs(train_dir))
    if not classes:
        raise FolderError(f"{str(train_dir)!r} holds no class folders, so no images")
    if len(classes) == 1:
        raise FolderError(f"{str(train_dir)!r} holds one class ({classes[0]!r}); "
                          "a classifier needs at least two")
    train = scan_part(train_dir, classes)
    test_dir = root / "test"
    if not test_dir.is_dir():
        return classes, train, None
    extra = sorted(set(p.name for p in _class_dirs(test_dir)) - set(classes))
    if extra:
        raise FolderError(f"test class {extra[0]!r} in {str(test_dir)!r} is not in train/")
    return classes, train, scan_part(test_dir, classes)


def cache_key(parts: list[Part], image_size: int | None) -> str:
    """A digest of every file's path, size and mtime: any change to the tree changes it."""
    digest = hashlib.sha256(f"v{CACHE_VERSION} size={image_size}\n".encode())
    for part in parts:
        digest.update("\n".join(part.stamps).encode())
        digest.update(b"\n--\n")
    return digest.hexdigest()


def cache_path(cache_dir: Path, root: Path, image_size: int | None, key: str) -> Path:
    """``<folder>-<where>-<key>.pt``: one file per tree and size, replaced when the tree changes."""
    resolved = root.resolve()
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", resolved.name) or "tree"
    # Two trees named alike, or one tree at two sizes, keep separate files.
    where = hashlib.sha256(f"{resolved}\0{image_size}".encode()).hexdigest()[:8]
    return cache_dir / f"{stem}-{where}-{key[:20]}.pt"


def typical_size(files: tuple[str, ...]) -> int:
    """Median shorter side of an evenly spaced sample, capped at MAX_DEFAULT_SIZE."""
    step = max(1, len(files) // SIZE_SAMPLE)
    sides: list[int] = []
    for path in files[::step][:SIZE_SAMPLE]:
        try:
            sides.append(min(decode(path).shape[1:]))
        except (RuntimeError, OSError):
            continue  # reported when the whole tree is decoded
    if not sides:
        raise FolderError(f"none of the sampled images (e.g. {str(files[0])!r}) can be decoded")
    return min(MAX_DEFAULT_SIZE, int(statistics.median(sides)))


class _Buffer:
    """A growing (N, C, S, S) uint8 tensor that starts grayscale and turns RGB when it must.

    Grayscale trees stay 1-channel; the first colour image converts the rows filled so far.
    The buffer is allocated once, so peak memory stays near the size of the final tensor.
    """

    def __init__(self, n: int, size: int) -> None:
        self.size = size
        self.x = torch.empty(n, 1, size, size, dtype=torch.uint8)
        self.count = 0

    def add(self, image: torch.Tensor) -> None:
        image = resize(image, self.size)
        if self.x.shape[1] == 1 and not is_gray(image):
            rgb = torch.empty(len(self.x), 3, self.size, self.size, dtype=torch.uint8)
            rgb[:self.count] = self.x[:self.count]
            self.x = rgb
        self.x[self.count] = image[:self.x.shape[1]]
        self.count += 1

    def result(self) -> torch.Tensor:
        return self.x[:self.count]


def _decode_parts(root: Path, parts: list[Part], size: int) -> tuple[list[tuple], list[str]]:
    """Decode each part into its own buffer; unreadable files are skipped with a warning."""
    outs: list[tuple] = []
    skipped: list[str] = []
    for part in parts:
        buffer = _Buffer(len(part.files), size)
        labels: list[int] = []
        for path, label in zip(part.files, part.labels, strict=True):
            try:
                buffer.add(decode(path))
            except (RuntimeError, OSError) as error:
                name = os.path.relpath(path, root)
                skipped.append(name)
                warnings.warn(f"skipped unreadable image {name!r}: {str(error).splitlines()[-1]}",
                              stacklevel=2)
                continue
            labels.append(label)
        outs.append((buffer, torch.tensor(labels, dtype=torch.int64)))
    return outs, skipped


def _same_channels(buffers: list[torch.Tensor]) -> list[torch.Tensor]:
    # Train and test must agree: a colour test part makes a grayscale train part RGB too.
    channels = max(x.shape[1] for x in buffers)
    return [x if x.shape[1] == channels else x.expand(-1, channels, -1, -1).contiguous()
            for x in buffers]


def decode_tree(root: Path, classes: tuple[str, ...], parts: list[Part], size: int) -> Decoded:
    outs, skipped = _decode_parts(root, parts, size)
    xs = _same_channels([buffer.result() for buffer, _ in outs])
    ys = [y for _, y in outs]
    for y, part in zip(ys, parts, strict=True):
        if len(y) == 0:
            raise FolderError(f"no image under {os.path.dirname(os.path.dirname(part.files[0]))!r} "
                              "could be decoded")
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable image(s) under {str(root)!r}", stacklevel=2)
    test = (xs[1], ys[1]) if len(parts) > 1 else (None, None)
    return Decoded(xs[0], ys[0], classes, *test, skipped=tuple(skipped), decoded=sum(map(len, ys)))


def _save(path: Path, tree: Decoded) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"x": tree.x, "y": tree.y, "test_x": tree.test_x, "test_y": tree.test_y,
               "meta": json.dumps({"classes": tree.classes, "skipped": tree.skipped})}
    # Write then rename: a worker reading at the same time sees the old file or the whole new one.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)
    for stale in path.parent.glob(f"{path.name.rsplit('-', 1)[0]}-*.pt"):
        if stale != path:
            stale.unlink(missing_ok=True)  # an older version of the same tree


def _load_cached(path: Path) -> Decoded | None:
    try:
        # mmap: the tensors are paged in as they are read, not copied through a buffer first.
        # weights_only: a cache file planted by someone else cannot run code when read.
        payload = torch.load(path, weights_only=True, mmap=True)
        meta = json.loads(payload["meta"])
        return Decoded(payload["x"], payload["y"], tuple(meta["classes"]), payload["test_x"],
                       payload["test_y"], skipped=tuple(meta["skipped"]), decoded=0)
    except Exception:  # noqa: BLE001 - torch raises almost any type for bytes it cannot read
        return None  # damaged, foreign or refused: decode again and replace it


def load_tree(root: Path, cache_dir: Path, image_size: int | None = None) -> Decoded:
    """Decode a tree, or load it from the cache when no file has changed since."""
    classes, train, test = scan_tree(root)
    parts = [train] if test is None else [train, test]
    key = cache_key(parts, image_size)
    path = cache_path(cache_dir, root, image_size, key)
    cached = _load_cached(path) if path.exists() else None
    if cached is None:
        with _one_decoder(path):
            # Workers started together wait here for the first; then the cache is warm.
            cached = _load_cached(path) if path.exists() else None
            if cached is None:
                tree = decode_tree(root, classes, parts, image_size or typical_size(parts[0].files))
                _save(path, tree)
                return tree
    if cached.skipped:
        warnings.warn(f"skipped {len(cached.skipped)} unreadable image(s) under {str(root)!r} "
                      f"(cached): {', '.join(cached.skipped[:5])}", stacklevel=2)
    return cached


def lock_path(path: Path) -> Path:
    """One lock per tree and image size (the cache file's name without its content key)."""
    return path.with_name(f".{path.name.rsplit('-', 1)[0]}.lock")


@contextmanager
def _one_decoder(path: Path) -> Iterator[None]:
    """Hold the tree's decode lock (flock: the workers of one machine) while decoding it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path(path), "a")  # noqa: SIM115 - closed below, lock with it
    except OSError:  # no lock file possible (a folder we cannot write): decode without one
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
