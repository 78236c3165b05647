"""Retrain a chosen configuration on train+val, test it once per seed, and save the model.

``search.report`` and ``search.retrain`` both run this, from a best_config.json.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model_space import TrialConfig, build_model, build_optimizer, count_parameters
from search.data.registry import DataBundle, load_test_split, load_train_val
from search.results.best_config import BestConfig
from search.results.checkpoint import write_checkpoint
from search.results.export import export_program
from search.training.loop import Normalizer, fit, predict
from search.training.objective import seed_everything


@dataclass(frozen=True)
class RetrainResult:
    metrics: dict[str, Any]
    classes: tuple[str, ...]
    test_labels: torch.Tensor  # int64, the test split's labels
    test_predictions: torch.Tensor  # int64, from the saved (first-seed) model


def _train_one(config: TrialConfig, data: DataBundle, seed: int, epochs: int,
               device: torch.device) -> tuple[torch.nn.Module, float]:
    # Same seeding as a search trial: weights, dropout and batch order all follow ``seed``.
    seed_everything(seed)
    model = build_model(config, data.input_shape, data.n_classes).to(device)
    optimizer = build_optimizer(config, model.parameters())
    started = time.perf_counter()
    fit(model, optimizer, config, data, epochs, seed, device, validate=False)
    return model, time.perf_counter() - started


def _summary(per_seed: list[dict[str, Any]]) -> dict[str, float]:
    values = [s["test_accuracy"] for s in per_seed]
    # Sample std (n - 1): the spread we would expect between retrains, 0 for a single seed.
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"test_accuracy_mean": statistics.fmean(values), "test_accuracy_std": std}


def retrain(best: BestConfig, seeds: int, out: Path, device: torch.device,
            epochs: int | None = None) -> RetrainResult:
    """Train once per seed on train+val, test each once; save the first seed's model."""
    epochs = epochs or best.epochs
    data = load_train_val(best.full_data)
    test = load_test_split(best.full_data)
    normalize = Normalizer.from_stats(data.mean, data.std, device)
    per_seed, kept = [], None
    for i in range(seeds):
        model, seconds = _train_one(best.config, data, best.seed + i, epochs, device)
        predictions = predict(model, test.x, normalize)
        accuracy = (predictions == test.y).float().mean().item()
        per_seed.append({"seed": best.seed + i, "test_accuracy": accuracy,
                         "train_seconds": round(seconds, 3)})
        if kept is None:
            kept = (model, predictions)
    model, predictions = kept  # type: ignore[misc]
    metrics = _metrics(best, per_seed, model, epochs, len(data.train), len(test), device)
    out.mkdir(parents=True, exist_ok=True)
    _save(out, model.cpu(), best, data, metrics)
    return RetrainResult(metrics, data.classes, test.y, predictions)


def _metrics(best: BestConfig, per_seed: list[dict[str, Any]], model: torch.nn.Module, epochs: int,
             n_train: int, n_test: int, device: torch.device) -> dict[str, Any]:
    provenance = best.provenance
    return {
        "study": provenance.get("study"),
        "trial": provenance.get("trial"),
        "val_accuracy": provenance.get("val_accuracy"),
        **_summary(per_seed),
        "per_seed": per_seed,
        "saved_model_seed": per_seed[0]["seed"],
        "n_params": count_parameters(model),
        "train_seconds": round(sum(s["train_seconds"] for s in per_seed), 3),
        "epochs": epochs,
        "n_train": n_train,
        "n_test": n_test,
        "device": str(device),
    }


def _save(out: Path, model: torch.nn.Module, best: BestConfig, data: DataBundle,
          metrics: dict[str, Any]) -> None:
    write_checkpoint(out / "model.pt", model, best.config, data.format, metrics)
    export_program(out / "model.pt2", model, data.format)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
