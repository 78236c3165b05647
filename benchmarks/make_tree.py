"""Write a synthetic ImageFolder tree of PNGs (train/<class>/*.png) for the loading benchmark.

``nice -n 10 python benchmarks/make_tree.py /tmp/cnn-search-tree --n 50000 --size 32``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torchvision.io import encode_png, write_file


def make_tree(root: Path, n: int, size: int, n_classes: int = 10, seed: int = 0) -> None:
    """Smooth colour gradients plus noise: closer to photos than pure noise, so PNG sizes are real."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, size)
    grid = (ramp.view(1, -1, 1) + ramp.view(1, 1, -1)) / 2  # (1, H, W)
    for i in range(n):
        label = i % n_classes
        folder = root / "train" / f"class_{label:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        tint = torch.rand(3, 1, 1, generator=g)
        image = (tint * grid * 200 + torch.rand(3, size, size, generator=g) * 55).to(torch.uint8)
        write_file(str(folder / f"{i:06d}.png"), encode_png(image))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("root", type=Path)
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--size", type=int, default=32)
    args = p.parse_args()
    make_tree(args.root, args.n, args.size)


if __name__ == "__main__":
    main()
