"""ImageFolder trees: decoded once with torchvision.io, converted, resized, cached."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from search.data.imagefolder import MAX_DEFAULT_SIZE, load_tree, lock_path
from search.data.options import DataError, DataOptions, default_study_name
from search.data.registry import load_bundle, load_test_split
from tests.helpers.dataset_files import encode, write_tree


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    write_tree(tmp_path / "pets", per_class=6)
    return tmp_path / "pets"


def test_load_tree_mixed_formats_become_one_rgb_tensor(tree: Path, tmp_path: Path) -> None:
    loaded = load_tree(tree, tmp_path / "cache")
    # Rule: PNG, JPEG, grayscale, palette and RGBA images all become (N, 3, S, S) uint8, S being
    # the typical (median) side, labels in class-folder order.
    assert loaded.x.shape == (18, 3, 13, 13) and loaded.x.dtype == torch.uint8
    assert loaded.classes == ("cat", "dog", "eel")
    assert loaded.y.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    assert loaded.test_x is None and loaded.skipped == () and loaded.decoded == 18


def test_load_tree_palette_png_keeps_its_colours(tmp_path: Path) -> None:
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # pure red
    for name in ("a", "b"):
        (tmp_path / "t" / "train" / name).mkdir(parents=True)
        (tmp_path / "t" / "train" / name / "p.png").write_bytes(encode(rgb, "PNG", mode="P"))
    x = load_tree(tmp_path / "t", tmp_path / "cache").x
    # Rule: a palette image is expanded through its palette, not read as palette indices.
    assert x[:, 0].float().mean() > 190 and x[:, 1:].float().mean() < 10


def test_load_tree_grayscale_tree_stays_one_channel(tmp_path: Path) -> None:
    gray = np.full((10, 10), 90, dtype=np.uint8)
    for name in ("a", "b"):
        (tmp_path / "g" / "train" / name).mkdir(parents=True)
        (tmp_path / "g" / "train" / name / "1.png").write_bytes(encode(gray, "PNG"))
        (tmp_path / "g" / "train" / name / "2.jpg").write_bytes(encode(gray, "JPEG"))
    # Rule: an all-grayscale tree costs one channel, not three.
    assert load_tree(tmp_path / "g", tmp_path / "cache").x.shape == (4, 1, 10, 10)


def test_load_tree_corrupt_file_is_skipped_with_warning_and_count(tree: Path, tmp_path: Path) -> None:
    (tree / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.warns(UserWarning) as caught:
        loaded = load_tree(tree, tmp_path / "cache")
    messages = [str(w.message) for w in caught]
    # Rule: the bad file is named, the total is reported, and the rest loads.
    assert any("broken.png" in m for m in messages)
    assert any("skipped 1 unreadable image" in m for m in messages)
    assert len(loaded.y) == 18 and loaded.skipped == (os.path.join("train", "dog", "broken.png"),)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda t: shutil.rmtree(t / "train" / "eel") or (t / "train" / "eel").mkdir(),
         "class folder .*eel.* holds no images"),
        (lambda t: [shutil.rmtree(t / "train" / c) for c in ("dog", "eel")], "holds one class"),
        (lambda t: [shutil.rmtree(t / "train" / c) for c in ("cat", "dog", "eel")],
         "holds no class folders"),
        (lambda t: shutil.rmtree(t / "train"), "has no train/ folder"),
        (lambda t: shutil.rmtree(t), "does not exist"),
        (lambda t: shutil.rmtree(t / "train") or (t / "train").write_text("x"),
         "train folder .*train' is a file; expected a folder laid out as train/<class>/<image>"),
        (lambda t: (t / "test").write_text("x"), "test folder .*test' is a file"),
        (lambda t: [shutil.rmtree(t / "train" / c) for c in ("dog", "eel")]
         and (t / "train" / "dog").write_text("x"), "one class .*'dog' is a file, not a class folder"),
        (lambda t: [p.rename(p.with_name("." + p.name)) for p in list(t.rglob("*.*"))],
         "class folder .*cat' holds no images"),
        (lambda t: [p.rename(t / "train" / f"{p.parent.name}{p.name}")
                    for p in list((t / "train").rglob("*.*"))]
         and [(t / "train" / c).rmdir() for c in ("cat", "dog", "eel")],
         "no class folders, so no images; 'cat000.png' and 17 other\\(s\\) are files"),
    ],
    ids=["empty-class", "one-class", "no-images", "no-train", "no-tree", "train-is-a-file",
         "test-is-a-file", "class-is-a-file", "only-hidden-files", "images-loose-in-train"],
)
def test_load_bundle_unusable_tree_is_a_clear_error(tree: Path, tmp_path: Path, damage, message: str
                                                    ) -> None:
    damage(tree)
    # Rule: an empty class, a single class or no images at all is one clear line, not a crash.
    with pytest.raises(DataError, match=message) as error:
        load_bundle(DataOptions(dataset=str(tree), data_dir=str(tmp_path / "data")))
    assert "\n" not in str(error.value)


def test_load_bundle_tree_without_test_holds_out_stratified_test(tmp_path: Path) -> None:
    write_tree(tmp_path / "t", per_class=10)
    options = DataOptions(dataset=str(tmp_path / "t"), data_dir=str(tmp_path / "data"))
    bundle, test = load_bundle(options), load_test_split(options)
    # Rule: with no test/ part, a stratified test split is held out of train.
    assert len(test) == 6 and sorted(test.y.tolist()) == [0, 0, 1, 1, 2, 2]
    assert len(bundle.train) + len(bundle.val) == 24


def test_load_bundle_tree_with_test_part_uses_it(tmp_path: Path) -> None:
    write_tree(tmp_path / "t", per_class=6, parts=("train", "test"))
    options = DataOptions(dataset=str(tmp_path / "t"), data_dir=str(tmp_path / "data"))
    # Rule: test/ is the test split; all of train/ goes to train + val.
    assert len(load_test_split(options)) == 18
    assert len(load_bundle(options).train) + len(load_bundle(options).val) == 18


def test_load_tree_second_load_decodes_nothing(tree: Path, tmp_path: Path) -> None:
    first = load_tree(tree, tmp_path / "cache")
    # Overwrite every image with garbage of the same size and mtime: only a decode would notice.
    for path in (tree / "train").rglob("*.*"):
        stat = path.stat()
        path.write_bytes(b"\0" * stat.st_size)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = load_tree(tree, tmp_path / "cache")
    # Rule: an unchanged tree (paths, sizes, mtimes) is read from the cache, decoding nothing.
    assert second.decoded == 0 and torch.equal(first.x, second.x) and torch.equal(first.y, second.y)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1


def _load_in_child(tree: Path, cache: Path, results: multiprocessing.Queue) -> None:
    results.put("loading")
    loaded = load_tree(tree, cache)
    results.put((loaded.decoded, tuple(loaded.x.shape)))


def test_load_tree_waits_for_a_worker_decoding_the_same_tree(tree: Path, tmp_path: Path) -> None:
    # Workers started together on a cold cache: one decodes, the rest wait and read its cache.
    warm = load_tree(tree, tmp_path / "other")
    (cached,) = (tmp_path / "other").glob("*.pt")
    cache = tmp_path / "cache"
    cache.mkdir()
    with open(lock_path(cache / cached.name), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker is decoding this tree
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        child = context.Process(target=_load_in_child, args=(tree, cache, results))
        child.start()
        assert results.get(timeout=60) == "loading"
        time.sleep(1.0)  # unlocked, the child would decode 18 small images well within this
        shutil.copy(cached, cache / cached.name)  # the other worker's cache lands
    # Rule: the waiting worker reads the cache the first one wrote and decodes nothing itself.
    assert results.get(timeout=60) == (0, tuple(warm.x.shape))
    child.join(timeout=60)
    assert child.exitcode == 0


def test_load_tree_changed_tree_invalidates_cache(tree: Path, tmp_path: Path) -> None:
    load_tree(tree, tmp_path / "cache")
    os.utime(tree / "train" / "cat" / "000.png", ns=(1, 1))
    again = load_tree(tree, tmp_path / "cache")
    # Rule: a changed mtime means a new decode, and the stale cache file is replaced.
    assert again.decoded == 18
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1


def test_load_tree_image_size_explicit_and_default_cap(tmp_path: Path) -> None:
    big = np.full((80, 100, 3), 120, dtype=np.uint8)
    for name in ("a", "b"):
        (tmp_path / "b" / "train" / name).mkdir(parents=True)
        (tmp_path / "b" / "train" / name / "1.png").write_bytes(encode(big, "PNG"))
    # Rule: by default the typical size is capped at 64; --image-size sets any square side.
    assert load_tree(tmp_path / "b", tmp_path / "cache").x.shape[-2:] == (MAX_DEFAULT_SIZE,) * 2
    assert load_tree(tmp_path / "b", tmp_path / "cache", image_size=20).x.shape[-2:] == (20, 20)


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [("cifar10", "cifar10"), ("/x/My Photos", "My-Photos"), ("/x/a..b/", "a.b"), ("/x/..data", "data")],
)
def test_default_study_name_is_a_safe_folder_name(dataset: str, expected: str) -> None:
    # Rule: a tree's study name is its folder's name with unsafe characters replaced.
    assert default_study_name(dataset) == expected


def test_load_tree_each_image_size_keeps_its_own_cache(tree: Path, tmp_path: Path) -> None:
    load_tree(tree, tmp_path / "cache", image_size=8)
    load_tree(tree, tmp_path / "cache", image_size=10)
    again = load_tree(tree, tmp_path / "cache", image_size=8)
    # Rule: switching --image-size back and forth decodes each size once.
    assert again.decoded == 0 and again.x.shape[-1] == 8
