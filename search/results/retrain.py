"""Retrain a chosen configuration on train+val, test it once per seed, and save the model:
model.pt, model.pt2, model.onnx (with the deploy extra) and metrics.json.

``search.report`` and ``search.retrain`` both run this, from a best_config.json.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model_space import TrialConfig, build_model, build_optimizer, count_parameters
from search.data.registry import DataBundle, load_test_split, load_train_val
from search.results.best_config import BestConfig
from search.results.checkpoint import load_checkpoint, write_checkpoint
from search.results.export import export_program
from search.results.onnx_export import NAME as ONNX_NAME
from search.results.onnx_export import write_onnx
from search.training.costs import LatencySetup, count_macs, measure_latency
from search.training.loop import Normalizer, fit, predict
from search.training.objective import seed_everything

# Files a retrain writes only sometimes (model.onnx needs the deploy extra): its callers stage
# the folder with these as ``owned``, so an earlier run's copy never sits beside this run's model.
SOMETIMES_WRITTEN = (ONNX_NAME,)


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
            epochs: int | None = None, done: Path | None = None,
            latency: LatencySetup | None = None) -> RetrainResult:
    """Train once per seed on train+val, test each once; save the first seed's model.

    ``done``: a folder that keeps each finished seed (its metrics; the first seed's weights too),
    so a retrain stopped part-way starts again with the seeds not yet finished. It is emptied
    once the retrain is done.
    """
    epochs = epochs or best.epochs
    data = load_train_val(best.full_data)
    test = load_test_split(best.full_data)
    normalize = Normalizer.from_stats(data.mean, data.std, device)
    finished = FinishedSeeds(done, _key(best, epochs)) if done is not None else None
    per_seed: list[dict[str, Any]] = []
    model = None
    for i in range(seeds):
        seed = best.seed + i
        row = finished.row(seed, with_model=i == 0) if finished is not None else None
        if row is None:
            trained, seconds = _train_one(best.config, data, seed, epochs, device)
            accuracy = (predict(trained, test.x, normalize) == test.y).float().mean().item()
            row = {"seed": seed, "test_accuracy": accuracy, "train_seconds": round(seconds, 3)}
            if finished is not None:
                finished.keep(row, trained if i == 0 else None, best.config, data)
            model = trained if i == 0 else model
        per_seed.append(row)
    if model is None:  # the first seed finished in an earlier, stopped run
        model = finished.first_model(device)  # type: ignore[union-attr]
    predictions = predict(model, test.x, normalize)
    metrics = _metrics(best, per_seed, model, epochs, len(data.train), len(test), device)
    # The costs where the model will run: the study's latency setup, else one CPU thread.
    metrics.update(_costs(model, data.input_shape, latency or LatencySetup()))
    out.mkdir(parents=True, exist_ok=True)
    model = model.cpu()
    metrics["onnx"] = write_onnx(out / ONNX_NAME, model, data.format, test.x)
    _save(out, model, best, data, metrics)
    if finished is not None:
        finished.clear()
    return RetrainResult(metrics, data.classes, test.y, predictions)


def _key(best: BestConfig, epochs: int) -> str:
    """What a finished seed depends on: the data, the model config, the epochs and the seeds."""
    text = json.dumps([dataclasses.asdict(best.full_data), best.config.to_dict(), epochs,
                       best.seed], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class FinishedSeeds:
    """Seeds a retrain has finished, kept on disk until it is done."""

    folder: Path
    key: str

    def __post_init__(self) -> None:
        if (self.folder / "key").is_file() and (self.folder / "key").read_text() != self.key:
            self.clear()  # another configuration's seeds: not ours to reuse

    def row(self, seed: int, with_model: bool = False) -> dict[str, Any] | None:
        path = self.folder / f"seed-{seed}.json"
        if with_model and not (self.folder / "first-model.pt").is_file():
            return None
        try:
            row = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        ok = isinstance(row, dict) and row.get("seed") == seed and isinstance(
            row.get("test_accuracy"), float) and isinstance(row.get("train_seconds"), float)
        return row if ok else None

    def keep(self, row: dict[str, Any], model: torch.nn.Module | None, config: TrialConfig,
             data: DataBundle) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "key").write_text(self.key)
        if model is not None:  # the first seed's model is the one the report saves
            write_checkpoint(self.folder / "first-model.pt", model, config, data.format)
        temporary = self.folder / f".seed-{row['seed']}.json"
        temporary.write_text(json.dumps(row))
        os.replace(temporary, self.folder / f"seed-{row['seed']}.json")

    def first_model(self, device: torch.device) -> torch.nn.Module:
        return load_checkpoint(self.folder / "first-model.pt").model.to(device)

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


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


def _costs(model: torch.nn.Module, input_shape: tuple[int, int, int],
           latency: LatencySetup) -> dict[str, Any]:
    """The saved model's costs, measured again on this machine (search.training.costs)."""
    return {"macs": count_macs(model, input_shape),
            "latency_ms": measure_latency(model, input_shape, latency),
            "latency_setup": latency.describe()}


def _save(out: Path, model: torch.nn.Module, best: BestConfig, data: DataBundle,
          metrics: dict[str, Any]) -> None:
    write_checkpoint(out / "model.pt", model, best.config, data.format, metrics)
    export_program(out / "model.pt2", model, data.format)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
