"""Writers for tiny datasets in the true on-disk formats, so the real loaders read them."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

MNIST_FILES = {
    True: ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    False: ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def class_images(n: int, n_classes: int, shape: tuple[int, ...], seed: int) -> tuple[np.ndarray,
                                                                                       np.ndarray]:
    """Images whose brightness depends on the class, so a model can learn them in one epoch."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % n_classes
    base = (labels * (200 // max(1, n_classes - 1))).reshape(-1, *([1] * len(shape)))
    images = np.clip(base + rng.integers(0, 40, (n, *shape)), 0, 255).astype(np.uint8)
    return images, labels.astype(np.uint8)


def write_idx(folder: Path, train: bool, n: int, n_classes: int = 10, size: int = 28) -> None:
    """MNIST/Fashion-MNIST IDX files (big-endian magic and dims, then raw bytes), gzipped."""
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = class_images(n, n_classes, (size, size), seed=int(train))
    image_name, label_name = MNIST_FILES[train]
    with gzip.open(folder / image_name, "wb") as out:
        out.write(struct.pack(">iiii", 0x0803, n, size, size) + images.tobytes())
    with gzip.open(folder / label_name, "wb") as out:
        out.write(struct.pack(">ii", 0x0801, n) + labels.tobytes())


def write_mnist(data_dir: Path, name: str = "MNIST", n_train: int = 60, n_test: int = 20) -> None:
    for train, n in ((True, n_train), (False, n_test)):
        write_idx(data_dir / name / "raw", train, n)


def _pickle(path: Path, table: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        pickle.dump(table, out, protocol=2)


def _cifar_batch(n: int, n_classes: int, seed: int, label_key: str) -> dict:
    images, labels = class_images(n, n_classes, (3, 32, 32), seed)
    # Rows of 3072 bytes: the red plane, then green, then blue, as in the published batches.
    return {"batch_label": f"batch {seed}", label_key: labels.tolist(),
            "data": images.reshape(n, 3072), "filenames": [f"{i}.png" for i in range(n)]}


def write_cifar10(data_dir: Path, per_batch: int = 12, n_test: int = 20) -> None:
    folder = data_dir / "cifar-10-batches-py"
    for i in range(1, 6):
        _pickle(folder / f"data_batch_{i}", _cifar_batch(per_batch, 10, i, "labels"))
    _pickle(folder / "test_batch", _cifar_batch(n_test, 10, 0, "labels"))
    _pickle(folder / "batches.meta", {"label_names": [f"c{i}" for i in range(10)],
                                      "num_cases_per_batch": per_batch, "num_vis": 3072})


def write_cifar100(data_dir: Path, n_train: int = 400, n_test: int = 100, n_classes: int = 100) -> None:
    folder = data_dir / "cifar-100-python"
    for name, n, seed in (("train", n_train, 1), ("test", n_test, 0)):
        batch = _cifar_batch(n, n_classes, seed, "fine_labels")
        batch["coarse_labels"] = [label // 5 for label in batch["fine_labels"]]
        _pickle(folder / name, batch)
    _pickle(folder / "meta", {"fine_label_names": [f"f{i}" for i in range(n_classes)],
                              "coarse_label_names": [f"k{i}" for i in range(20)]})


def encode(image: np.ndarray, fmt: str, mode: str | None = None) -> bytes:
    """PNG or JPEG bytes of an (H, W) or (H, W, 3) uint8 array, optionally converted (P, RGBA)."""
    picture = Image.fromarray(image)
    if mode is not None:
        picture = picture.convert(mode)
    out = io.BytesIO()
    picture.save(out, format=fmt)
    return out.getvalue()


def write_tree(root: Path, per_class: int = 6, classes: tuple[str, ...] = ("cat", "dog", "eel"),
               size: int = 12, parts: tuple[str, ...] = ("train",)) -> None:
    """A mixed tree: RGB PNG, grayscale PNG, JPEG, palette and RGBA PNGs; sizes vary a little."""
    rng = np.random.default_rng(0)
    for part in parts:
        for label, name in enumerate(classes):
            folder = root / part / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                side = size + (i % 3)  # not all the same size: the loader resizes
                rgb = np.clip(label * 90 + rng.integers(0, 30, (side, side, 3)), 0, 255).astype(np.uint8)
                kind = i % 5
                if kind == 0:
                    data, ext = encode(rgb, "PNG"), "png"
                elif kind == 1:
                    data, ext = encode(rgb[:, :, 0], "PNG"), "png"  # grayscale
                elif kind == 2:
                    data, ext = encode(rgb, "JPEG"), "jpg"
                elif kind == 3:
                    data, ext = encode(rgb, "PNG", mode="P"), "png"  # palette
                else:
                    data, ext = encode(rgb, "PNG", mode="RGBA"), "png"
                (folder / f"{i:03d}.{ext}").write_bytes(data)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def bomb_png(path: Path, side: int) -> None:
    """A real, valid side x side 1-bit black PNG: a few KB on disk (10,000 px: 12 KB), side**2
    pixels once decoded (3 bytes each as RGB). Rows are compressed one by one, so writing it
    costs no memory."""
    packer = zlib.compressobj(9)
    row = bytes(1 + (side + 7) // 8)  # filter byte 0, then the row's bits
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit grayscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data)
                     + _png_chunk(b"IEND", b""))


def huge_jpeg(path: Path, width: int, height: int) -> None:
    """A real 8x8 JPEG whose frame header (SOF0) is rewritten to claim width x height."""
    data = bytearray(encode(np.zeros((8, 8, 3), np.uint8), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))


def many_frames_gif(path: Path, side: int, frames: int) -> None:
    """A real animated GIF of ``frames`` different side x side frames: small on disk, and
    torchvision decodes every frame."""
    images = [Image.fromarray(np.full((side, side), 10 * i % 256, np.uint8)) for i in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:])


def rewrite_gz(path: Path, change: Callable[[bytes], bytes]) -> None:
    """Rewrite a gzipped file's content (an IDX file's header or body) and gzip it again."""
    with gzip.open(path, "rb") as handle:
        content = handle.read()
    with gzip.open(path, "wb") as out:
        out.write(change(content))


def rewrite_pickle(path: Path, change: Callable[[dict], object]) -> None:
    """Rewrite one of our own CIFAR pickles (written by the writers above) with ``change``."""
    with open(path, "rb") as handle:
        table = pickle.load(handle, encoding="latin1")
    with open(path, "wb") as out:
        pickle.dump(change(table), out, protocol=2)


def truncate(path: Path, keep: int) -> None:
    """Keep the first ``keep`` bytes of a file: a download or a copy cut short."""
    path.write_bytes(path.read_bytes()[:keep])


def relabel(change: Callable[[np.ndarray], np.ndarray]) -> Callable[[bytes], bytes]:
    """A rewrite of an IDX labels file: ``change`` maps its labels to the new ones."""
    def rewrite(content: bytes) -> bytes:
        labels = change(np.frombuffer(content[8:], np.uint8))
        return struct.pack(">ii", 0x0801, len(labels)) + labels.astype(np.uint8).tobytes()
    return rewrite
