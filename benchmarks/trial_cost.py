"""Per-trial cost of our objective against a hand-written PyTorch loop, side by side.

Both train the same model (same config, data and epochs) and evaluate validation accuracy
after every epoch. Ours also samples the config, reports to an SQLite study and asks the
pruner each epoch. Runs alternate, so machine noise hits both alike.

    python benchmarks/trial_cost.py [--epochs 10] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import optuna
import torch
from torch import nn

from model_space import SearchSpace, TrialConfig, build_model, build_optimizer
from search.data.options import DataOptions
from search.data.registry import load_bundle
from search.study.spec import StudySpec
from search.study.storage import open_storage
from search.study.studies import load_or_create
from search.training.objective import Objective

PARAMS = {"depth": 2, "width_0": 32, "width_1": 64, "optimizer": "sgd", "lr": 0.05,
          "weight_decay": 5e-4, "dropout": 0.1, "batch_size": 32, "sgd_momentum": 0.9,
          "sgd_nesterov": True}
CONFIG = TrialConfig(widths=(32, 64), optimizer="sgd", lr=0.05, weight_decay=5e-4, dropout=0.1,
                     batch_size=32, momentum=0.9, nesterov=True)


def hand_written(epochs: int) -> float:
    """The loop a practitioner writes by hand: float tensors normalised once, randperm batches."""
    data = load_bundle(DataOptions())
    mean, std = data.mean[0] * 255, data.std[0] * 255
    x = (data.train.x.float() - mean) / std
    y = data.train.y
    vx = (data.val.x.float() - mean) / std
    started = time.perf_counter()
    torch.manual_seed(0)
    model = build_model(CONFIG, data.input_shape, data.n_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                                weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * ((len(y) + 31) // 32))
    for _ in range(epochs):
        model.train()
        for index in torch.randperm(len(y)).split(32):
            loss = nn.functional.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        model.eval()
        with torch.no_grad():
            (model(vx).argmax(1) == data.val.y).float().mean().item()
    return time.perf_counter() - started


def ours(epochs: int, study: optuna.Study) -> float:
    data = load_bundle(DataOptions())
    objective = Objective(data, SearchSpace(), epochs, 0, torch.device("cpu"))
    study.enqueue_trial(PARAMS)
    started = time.perf_counter()
    study.optimize(objective, n_trials=1)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    build_optimizer(CONFIG, build_model(CONFIG, (1, 8, 8), 10).parameters())  # warm up imports
    with tempfile.TemporaryDirectory() as tmp:
        storage = open_storage(f"sqlite:///{Path(tmp) / 'cost.db'}")
        study = load_or_create("cost", storage, StudySpec(epochs=args.epochs, pruner="none"))
        hand, mine = [], []
        for _ in range(args.repeats):
            hand.append(hand_written(args.epochs))
            mine.append(ours(args.epochs, study))
    h, m = statistics.median(hand), statistics.median(mine)
    print(f"epochs {args.epochs}, repeats {args.repeats}, torch threads {torch.get_num_threads()}")
    print(f"hand-written loop   median {h:.3f} s  (min {min(hand):.3f})")
    print(f"cnn-search trial    median {m:.3f} s  (min {min(mine):.3f})")
    print(f"ratio ours / hand   {m / h:.3f}")


if __name__ == "__main__":
    main()
