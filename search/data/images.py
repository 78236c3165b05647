"""The one image reader: what training trees and ``search.predict`` count as an image, how a
file is decoded, and how it is brought to a model's channels and size.

Training decodes through ``decode`` and resizes through ``resize``; prediction reads through
``read_image``, which calls the same two, so a model sees a file the way it saw its training data.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms.v2 import functional as F

# What torchvision.io decodes; other files (README, .DS_Store) are not images and are ignored.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")


def is_image_name(name: str) -> bool:
    """An image by its name: a known suffix, and not hidden (macOS leaves ._x.png beside x.png)."""
    return name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith(".")


def decode(path: str | Path) -> torch.Tensor:
    """RGB uint8 (3, H, W); RGB mode converts grayscale, alpha and palette images.

    Raises RuntimeError or OSError for a file that is not a readable image.
    """
    with warnings.catch_warnings():
        # torchvision 0.29 deprecates its image codecs in favour of TorchCodec, once per call;
        # they remain the pinned, bundled decoders here.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torchvision")
        image = decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
    if image.ndim == 4:  # an animated GIF: keep the first frame
        image = image[0]
    if image.dtype != torch.uint8:  # 16-bit PNGs
        image = F.to_dtype(image, torch.uint8, scale=True)
    return image


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
