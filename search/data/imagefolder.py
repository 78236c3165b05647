"""ImageFolder trees (``PATH/train/<class>/*``, optional ``PATH/test/<class>/*``), decoded once.

Images are decoded with ``torchvision.io`` into one preallocated uint8 tensor, resized to one
square size, and cached under ``<data_dir>/cache/`` keyed by every file's path, size and mtime,
so later runs and other workers load a single file instead of decoding again. Workers of one
machine that find the cache cold at the same time decode it once: the others wait on a lock.
A cache file is a file a user can edit: one that does not match the tree is decoded again.
A load that is refused leaves nothing behind: no cache folder, no lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import stat
import statistics
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from search.data.images import (
    IMAGE_SUFFIXES,
    ImageError,
    decode,
    image_size,
    is_gray,
    is_image_name,
    resize,
)

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


def _kind(path: Path) -> str:
    """"folder", "file" (anything else that exists) or "missing"; a path the system cannot even
    look up (a name too long, a link loop, no permission) is a FolderError naming the cause."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as error:
        raise FolderError(f"cannot use {str(path)!r}: {error.strerror or error}") from None
    return "folder" if stat.S_ISDIR(mode) else "file"


def _loose_files(folder: Path) -> str:
    """Why a train/ folder has too few classes, when files sit where class folders belong."""
    loose = sorted(p.name for p in folder.iterdir()
                   if not p.is_dir() and not p.name.startswith("."))
    if not loose:
        return ""
    return (f"; {loose[0]!r} and {len(loose) - 1} other(s) are files, not class folders"
            if len(loose) > 1 else f"; {loose[0]!r} is a file, not a class folder")


def _hidden(folder: Path) -> str:
    """Why a class folder with files holds no images, when they are hidden (``._x.png``)."""
    if not folder.is_dir():
        return ""
    hidden = sum(1 for p in folder.iterdir() if p.name.startswith(".") and p.is_file())
    return f" ({hidden} hidden file(s), named with a leading '.', are skipped)" if hidden else ""


def scan_part(folder: Path, classes: tuple[str, ...]) -> Part:
    """List the images of each class folder; every class must have at least one."""
    files: list[str] = []
    labels: list[int] = []
    stamps: list[str] = []
    for label, name in enumerate(classes):
        found = _images(folder / name) if (folder / name).is_dir() else []
        if not found:
            raise FolderError(f"class folder {str(folder / name)!r} holds no images "
                              f"({', '.join(IMAGE_SUFFIXES)}){_hidden(folder / name)}; remove it "
                              "or add images")
        prefix = f"{folder.name}/{name}/"
        for entry in found:
            info = entry.stat()
            files.append(entry.path)
            stamps.append(f"{prefix}{entry.name} {info.st_size} {info.st_mtime_ns}")
        labels += [label] * len(found)
    return Part(tuple(files), tuple(labels), tuple(stamps))


def _check_folder(path: Path, what: str, layout: str) -> bool:
    """True for a folder, False when missing; a file where a folder belongs is a FolderError."""
    kind = _kind(path)
    if kind == "file":
        raise FolderError(f"{what} {str(path)!r} is a file; expected a folder laid out as "
                          f"{layout}")
    return kind == "folder"


def _train_classes(train_dir: Path) -> tuple[str, ...]:
    classes = tuple(p.name for p in _class_dirs(train_dir))
    if not classes:
        raise FolderError(f"{str(train_dir)!r} holds no class folders, so no images"
                          f"{_loose_files(train_dir)}")
    if len(classes) == 1:
        raise FolderError(f"{str(train_dir)!r} holds one class ({classes[0]!r}); "
                          f"a classifier needs at least two{_loose_files(train_dir)}")
    return classes


def scan_tree(root: Path) -> tuple[tuple[str, ...], Part, Part | None]:
    """Classes (from train/), the train part, and the test part when the tree has one."""
    try:
        return _scan(root)
    except OSError as error:  # a folder that cannot be listed (permissions, an I/O error)
        where = f"{error.filename!r}: " if error.filename else ""
        raise FolderError(f"cannot read dataset {str(root)!r}: {where}"
                          f"{error.strerror or error}") from None


def _scan(root: Path) -> tuple[tuple[str, ...], Part, Part | None]:
    train_dir, test_dir = root / "train", root / "test"
    if not _check_folder(root, "dataset", "PATH/train/<class>/<image>"):
        raise FolderError(f"dataset folder {str(root)!r} does not exist")
    if not _check_folder(train_dir, "train folder", "train/<class>/<image>"):
        raise FolderError(f"dataset folder {str(root)!r} has no train/ folder; expected "
                          f"{str(train_dir)}/<class>/<image> (and optionally test/)")
    classes = _train_classes(train_dir)
    train = scan_part(train_dir, classes)
    if not _check_folder(test_dir, "test folder", "test/<class>/<image>"):
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
    """Median shorter side of an evenly spaced sample (read from headers), capped at
    MAX_DEFAULT_SIZE. Files over the limits are left out, as the decode leaves them out."""
    step = max(1, len(files) // SIZE_SAMPLE)
    sides: list[int] = []
    errors: list[ImageError] = []  # reported file by file when the tree is decoded
    for path in files[::step][:SIZE_SAMPLE]:
        try:
            sides.append(min(image_size(path)))
        except ImageError as error:
            errors.append(error)
    if not sides:  # then errors is not empty: every class folder holds a file
        folder = os.path.dirname(os.path.dirname(files[0]))
        raise FolderError(f"none of the images sampled under {folder!r} can be read "
                          f"({errors[0].path!r}: {errors[0]}); no image is left to train on")
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


def _decode_parts(root: Path, parts: list[Part],
                  size: int) -> tuple[list[tuple], list[tuple[str, str]]]:
    """Decode each part into its own buffer; unreadable files are skipped: (name, reason)."""
    outs: list[tuple] = []
    skipped: list[tuple[str, str]] = []
    for part in parts:
        buffer = _Buffer(len(part.files), size)
        labels: list[int] = []
        for path, label in zip(part.files, part.labels, strict=True):
            try:
                buffer.add(decode(path))
            except ImageError as error:
                skipped.append((os.path.relpath(path, root), str(error)))
                continue
            labels.append(label)
        outs.append((buffer, torch.tensor(labels, dtype=torch.int64)))
    return outs, skipped


def _same_channels(buffers: list[torch.Tensor]) -> list[torch.Tensor]:
    # Train and test must agree: a colour test part makes a grayscale train part RGB too.
    channels = max(x.shape[1] for x in buffers)
    return [x if x.shape[1] == channels else x.expand(-1, channels, -1, -1).contiguous()
            for x in buffers]


def decode_tree(root: Path, classes: tuple[str, ...], parts: list[Part], size: int,
                check: Callable[[Decoded], None] | None = None) -> Decoded:
    """Decode every part. ``check`` may refuse the result by raising; skipped files are warned
    about only once it has passed, so a refusal is one line and nothing else."""
    outs, skipped = _decode_parts(root, parts, size)
    xs = _same_channels([buffer.result() for buffer, _ in outs])
    ys = [y for _, y in outs]
    for y, part in zip(ys, parts, strict=True):
        if len(y) == 0:
            folder = os.path.dirname(os.path.dirname(part.files[0]))
            name, reason = next((n, r) for n, r in skipped
                                if n.split(os.sep)[0] == os.path.basename(folder))
            raise FolderError(f"no image under {folder!r} can be read ({name!r}: {reason}); "
                              "no image is left to train on")
    test = (xs[1], ys[1]) if len(parts) > 1 else (None, None)
    tree = Decoded(xs[0], ys[0], classes, *test, skipped=tuple(n for n, _ in skipped),
                   decoded=sum(map(len, ys)))
    if check is not None:
        check(tree)
    for name, reason in skipped:
        warnings.warn(f"skipped unreadable image {name!r}: {reason}", stacklevel=2)
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable image(s) under {str(root)!r}", stacklevel=2)
    return tree


def _save(path: Path, tree: Decoded) -> None:
    """Write the cache; a cache that cannot be written (a read-only or full disk) costs only a
    decode next time, so it is a warning, not a failure."""
    payload = {"x": tree.x, "y": tree.y, "test_x": tree.test_x, "test_y": tree.test_y,
               "meta": json.dumps({"classes": tree.classes, "skipped": tree.skipped})}
    # Write then rename: a worker reading at the same time sees the old file or the whole new one.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, temporary)
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        warnings.warn(f"cannot write the decode cache {str(path)!r}: {error.strerror or error}; "
                      "the tree will be decoded again next time", stacklevel=2)
        return
    for stale in path.parent.glob(f"{path.name.rsplit('-', 1)[0]}-*.pt"):
        if stale != path:
            stale.unlink(missing_ok=True)  # an older version of the same tree


def _images_ok(x: object, count: int, channels: int | None = None, size: int | None = None
               ) -> bool:
    """uint8 (count, C, S, S) with C 1 or 3, S at least 1, and the channels and size asked."""
    return (isinstance(x, torch.Tensor) and x.dtype == torch.uint8 and x.ndim == 4
            and len(x) == count and x.shape[1] in (1, 3) and x.shape[2] == x.shape[3] > 0
            and channels in (None, x.shape[1]) and size in (None, x.shape[2]))


def _labels_ok(y: object, count: int, n_classes: int) -> bool:
    """int64 (count,), count at least 1, with every label a class index."""
    return (isinstance(y, torch.Tensor) and y.dtype == torch.int64 and y.ndim == 1
            and len(y) == count > 0 and int(y.min()) >= 0 and int(y.max()) < n_classes)


def _expected_counts(parts: list[Part], skipped: object) -> list[int] | None:
    """Images each part must hold: its files less its skipped ones; None when ``skipped`` is
    not a list of distinct files of the tree."""
    if not isinstance(skipped, list) or not all(isinstance(name, str) for name in skipped):
        return None
    if len(set(skipped)) != len(skipped):
        return None
    # A part's files by the names the skipped list uses: "train/<class>/<file>".
    names = [{stamp.rsplit(" ", 2)[0] for stamp in part.stamps} for part in parts]
    if not all(any(name in known for known in names) for name in skipped):
        return None
    return [len(known) - len(known.intersection(skipped)) for known in names]


def _from_payload(payload: object, classes: tuple[str, ...], parts: list[Part],
                  image_size: int | None) -> Decoded | None:
    """The cached tree, or None when the file does not match the tree it is named for: any
    field of the wrong type, shape or range, or counts that disagree with the files."""
    if not isinstance(payload, dict) or not isinstance(payload.get("meta"), str):
        return None
    meta = json.loads(payload["meta"])
    if not isinstance(meta, dict) or meta.get("classes") != list(classes):
        return None
    counts = _expected_counts(parts, meta.get("skipped"))
    if counts is None:
        return None
    x, y, test_x, test_y = (payload.get(k) for k in ("x", "y", "test_x", "test_y"))
    if not _images_ok(x, counts[0], size=image_size) or not _labels_ok(y, counts[0], len(classes)):
        return None
    if len(parts) == 1 and (test_x is not None or test_y is not None):
        return None
    if len(parts) == 2 and not (_images_ok(test_x, counts[1], x.shape[1], x.shape[2])
                                and _labels_ok(test_y, counts[1], len(classes))):
        return None
    return Decoded(x, y, classes, test_x, test_y, skipped=tuple(meta["skipped"]), decoded=0)


def _load_cached(path: Path, classes: tuple[str, ...], parts: list[Part],
                 image_size: int | None) -> Decoded | None:
    """The cached tree, or None when there is none or it is damaged, foreign or tampered with:
    then the tree is decoded again and the file replaced."""
    if not path.is_file():
        return None
    try:
        # mmap: the tensors are paged in as they are read, not copied through a buffer first.
        # weights_only: a cache file planted by someone else cannot run code when read.
        payload = torch.load(path, weights_only=True, mmap=True)
        return _from_payload(payload, classes, parts, image_size)
    except Exception:  # noqa: BLE001 - torch raises almost any type for bytes it cannot read
        return None


def load_tree(root: Path, cache_dir: Path, image_size: int | None = None,
              check: Callable[[Decoded], None] | None = None) -> Decoded:
    """Decode a tree, or load it from the cache when no file has changed since.

    ``check`` may refuse a freshly decoded tree (e.g. too few images to split) by raising;
    it runs before the cache is written, so a refused tree leaves nothing on disk.
    """
    classes, train, test = scan_tree(root)
    parts = [train] if test is None else [train, test]
    path = cache_path(cache_dir, root, image_size, cache_key(parts, image_size))
    cached = _load_cached(path, classes, parts, image_size)
    if cached is None:
        size = image_size or typical_size(train.files)
        with _one_decoder(path):
            # Workers started together wait here for the first; then the cache is warm.
            cached = _load_cached(path, classes, parts, image_size)
            if cached is None:
                tree = decode_tree(root, classes, parts, size, check)
                _save(path, tree)
                return tree
    if cached.skipped:
        warnings.warn(f"skipped {len(cached.skipped)} unreadable image(s) under {str(root)!r} "
                      f"(cached): {', '.join(cached.skipped[:5])}", stacklevel=2)
    return cached


def lock_path(path: Path) -> Path:
    """One lock per tree and image size (the cache file's name without its content key)."""
    return path.with_name(f".{path.name.rsplit('-', 1)[0]}.lock")


def _undo(lock: Path | None, folders: list[Path]) -> None:
    """Remove a lock file and folders this load created, so a refused load leaves nothing."""
    with contextlib.suppress(OSError):
        if lock is not None:
            lock.unlink(missing_ok=True)
    for folder in folders:  # deepest first
        try:
            folder.rmdir()
        except FileNotFoundError:
            continue  # never made: mkdir failed before it
        except OSError:
            return  # not empty: another worker's files are there now


@contextmanager
def _one_decoder(path: Path) -> Iterator[None]:
    """Hold the tree's decode lock (flock: the workers of one machine) while decoding it.

    If the decode fails, the lock file and the folders made for it are removed again.
    """
    lock = lock_path(path)
    made: list[Path] = []
    try:
        made = [f for f in (path.parent, *path.parent.parents) if not f.exists()]
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not lock.exists()
        handle = open(lock, "a")  # noqa: SIM115 - closed below, lock with it
    except OSError:  # no lock file possible (a folder we cannot write): decode without one
        _undo(None, made)
        yield
        return
    try:
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
    except BaseException:
        _undo(lock if fresh else None, made)
        raise
