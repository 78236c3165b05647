"""``python -m search.predict model.pt PATH...``: classify PNG/JPEG files or folders of them.

Each image is converted to the model's channels (grayscale or RGB) and resized to its input
shape; one line per file: path, label, probability. An unreadable image is named on stderr
and skipped; the exit code is then 2, after the readable ones are printed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from search import cli
from search.checkpoint import Checkpoint, load_checkpoint
from search.train import Normalizer

PROG = "python -m search.predict"
SUFFIXES = (".png", ".jpg", ".jpeg")


def image_files(paths: list[Path]) -> Iterator[Path]:
    """Files as given, and the PNG/JPEG files inside folders (recursively, sorted)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
        else:
            yield path


def read_image(path: Path, shape: tuple[int, int, int]) -> torch.Tensor:
    """A uint8 (C, H, W) tensor in the model's channels and size. Raises OSError if unreadable."""
    from PIL import Image

    channels, height, width = shape
    with Image.open(path) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
    if channels == 1:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


@torch.inference_mode()
def classify(checkpoint: Checkpoint, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(class index, probability) for a uint8 batch (N, C, H, W)."""
    normalize = Normalizer.from_stats(checkpoint.mean, checkpoint.std, torch.device("cpu"))
    probabilities = torch.softmax(checkpoint.model(normalize(images)), dim=1)
    confidence, index = probabilities.max(dim=1)
    return index, confidence


def _read_all(files: list[Path], shape: tuple[int, int, int]) -> tuple[list[Path], list[torch.Tensor], int]:
    good, images, bad = [], [], 0
    for path in files:
        try:
            images.append(read_image(path, shape))
            good.append(path)
        except (OSError, ValueError, SyntaxError) as error:
            # PIL raises OSError (UnidentifiedImageError) for non-images, SyntaxError for some
            # broken PNG headers; either way the file is named and the rest go on.
            print(f"{PROG}: cannot read image {str(path)!r}: {error}", file=sys.stderr)
            bad += 1
    return good, images, bad


def build_parser() -> argparse.ArgumentParser:
    p = cli.Parser(prog=PROG, description="Classify PNG/JPEG images with a saved model.")
    p.add_argument("model", type=Path, metavar="MODEL",
                   help="model.pt written by search.report or search.retrain")
    p.add_argument("paths", type=Path, nargs="+", metavar="IMAGE",
                   help="image files or folders of them")
    return p


def predict_cli(args: argparse.Namespace) -> int:
    checkpoint = load_checkpoint(args.model)
    files = list(image_files(args.paths))
    if not files:
        raise cli.UsageError(f"no PNG or JPEG files in {', '.join(map(str, args.paths))}")
    good, images, bad = _read_all(files, checkpoint.input_shape)
    if images:
        index, confidence = classify(checkpoint, torch.stack(images))
        for path, i, p in zip(good, index.tolist(), confidence.tolist(), strict=True):
            print(f"{path}\t{checkpoint.classes[i]}\t{p:.4f}")
    return cli.EXIT_USAGE if bad else cli.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run_cli(PROG, lambda: predict_cli(args))


if __name__ == "__main__":
    sys.exit(main())
