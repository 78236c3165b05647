"""Bad-input cases of the data layer (images, trees, caches, torchvision files, data folders):
part of the corpus in tests/helpers/badinput.py, in the same Case format.

Every file is written in its real on-disk format (tests/helpers/dataset_files.py) and then
spoiled the way a user's copy can be: a decompression bomb, a truncated download, a tampered
header, labels that disagree with the images.
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tests.helpers.badinput import MARKER, TINY, Case, Crafted, Setup, files, report
from tests.helpers.dataset_files import (
    bomb_png,
    huge_jpeg,
    many_frames_gif,
    relabel,
    rewrite_gz,
    rewrite_pickle,
    truncate,
    write_cifar10,
    write_cifar100,
    write_mnist,
    write_tree,
)

MODEL = "reports/digits/model.pt"  # the finished study's report, copied by ``report``
BOMB_SIDE = 10_000  # 100 megapixels decoded, 12 KB on disk
TREE = ("--dataset", "tree", *TINY)
MNIST = ("--dataset", "mnist", "--data-dir", "d", *TINY)
CIFAR10 = ("--dataset", "cifar10", "--data-dir", "d", *TINY)


def _both(*setups: Setup) -> Setup:
    def setup(case: Path, finished: Path) -> None:
        for one in setups:
            one(case, finished)
    return setup


# ImageFolder trees -----------------------------------------------------------------------------

def tree(damage: Callable[[Path], object] = lambda root: None) -> Setup:
    """A real mixed tree (PNG, JPEG, palette, RGBA; three classes) at ``tree/``, then damaged."""
    def setup(case: Path, finished: Path) -> None:
        write_tree(case / "tree", per_class=3)
        damage(case / "tree")
    return setup


def only(writer: Callable[[Path], None], name: str) -> Callable[[Path], None]:
    """Every image of the tree replaced by one file written by ``writer``."""
    def damage(root: Path) -> None:
        for folder in (root / "train").iterdir():
            shutil.rmtree(folder)
            folder.mkdir()
            writer(folder / name)
    return damage


def _class_is_a_file(root: Path) -> None:
    shutil.rmtree(root / "train" / "cat")
    shutil.rmtree(root / "train" / "eel")
    (root / "train" / "cat").write_text("a file where the cat folder belongs\n")


def _only_hidden(root: Path) -> None:
    for path in list((root / "train").rglob("*.*")):
        path.rename(path.with_name(f".{path.name}"))  # as macOS's ._x.png files are


def _loose_in_train(root: Path) -> None:
    for path in list((root / "train").rglob("*.*")):
        path.rename(root / "train" / f"{path.parent.name}-{path.name}")
    for folder in ("cat", "dog", "eel"):
        (root / "train" / folder).rmdir()


def _test_class_not_in_train(root: Path) -> None:
    write_tree(root, per_class=2, classes=("cat", "dog", "eel", "fox"), parts=("test",))


def _one_image_per_class(root: Path) -> None:
    for path in (root / "train").rglob("*.*"):
        if not path.name.startswith("000"):
            path.unlink()


# Images for predict ----------------------------------------------------------------------------

def image(writer: Callable[[Path], None], name: str) -> Setup:
    return _both(report, lambda case, finished: writer(case / name))


def _fifo(path: Path) -> None:
    os.mkfifo(path)  # reading it would wait forever for a writer


# torchvision files -----------------------------------------------------------------------------

def mnist(spoil: Callable[[Path], object]) -> Setup:
    """Real MNIST IDX files (gzipped) under d/MNIST/raw, then ``spoil(raw folder)``."""
    def setup(case: Path, finished: Path) -> None:
        write_mnist(case / "d", "MNIST")
        spoil(case / "d" / "MNIST" / "raw")
    return setup


def cifar10(spoil: Callable[[Path], object]) -> Setup:
    def setup(case: Path, finished: Path) -> None:
        write_cifar10(case / "d")
        spoil(case / "d" / "cifar-10-batches-py")
    return setup


def _magic(content: bytes) -> bytes:
    return struct.pack(">i", 0x0803 + 0x100) + content[4:]  # int8, not unsigned bytes


def _unpacked_cut_short(raw: Path) -> None:
    """Only the unpacked images file (as torchvision's download leaves it), cut short."""
    packed = raw / "train-images-idx3-ubyte.gz"
    (raw / "train-images-idx3-ubyte").write_bytes(gzip.decompress(packed.read_bytes())[:5000])
    packed.unlink()


def _crafted_batch(folder: Path) -> None:
    # The marker lands in the case folder (two levels up) if the file is ever unpickled.
    rewrite_pickle(folder / "data_batch_1", lambda table: {**table, "data": Crafted(
        folder.parent.parent / MARKER)})


def _cifar100_meta(case: Path, finished: Path) -> None:
    write_cifar100(case / "d")
    rewrite_pickle(case / "d" / "cifar-100-python" / "meta",
                   lambda table: {**table, "fine_label_names": "f0 f1 f2"})


LONG = "n" * 300  # one name longer than the 255 bytes a file name may have

DATA_CASES: list[Case] = [
    # search.run on a tree whose every image is too big to decode: none is left, one line
    Case("data-run-tree-all-png-bombs", "run", TREE, "10000x10000 pixels (100 megapixels)",
         tree(only(lambda p: bomb_png(p, BOMB_SIDE), "big.png"))),
    Case("data-run-tree-all-png-bombs-image-size", "run", (*TREE, "--image-size", "16"),
         "big.png': 10000x10000 pixels", tree(only(lambda p: bomb_png(p, BOMB_SIDE), "big.png"))),
    Case("data-run-tree-all-huge-jpeg-headers", "run", TREE, "60000x40000 pixels",
         tree(only(lambda p: huge_jpeg(p, 60000, 40000), "big.jpg"))),
    Case("data-run-tree-all-gif-frame-bombs", "run", (*TREE, "--image-size", "16"),
         "in 40 frames", tree(only(lambda p: many_frames_gif(p, 1300, 40), "anim.gif"))),
    Case("data-run-tree-unreadable-images-only", "run", TREE, "big.png",
         tree(only(lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n cut short"), "big.png"))),
    # search.predict on one image too big to decode (or not an image file at all)
    Case("data-predict-png-bomb", "predict", (MODEL, "big.png"), "'big.png': 10000x10000 pixels",
         image(lambda p: bomb_png(p, BOMB_SIDE), "big.png")),
    Case("data-predict-huge-jpeg-header", "predict", (MODEL, "big.jpg"),
         "'big.jpg': 65000x65000 pixels", image(lambda p: huge_jpeg(p, 65000, 65000), "big.jpg")),
    Case("data-predict-gif-frame-bomb", "predict", (MODEL, "anim.gif"), "'anim.gif': 1300x1300 "
         "pixels in 40 frames", image(lambda p: many_frames_gif(p, 1300, 40), "anim.gif")),
    Case("data-predict-fifo-named-png", "predict", (MODEL, "pipe.png"),
         "'pipe.png': not a regular file", image(_fifo, "pipe.png")),
    Case("data-predict-text-named-png", "predict", (MODEL, "notes.png"),
         "'notes.png': not a PNG, JPEG, GIF or WebP image",
         image(lambda p: p.write_text("not an image\n"), "notes.png")),
    # MNIST files spoiled: --dataset mnist --data-dir d
    Case("data-mnist-truncated-gz", "run", MNIST, "train-images-idx3-ubyte.gz' is not a readable "
         "gzip file", mnist(lambda raw: truncate(raw / "train-images-idx3-ubyte.gz", 300))),
    Case("data-mnist-wrong-magic", "run", MNIST, "train-images-idx3-ubyte.gz' has magic number "
         "0x00000903", mnist(lambda raw: rewrite_gz(raw / "train-images-idx3-ubyte.gz", _magic))),
    Case("data-mnist-body-cut-short", "run", MNIST, "t10k-images-idx3-ubyte.gz' holds 1000 bytes",
         mnist(lambda raw: rewrite_gz(raw / "t10k-images-idx3-ubyte.gz", lambda c: c[:1016]))),
    Case("data-mnist-fewer-labels-than-images", "run", MNIST,
         "train-labels-idx1-ubyte.gz' holds 59 labels for 60 images",
         mnist(lambda raw: rewrite_gz(raw / "train-labels-idx1-ubyte.gz",
                                      relabel(lambda y: y[:-1])))),
    Case("data-mnist-label-out-of-range", "run", MNIST, "t10k-labels-idx1-ubyte.gz' holds label 12",
         mnist(lambda raw: rewrite_gz(raw / "t10k-labels-idx1-ubyte.gz",
                                      relabel(lambda y: np.where(y == 3, 12, y))))),
    Case("data-mnist-gz-of-noise", "run", MNIST, "train-labels-idx1-ubyte.gz' is not a readable "
         "gzip file", mnist(lambda raw: (raw / "train-labels-idx1-ubyte.gz").write_bytes(
             np.random.default_rng(0).bytes(500)))),
    Case("data-mnist-unpacked-file-cut-short", "run", MNIST, "train-images-idx3-ubyte' holds 4984",
         mnist(_unpacked_cut_short)),
    # CIFAR files spoiled: --dataset cifar10 --data-dir d
    Case("data-cifar10-truncated-batch", "run", CIFAR10, "data_batch_2' is not a readable CIFAR",
         cifar10(lambda folder: truncate(folder / "data_batch_2", 2000))),
    Case("data-cifar10-batch-without-labels", "run", CIFAR10, "data_batch_3' is not a CIFAR file: "
         "it has no 'labels' entry", cifar10(lambda folder: rewrite_pickle(
             folder / "data_batch_3", lambda t: {k: v for k, v in t.items() if k != "labels"}))),
    Case("data-cifar10-fewer-labels-than-images", "run", CIFAR10,
         "test_batch' holds 19 labels for 20 images", cifar10(lambda folder: rewrite_pickle(
             folder / "test_batch", lambda t: {**t, "labels": t["labels"][:-1]}))),
    Case("data-cifar10-label-out-of-range", "run", CIFAR10, "data_batch_1' holds label 10, outside",
         cifar10(lambda folder: rewrite_pickle(
             folder / "data_batch_1", lambda t: {**t, "labels": [10] + t["labels"][1:]}))),
    Case("data-cifar10-rows-not-3072-bytes", "run", CIFAR10, "data_batch_4': 'data' is not rows",
         cifar10(lambda folder: rewrite_pickle(
             folder / "data_batch_4", lambda t: {**t, "data": t["data"][:, :1000]}))),
    Case("data-cifar10-batch-that-runs-code", "run", CIFAR10, "data_batch_1' is not a readable "
         "CIFAR file", cifar10(_crafted_batch)),
    Case("data-cifar10-missing-batch", "run", CIFAR10, "(no data_batch_5); pass --download",
         cifar10(lambda folder: (folder / "data_batch_5").unlink())),
    Case("data-cifar100-meta-not-a-list", "run", ("--dataset", "cifar100", "--data-dir", "d", *TINY),
         "meta': 'fine_label_names' is not a list", _cifar100_meta),
    # --data-dir and --dataset paths that cannot work: refused before anything is written
    Case("data-run-data-dir-is-a-file", "run", ("--data-dir", "notes.txt", *TINY),
         "'notes.txt' is a file, not a folder", files(notes__txt="cats\n")),
    Case("data-run-data-dir-inside-a-file", "run", ("--data-dir", "notes.txt/data", *TINY),
         "'notes.txt/data' cannot be used: 'notes.txt' is a file", files(notes__txt="cats\n")),
    Case("data-run-data-dir-under-proc", "run", ("--data-dir", "/proc/cnn-search", *TREE),
         "'/proc/cnn-search' is under /proc", tree()),
    Case("data-run-data-dir-under-sys", "run", ("--data-dir", "/sys/cnn-search", *MNIST[:2], *TINY),
         "'/sys/cnn-search' is under /sys", mnist(lambda raw: None)),
    Case("data-run-data-dir-name-too-long", "run", ("--data-dir", f"data/{LONG}", *TREE),
         "a name in it has 300 bytes", tree()),
    Case("data-run-dataset-name-too-long", "run", ("--dataset", f"photos/{LONG}", *TINY),
         f"photos/{LONG}' cannot be used: a name in it has 300 bytes"),
    # ImageFolder trees that cannot be trained on
    Case("data-run-tree-train-is-a-file", "run", TREE, "tree/train' is a file",
         tree(lambda root: shutil.rmtree(root / "train") or (root / "train").write_text("x\n"))),
    Case("data-run-tree-test-is-a-file", "run", TREE, "tree/test' is a file",
         tree(lambda root: (root / "test").write_text("x\n"))),
    Case("data-run-tree-no-train", "run", TREE, "/tree' has no train/ folder",
         tree(lambda root: (root / "train").rename(root / "training"))),
    Case("data-run-tree-one-class", "run", TREE, "holds one class ('cat')",
         tree(lambda root: [shutil.rmtree(root / "train" / c) for c in ("dog", "eel")])),
    Case("data-run-tree-empty-class-folder", "run", TREE, "tree/train/fox' holds no images",
         tree(lambda root: (root / "train" / "fox").mkdir())),
    Case("data-run-tree-test-class-not-in-train", "run", TREE, "test class 'fox'",
         tree(_test_class_not_in_train)),
    Case("data-run-tree-class-folder-is-a-file", "run", TREE, "'cat' is a file, not a class folder",
         tree(_class_is_a_file)),
    Case("data-run-tree-only-hidden-files", "run", TREE, "(3 hidden file(s), named with a "
         "leading '.', are skipped)",
         tree(_only_hidden)),
    Case("data-run-tree-images-loose-in-train", "run", TREE, "'cat-000.png' and 8 other(s) are "
         "files, not class folders", tree(_loose_in_train)),
    Case("data-run-tree-one-image-per-class", "run", TREE, "every class needs 2 or more examples",
         tree(_one_image_per_class)),
]
