"""A CIFAR-shaped task a 2-core CPU can afford: 3x32x32 colour images of ten shape classes.

Each image is one shape (disk, ring, square, frame, diamond, plus, X, two bars across, two bars
down, triangle) of random size, place and colour on a random colour gradient, with pixel
noise and a distractor blob. A small CNN learns it in a few epochs but does not saturate, so
hyperparameters matter. Written as a real ImageFolder tree of PNGs (train/<class>/*.png and
test/<class>/*.png), so the benchmark reads it through the same loader as users' photos.

    python benchmarks/shapes.py data/shapes --n 3000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torchvision.io import encode_png, write_file

CLASSES = ("disk", "ring", "square", "frame", "diamond", "plus", "x", "hbars", "vbars",
           "triangle")
SIZE = 32


def _mask(label: int, dy: torch.Tensor, dx: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    ay, ax = dy.abs(), dx.abs()
    box = torch.maximum(ay, ax)
    dist = (dy**2 + dx**2).sqrt()
    masks = {
        0: dist < r,
        1: (dist < r) & (dist > 0.6 * r),
        2: box < r,
        3: (box < r) & (box > 0.6 * r),
        4: ay + ax < r,
        5: ((ay < r / 3) & (ax < r)) | ((ax < r / 3) & (ay < r)),
        6: ((ay - ax).abs() < r / 3) & (box < r),
        7: (ax < r) & (ay > r / 2) & (ay < r),
        8: (ay < r) & (ax > r / 2) & (ax < r),
        9: (dy > -r) & (dy < r) & (ax < (dy + r) / 2),
    }
    return masks[label]


def make_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` uint8 images (n, 3, 32, 32) and balanced int64 labels."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(CLASSES)
    grid = torch.arange(SIZE, dtype=torch.float32)
    yy, xx = grid.view(1, -1, 1), grid.view(1, 1, -1)

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(*shape, generator=g)

    r = uniform(5, 11, n, 1, 1)
    cy, cx = uniform(10, 22, n, 1, 1), uniform(10, 22, n, 1, 1)
    background = (uniform(0, 1, n, 3, 1, 1) * (yy / SIZE) + uniform(0, 1, n, 3, 1, 1) * (xx / SIZE)) / 2
    colour = uniform(0, 1, n, 3, 1, 1)
    blob = ((yy - uniform(0, SIZE, n, 1, 1)) ** 2 + (xx - uniform(0, SIZE, n, 1, 1)) ** 2) < 9
    images = background.expand(n, 3, SIZE, SIZE).clone()
    images = torch.where(blob.unsqueeze(1), uniform(0, 1, n, 3, 1, 1), images)
    for label in range(len(CLASSES)):
        pick = labels == label
        mask = _mask(label, yy - cy[pick], xx - cx[pick], r[pick]).unsqueeze(1)
        images[pick] = torch.where(mask, colour[pick], images[pick])
    images = images + 0.12 * torch.randn(images.shape, generator=g)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8), labels


def write_tree(root: Path, n_train: int, n_test: int, seed: int = 0) -> None:
    for part, n, part_seed in (("train", n_train, seed), ("test", n_test, seed + 1)):
        images, labels = make_images(n, part_seed)
        for i, (image, label) in enumerate(zip(images, labels.tolist(), strict=True)):
            folder = root / part / CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            write_file(str(folder / f"{i:06d}.png"), encode_png(image))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("--n", type=int, default=3000, help="training images")
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_tree(args.root, args.n, args.n_test, args.seed)


if __name__ == "__main__":
    main()
