"""The decode cache is a file a user can edit: one that loads but does not match its tree is
treated as damaged, decoded again and replaced; a cache that cannot be written is a warning."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from search.data.imagefolder import cache_key, cache_path, load_tree, scan_tree
from tests.helpers.dataset_files import write_tree

Payload = dict


def _meta(change: Callable[[dict], object]) -> Callable[[Payload], Payload]:
    return lambda p: {**p, "meta": json.dumps(change(json.loads(p["meta"])))}


# What a user (or a bad disk) can do to a cache file that torch.load still reads.
TAMPERED: dict[str, Callable[[Payload], object]] = {
    "x-float": lambda p: {**p, "x": p["x"].float()},
    "x-3d": lambda p: {**p, "x": p["x"][:, 0]},
    "x-not-square": lambda p: {**p, "x": p["x"][:, :, :, 1:]},
    "x-two-channels": lambda p: {**p, "x": p["x"][:, :2]},
    "x-not-a-tensor": lambda p: {**p, "x": p["x"].tolist()},
    "y-int32": lambda p: {**p, "y": p["y"].int()},
    "y-2d": lambda p: {**p, "y": p["y"][:, None]},
    "y-shorter-than-x": lambda p: {**p, "y": p["y"][:-1]},
    "x-shorter-than-y": lambda p: {**p, "x": p["x"][:-1]},
    "both-shorter": lambda p: {**p, "x": p["x"][:-1], "y": p["y"][:-1]},
    "label-outside-classes": lambda p: {**p, "y": torch.full_like(p["y"], 3)},
    "label-negative": lambda p: {**p, "y": p["y"] - 1},
    "classes-not-strings": _meta(lambda m: {**m, "classes": [1, 2, 3]}),
    "classes-renamed": _meta(lambda m: {**m, "classes": ["a", "b", "c"]}),
    "classes-not-a-list": _meta(lambda m: {**m, "classes": "cat dog eel"}),
    "skipped-file-not-in-tree": _meta(lambda m: {**m, "skipped": ["train/cat/ghost.png"]}),
    "skipped-not-a-list": _meta(lambda m: {**m, "skipped": 3}),
    "meta-not-json": lambda p: {**p, "meta": "{classes"},
    "meta-missing": lambda p: {k: v for k, v in p.items() if k != "meta"},
    "not-a-dict": lambda p: [p["x"], p["y"]],
    "test-part-invented": lambda p: {**p, "test_x": p["x"], "test_y": p["y"]},
}
TAMPERED_TEST: dict[str, Callable[[Payload], object]] = {
    "test-missing": lambda p: {**p, "test_x": None, "test_y": None},
    "test-y-shorter": lambda p: {**p, "test_y": p["test_y"][:-1]},
    "test-other-size": lambda p: {**p, "test_x": p["test_x"][:, :, 1:, 1:]},
    "test-other-channels": lambda p: {**p, "test_x": p["test_x"][:, :1]},
    "test-label-outside-classes": lambda p: {**p, "test_y": torch.full_like(p["test_y"], 7)},
    "test-x-uint16": lambda p: {**p, "test_x": p["test_x"].to(torch.int16)},
}


def _cache_file(root: Path, cache: Path, image_size: int | None = None) -> Path:
    _, train, test = scan_tree(root)
    parts = [train] if test is None else [train, test]
    return cache_path(cache, root, image_size, cache_key(parts, image_size))


def _tamper(path: Path, change: Callable[[Payload], object]) -> None:
    payload = torch.load(path, weights_only=True)
    torch.save(change(payload), path)


@pytest.mark.parametrize(("parts", "kind"), [(("train",), k) for k in TAMPERED]
                         + [(("train", "test"), k) for k in TAMPERED_TEST],
                         ids=[*TAMPERED, *TAMPERED_TEST])
def test_load_tree_tampered_cache_is_decoded_again_and_replaced(tmp_path: Path,
                                                                parts: tuple[str, ...],
                                                                kind: str) -> None:
    root, cache = tmp_path / "t", tmp_path / "cache"
    write_tree(root, per_class=4, parts=parts)
    first = load_tree(root, cache)
    _tamper(_cache_file(root, cache), {**TAMPERED, **TAMPERED_TEST}[kind])
    again = load_tree(root, cache)
    # Rule: a cache that loads but does not match its tree (types, shapes, lengths, labels,
    # classes, test part) is damaged: the tree is decoded again, the same as the first time ...
    assert again.decoded == len(first.y) + (0 if first.test_y is None else len(first.test_y))
    assert torch.equal(again.x, first.x) and torch.equal(again.y, first.y)
    assert again.classes == first.classes
    # ... and the file is replaced by a sound one, which the next load reads.
    assert load_tree(root, cache).decoded == 0


def test_load_tree_cache_of_another_image_size_is_decoded_again(tmp_path: Path) -> None:
    root, cache = tmp_path / "t", tmp_path / "cache"
    write_tree(root, per_class=4)
    load_tree(root, cache, image_size=10)
    _tamper(_cache_file(root, cache, 10), lambda p: {**p, "x": p["x"][:, :, 1:, 1:]})
    again = load_tree(root, cache, image_size=10)
    # Rule: a cache whose images are not the asked --image-size is not used.
    assert again.decoded == 12 and again.x.shape[-1] == 10


def test_load_tree_cache_that_cannot_be_written_is_a_warning(tmp_path: Path) -> None:
    root = tmp_path / "t"
    write_tree(root, per_class=4)
    (tmp_path / "cache").write_text("a file where the cache folder belongs\n")
    with pytest.warns(UserWarning, match="cannot write the decode cache"):
        loaded = load_tree(root, tmp_path / "cache")
    # Rule: the cache only saves time: a load that cannot write it still returns the tree.
    assert len(loaded.y) == 12 and (tmp_path / "cache").read_text().startswith("a file")
