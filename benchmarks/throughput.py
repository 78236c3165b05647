"""Training throughput on 3x32x32 uint8 tensors: our fit() vs a hand-written loop vs DataLoader+PIL.

    nice -n 10 python benchmarks/throughput.py [--n 10000] [--repeats 3]

All three train the same model (same config, batch size, optimizer) for one epoch over the same
images, one after another within each repeat, so machine load hits them alike. Augmentation is
off everywhere (the same work); a second table compares our batch crop + flip
with torchvision's per-sample RandomCrop + RandomHorizontalFlip. A last row times the data path
alone (producing normalised batches, no model), which is what the loader choice changes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from model_space import TrialConfig, build_model, build_optimizer
from search.data.registry import DataBundle, Split, channel_stats
from search.training.loop import Normalizer, augment_batch, fit

SHAPE = (3, 32, 32)


class PILImages(Dataset):
    """The classic pipeline: one PIL image per sample, transformed one at a time."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform) -> None:
        self.images = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in x]
        self.y = y.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.y[i]


def make_data(n: int) -> DataBundle:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, *SHAPE), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (n,), generator=g)
    mean, std = channel_stats(x)
    val = Split(x[:64], y[:64])
    return DataBundle("bench", Split(x, y), val, tuple(map(str, range(10))), mean, std)


def config(widths: tuple[int, ...], augment: bool) -> TrialConfig:
    return TrialConfig(widths=widths, optimizer="sgd", lr=0.01, weight_decay=5e-4, dropout=0.0,
                       batch_size=128, schedule="constant", momentum=0.9, nesterov=True,
                       augment=augment)


def step(model: nn.Module, optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    loss = nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def run_fit(data: DataBundle, cfg: TrialConfig) -> None:
    model = build_model(cfg, SHAPE, 10)
    fit(model, build_optimizer(cfg, model.parameters()), cfg, data, 1, 0, torch.device("cpu"),
        validate=False)


def run_hand(data: DataBundle, cfg: TrialConfig) -> None:
    """What one would write by hand: index, convert, normalise, step (crop + flip if asked)."""
    model = build_model(cfg, SHAPE, 10)
    optimizer = build_optimizer(cfg, model.parameters())
    normalize = Normalizer.from_stats(data.mean, data.std, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    model.train()
    order = torch.randperm(len(data.train), generator=g)
    for start in range(0, len(order), cfg.batch_size):
        index = order[start:start + cfg.batch_size]
        x = normalize(data.train.x[index])
        if cfg.augment:
            x = augment_batch(x, g)
        step(model, optimizer, x, data.train.y[index])


def pil_loader(data: DataBundle, augment: bool, dataset_cache: dict) -> DataLoader:
    steps = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] if augment else []
    transform = transforms.Compose([*steps, transforms.ToTensor(),
                                    transforms.Normalize(data.mean, data.std)])
    if "pil" not in dataset_cache:  # building PIL images is set-up, not training: not timed
        dataset_cache["pil"] = PILImages(data.train.x, data.train.y, transform)
    dataset_cache["pil"].transform = transform
    return DataLoader(dataset_cache["pil"], batch_size=128, shuffle=True, num_workers=0)


def run_pil(data: DataBundle, cfg: TrialConfig, loader: DataLoader) -> None:
    model = build_model(cfg, SHAPE, 10)
    optimizer = build_optimizer(cfg, model.parameters())
    model.train()
    for x, y in loader:
        step(model, optimizer, x, y)


def data_path_only(data: DataBundle, loader: DataLoader, augment: bool) -> tuple[float, float]:
    """Seconds per epoch to produce normalised batches: ours (index + normalise) vs DataLoader."""
    normalize = Normalizer.from_stats(data.mean, data.std, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    order = torch.randperm(len(data.train))
    for s in range(0, len(order), 128):
        x = normalize(data.train.x[order[s:s + 128]])
        if augment:
            augment_batch(x, g)
    ours = time.perf_counter() - started
    started = time.perf_counter()
    for _ in loader:
        pass
    return ours, time.perf_counter() - started


def timed(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def compare(data: DataBundle, widths: tuple[int, ...], augment: bool, repeats: int, cache: dict) -> None:
    cfg = config(widths, augment)
    loader = pil_loader(data, augment, cache)
    times: dict[str, list[float]] = {"fit": [], "hand": [], "pil": []}
    run_fit(data, cfg)  # warm-up: first-call allocations and kernel selection
    for _ in range(repeats):
        times["fit"].append(timed(run_fit, data, cfg))
        times["hand"].append(timed(run_hand, data, cfg))
        times["pil"].append(timed(run_pil, data, cfg, loader))
    n = len(data.train)
    rate = {k: n / statistics.median(v) for k, v in times.items()}
    print(f"widths={list(widths)} augment={augment}: fit {rate['fit']:,.0f} img/s, hand-written "
          f"{rate['hand']:,.0f} img/s, DataLoader+PIL {rate['pil']:,.0f} img/s | hand/fit "
          f"{rate['hand'] / rate['fit']:.3f}x (target <= 1.10), fit/PIL {rate['fit'] / rate['pil']:.2f}x "
          "(target >= 5)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    np.random.seed(0)
    data = make_data(args.n)
    print(f"{args.n} images 3x32x32, batch 128, one epoch, median of {args.repeats}, "
          f"{args.threads} torch thread(s)")
    for augment in (False, True):
        cache: dict = {}
        for widths in ((8,), (16, 32)):
            compare(data, widths, augment, args.repeats, cache)
        ours, pil = data_path_only(data, pil_loader(data, augment, cache), augment)
        print(f"data path only (augment={augment}): ours "
              f"{args.n / ours:,.0f} img/s, DataLoader+PIL {args.n / pil:,.0f} img/s = "
              f"{pil / ours:.0f}x")


if __name__ == "__main__":
    main()
