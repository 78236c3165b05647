"""``python -m search.predict model.pt PATH...``: classify image files or folders of them.

It reads what a training tree reads (PNG, JPEG, GIF, WebP; hidden files skipped) through the
same decoder and resize (search.data.images). One line per file: path, label, probability. An
unreadable image is named on stderr and skipped; the exit code is then 2, after the readable
ones are printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from search import cli

if TYPE_CHECKING:
    import torch

PROG = "python -m search.predict"


def _read_all(files: list[Path], shape: tuple[int, int, int],
              prog: str) -> tuple[list[Path], list[torch.Tensor], int]:
    from search.data.images import read_image

    good, images, bad = [], [], 0
    for path in files:
        try:
            images.append(read_image(path, shape))
            good.append(path)
        except (RuntimeError, OSError, ValueError) as error:
            # torchvision raises RuntimeError for bytes that are no image; the file is named
            # and the rest go on.
            reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            print(f"{prog}: cannot read image {str(path)!r}: {reason}", file=sys.stderr)
            bad += 1
    return good, images, bad


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = cli.Parser(prog=prog, description="Classify images with a saved model.")
    p.add_argument("model", type=Path, metavar="MODEL",
                   help="model.pt written by search.report or search.retrain, or a study's "
                        "best-model artifact")
    p.add_argument("paths", type=Path, nargs="+", metavar="IMAGE",
                   help="image files (PNG, JPEG, GIF, WebP) or folders of them")
    p.set_defaults(prog=prog)  # messages name the command as it was called
    return p


def predict_cli(args: argparse.Namespace) -> int:
    # Imported here, not above: --help and a refused flag answer without loading torch.
    import torch

    from search.data.images import IMAGE_SUFFIXES, image_files
    from search.results.checkpoint import load_checkpoint
    from search.results.classify import classify

    checkpoint = load_checkpoint(args.model)
    files = list(image_files(args.paths))
    if not files:
        raise cli.UsageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in "
                             f"{', '.join(map(str, args.paths))}")
    good, images, bad = _read_all(files, checkpoint.format.input_shape, args.prog)
    if images:
        index, confidence = classify(checkpoint, torch.stack(images))
        for path, i, p in zip(good, index.tolist(), confidence.tolist(), strict=True):
            print(f"{path}\t{checkpoint.format.classes[i]}\t{p:.4f}")
    return cli.EXIT_USAGE if bad else cli.EXIT_OK


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    return cli.run_cli(args.prog, lambda: predict_cli(args))


if __name__ == "__main__":
    sys.exit(main())
