"""The one image reader: what training trees and ``search.predict`` count as an image, how a
file is decoded, and how it is brought to a model's channels and size.

Training decodes through ``decode`` and resizes through ``resize``; prediction reads through
``read_image``, which calls the same two, so a model sees a file the way it saw its training data.
Every decode first checks the file against MAX_FILE_BYTES and, from its header alone, MAX_PIXELS:
any file that fails, or cannot be decoded, is an ImageError, which both callers skip and name.
"""

from __future__ import annotations

import os
import stat
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from PIL import GifImagePlugin, Image, JpegImagePlugin, PngImagePlugin, WebPImagePlugin  # noqa: F401
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms.v2 import functional as F

# What torchvision.io decodes; other files (README, .DS_Store) are not images and are ignored.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
# PIL's names for the same formats: their header parsers (registered by the imports above) give
# an image's size without decoding a pixel.
HEADER_FORMATS = ("PNG", "JPEG", "GIF", "WEBP")
# Pixels one file may decode to (all frames of a GIF together). 64 MP takes the largest real
# photos (50 MP phones, 61 MP full-frame cameras) and costs about 3 bytes a pixel decoded:
# measured +195 MB peak for an 8000x8000 PNG decoded and resized, +565 MB for a 16-bit one.
# torchvision's decoders have no limit: an 873 KB PNG of 30000x30000 took 2.5 GB, and a bigger
# one can take all the memory there is.
MAX_PIXELS = 64_000_000
# Bytes one image file may have: MAX_PIXELS stored uncompressed at 16-bit RGBA. The file is read
# whole before it is decoded, so a huge file (a tiny image with a giant metadata chunk) is
# refused before it is read.
MAX_FILE_BYTES = 8 * MAX_PIXELS
# Pixels converted at a time from 16 to 8 bits (see _to_uint8).
CONVERT_BLOCK = 1 << 20
# What PIL's header parsers raise for bytes they cannot parse.
_HEADER_ERRORS = (SyntaxError, ValueError, TypeError, IndexError, EOFError, OSError, struct.error)


class ImageError(ValueError):
    """A file that is not a readable image within the limits; ``str`` is the reason, ``path``
    the file (callers name it in their own words)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(reason)
        self.path = str(path)


def is_image_name(name: str) -> bool:
    """An image by its name: a known suffix, and not hidden (macOS leaves ._x.png beside x.png)."""
    return name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith(".")


def _reason(error: BaseException) -> str:
    """An error's last line, without the file name the caller gives anyway."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error).strip()
    return text.splitlines()[-1] if text else type(error).__name__


def _header(path: str | Path) -> tuple[int, int, int] | None:
    """(width, height, frames decoded) from the header alone, or None for another format.

    PIL's parsers are called directly: ``Image.open`` refuses images over its own limit (179 MP)
    before it says their size.
    """
    with open(path, "rb") as handle:
        prefix = handle.read(16)
        for name in HEADER_FORMATS:
            factory, accept = Image.OPEN[name]
            accepted = accept(prefix)
            if not accepted or isinstance(accepted, str):  # a str: PIL lacks that decoder
                continue
            handle.seek(0)
            with factory(handle, str(path)) as image:
                # torchvision decodes every frame of a GIF; of the others only the first.
                frames = image.n_frames if name == "GIF" else 1
                return image.width, image.height, frames
    return None


def _check_file(path: str | Path) -> None:
    try:
        info = os.stat(path)
    except OSError as error:
        raise ImageError(path, _reason(error)) from None
    if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
        raise ImageError(path, "not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise ImageError(path, f"{info.st_size / 1e6:.0f} MB is over the limit of "
                               f"{MAX_FILE_BYTES / 1e6:.0f} MB per image file")


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the file's header, after checking the file is within the limits.

    Raises ImageError for a file that is not a regular file, is over MAX_FILE_BYTES, is no PNG,
    JPEG, GIF or WebP, or would decode to more than MAX_PIXELS pixels. It costs about 30 us a
    file (measured on 32 px PNGs, which take 70 us to decode).
    """
    _check_file(path)
    try:
        header = _header(path)
    except _HEADER_ERRORS as error:
        raise ImageError(path, _reason(error)) from None
    if header is None:
        raise ImageError(path, "not a PNG, JPEG, GIF or WebP image")
    width, height, frames = header
    pixels = width * height * frames
    if pixels > MAX_PIXELS:
        in_frames = f" in {frames} frames" if frames > 1 else ""
        raise ImageError(path, f"{width}x{height} pixels{in_frames} ({pixels / 1e6:.0f} "
                               f"megapixels) is over the limit of {MAX_PIXELS / 1e6:.0f} "
                               "megapixels per image")
    return width, height


def decode(path: str | Path) -> torch.Tensor:
    """RGB uint8 (3, H, W); RGB mode converts grayscale, alpha and palette images.

    The size is checked from the header first (``image_size``): torchvision's decoders allocate
    whatever a header claims. Raises ImageError for a file that is not a readable image within
    the limits.
    """
    image_size(path)
    try:
        with warnings.catch_warnings():
            # torchvision 0.29 deprecates its image codecs in favour of TorchCodec, once per
            # call; they remain the pinned, bundled decoders here.
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="torchvision")
            image = decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
    except (RuntimeError, OSError, ValueError) as error:
        raise ImageError(path, _reason(error)) from None
    if image.ndim == 4:  # an animated GIF: keep the first frame
        image = image[0]
    if image.dtype != torch.uint8:  # 16-bit PNGs
        image = _to_uint8(image)
    return image


def _to_uint8(image: torch.Tensor) -> torch.Tensor:
    """uint8 (C, H, W) from a wider integer image, a band of rows at a time: torchvision's
    to_dtype divides a uint16 image in float32 all at once (+1.8 GB peak for a 64 MP RGB PNG,
    measured); per band the result is the same and the peak is the output's size. Rows, not a
    flat view: the decoded image is a channels-last view, which flattening would copy."""
    out = torch.empty(image.shape, dtype=torch.uint8)
    rows = max(1, CONVERT_BLOCK // (image.shape[0] * image.shape[2]))
    for top in range(0, image.shape[1], rows):
        out[:, top:top + rows] = F.to_dtype(image[:, top:top + rows], torch.uint8, scale=True)
    return out


def resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """A square ``size`` x ``size`` image (aspect not kept), antialiased as training does."""
    if image.shape[-2:] == (size, size):
        return image
    return F.resize(image, [size, size], antialias=True)


def is_gray(image: torch.Tensor) -> bool:
    return bool(torch.equal(image[0], image[1]) and torch.equal(image[1], image[2]))


def to_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """An RGB image as 1 channel (ITU-R 601 luma, exact for gray pictures) or as 3."""
    if channels == 3:
        return image
    if is_gray(image):
        return image[:1]
    return F.rgb_to_grayscale(image, num_output_channels=1)


def read_image(path: str | Path, shape: tuple[int, int, int]) -> torch.Tensor:
    """A file as a model of input ``shape`` (C, H, W) takes it: uint8 (C, H, W).

    Square inputs go through ``resize`` exactly as a training tree's images did.
    """
    channels, height, width = shape
    image = decode(path)
    if height == width:
        image = resize(image, height)
    elif image.shape[-2:] != (height, width):
        image = F.resize(image, [height, width], antialias=True)
    return to_channels(image, channels).contiguous()


def image_files(paths: list[Path]) -> Iterator[Path]:
    """Files as given, and the images inside folders (recursively, sorted, hidden ones skipped
    as a training tree skips them)."""
    for path in paths:
        if not path.is_dir():
            yield path
            continue
        found: list[Path] = []
        for folder, dirs, files in os.walk(path):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found += [Path(folder) / name for name in files if is_image_name(name)]
        yield from sorted(found)
