"""Images too big to decode (decompression bombs, lying headers, GIFs of many frames) and files
that are no image: refused from the header, named, and skipped; the rest still load."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from search.data.imagefolder import FolderError, load_tree, typical_size
from search.data.images import (
    CONVERT_BLOCK,
    MAX_FILE_BYTES,
    MAX_PIXELS,
    ImageError,
    decode,
    image_size,
)
from tests.helpers.dataset_files import bomb_png, huge_jpeg, many_frames_gif, write_tree

# writer, file name, what the error must say
TOO_BIG: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "png-bomb": (lambda p: bomb_png(p, 10_000), "big.png", "10000x10000 pixels (100 megapixels)"),
    "jpeg-header": (lambda p: huge_jpeg(p, 65_000, 65_000), "big.jpg", "65000x65000 pixels"),
    "gif-frames": (lambda p: many_frames_gif(p, 1300, 40), "anim.gif", "1300x1300 pixels in 40 "
                   "frames (68 megapixels)"),
}


@pytest.mark.parametrize("kind", list(TOO_BIG))
def test_decode_refuses_an_image_over_the_pixel_limit_naming_its_size(tmp_path: Path,
                                                                      kind: str) -> None:
    writer, name, size = TOO_BIG[kind]
    writer(tmp_path / name)
    # Rule: any format whose header claims more than MAX_PIXELS (a GIF: all frames) is refused
    # before decoding, with the file and its size.
    with pytest.raises(ImageError, match=f"{re.escape(size)}.* over the limit of 64 megapixels"
                       ) as error:
        decode(tmp_path / name)
    assert error.value.path == str(tmp_path / name)


def test_decode_of_a_bomb_spends_no_memory(tmp_path: Path) -> None:
    bomb_png(tmp_path / "big.png", 20_000)  # 49 KB on disk, 1.2 GB decoded as RGB
    script = textwrap.dedent(f"""
        import resource
        from search.data.images import ImageError, decode
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            decode({str(tmp_path / "big.png")!r})
        except ImageError as error:
            print(error)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).parents[3])
    message, grown_mb = result.stdout.strip().splitlines()
    # Rule: the size is read from the header alone: the refusal costs no decode's memory.
    assert "20000x20000 pixels (400 megapixels)" in message
    assert int(grown_mb) < 50, result.stdout


def test_image_size_at_the_limit_is_accepted(tmp_path: Path) -> None:
    bomb_png(tmp_path / "edge.png", 8000)  # exactly 64 megapixels
    # Rule: the limit is inclusive; a 64 MP photo is read.
    assert MAX_PIXELS == 8000 * 8000 and image_size(tmp_path / "edge.png") == (8000, 8000)


@pytest.mark.parametrize(("make", "reason"), [
    (lambda p: p.touch() or os.truncate(p, MAX_FILE_BYTES + 1),
     f"over the limit of {MAX_FILE_BYTES // 10**6} MB"),
    (lambda p: os.mkfifo(p), "not a regular file"),
    (lambda p: p.write_text("hello\n"), "not a PNG, JPEG, GIF or WebP image"),
    (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(30)), "PNG"),
    (lambda p: None, "No such file or directory"),
], ids=["huge-file", "fifo", "text", "broken-header", "missing"])
def test_decode_refuses_files_that_are_no_image_with_a_reason(tmp_path: Path, make, reason: str
                                                               ) -> None:
    path = tmp_path / "x.png"
    make(path)
    # Rule: a file that is no image (a sparse 500 MB file, a FIFO that would block, text) is an
    # ImageError saying why, never a hang, a read of the whole file, or another exception type.
    with pytest.raises(ImageError, match=reason):
        decode(path)


def test_load_tree_skips_a_bomb_with_a_warning_and_loads_the_rest(tmp_path: Path) -> None:
    write_tree(tmp_path / "t", per_class=6)
    bomb_png(tmp_path / "t" / "train" / "dog" / "big.png", 10_000)
    with pytest.warns(UserWarning) as caught:
        loaded = load_tree(tmp_path / "t", tmp_path / "cache")
    messages = [str(w.message) for w in caught]
    # Rule: in training a bomb is one more unreadable file: named with its size, skipped.
    assert any("big.png" in m and "10000x10000" in m for m in messages)
    assert len(loaded.y) == 18 and loaded.skipped == (os.path.join("train", "dog", "big.png"),)


def test_typical_size_leaves_bombs_out(tmp_path: Path) -> None:
    write_tree(tmp_path / "t", per_class=1, size=12)
    files = sorted(str(p) for p in (tmp_path / "t").rglob("*.*"))
    for i in range(5):
        bomb_png(tmp_path / f"big{i}.png", 10_000)
    # Rule: the typical size is the median of the readable images; bombs neither count nor cost.
    assert typical_size((*files, *(str(tmp_path / f"big{i}.png") for i in range(5)))) == 12


@pytest.mark.parametrize("image_size_", [None, 16])
def test_load_tree_of_bombs_only_is_one_error_and_leaves_nothing(tmp_path: Path,
                                                                 image_size_: int | None) -> None:
    for name in ("a", "b"):
        (tmp_path / "t" / "train" / name).mkdir(parents=True)
        bomb_png(tmp_path / "t" / "train" / name / "big.png", 10_000)
    # Rule: with no image left, the load is one error naming a file and why; the decode lock
    # and the cache folder it made are gone again.
    with pytest.raises(FolderError, match=r"big.png'?: 10000x10000 pixels.*no image is left"):
        load_tree(tmp_path / "t", tmp_path / "data" / "cache", image_size_)
    assert not (tmp_path / "data").exists()


def test_decode_16_bit_png_converts_exactly_in_bands(tmp_path: Path) -> None:
    # 700 x 700 x 3 values: two bands of CONVERT_BLOCK, so the band edge is crossed.
    values = np.random.default_rng(0).integers(0, 65536, (700, 700), dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")  # mode I;16: a 16-bit grayscale PNG
    decoded = decode(tmp_path / "deep.png")
    # Rule: 16-bit images become 8-bit as torchvision's to_dtype would make them (the top byte),
    # band by band so the conversion never holds a float copy of the whole image.
    assert CONVERT_BLOCK < 3 * 700 * 700 and decoded.dtype == torch.uint8
    assert torch.equal(decoded[0], torch.from_numpy((values >> 8).astype(np.uint8)))
