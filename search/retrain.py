"""``python -m search.retrain best_config.json``: retrain a chosen configuration on train+val
and test it once, from the exported file alone (no study needed).

``python -m search.report`` runs this same code after writing ``best_config.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model_space import TrialConfig, build_model, build_optimizer, count_parameters
from search import cli, interrupts
from search.checkpoint import save_checkpoint
from search.data import DataBundle, DataOptions, load_test_split, load_train_val
from search.export import export_program
from search.hints import file_inside
from search.objective import seed_everything
from search.spec import StudySpec
from search.staging import staged
from search.train import Normalizer, fit, predict

PROG = "python -m search.retrain"
FORMAT = "cnn-search-best-config/1"


@dataclass(frozen=True)
class BestConfig:
    """What retraining needs, read back from ``best_config.json``."""

    data: DataOptions
    config: TrialConfig
    epochs: int  # the epochs the best trial was allowed (the study's max)
    seed: int  # first retrain seed; seed i of N is seed + i
    raw: dict[str, Any]  # the whole file, provenance included


@dataclass(frozen=True)
class RetrainResult:
    metrics: dict[str, Any]
    classes: tuple[str, ...]
    test_labels: torch.Tensor  # int64, the test split's labels
    test_predictions: torch.Tensor  # int64, from the saved (first-seed) model


def full_data(options: DataOptions) -> DataOptions:
    """The options with any search-time subsetting undone: the final model sees all of train+val."""
    return dataclasses.replace(options, train_subset=None)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise cli.UsageError(f"config {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise cli.UsageError(f"config {str(path)!r} is a folder, not a best_config.json"
                             f"{file_inside(path, 'best_config.json')}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise cli.UsageError(f"config {str(path)!r} is not a JSON file: {error}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise cli.UsageError(f"{str(path)!r} is not a best_config.json (no {FORMAT!r} marker)")
    return raw


def read_best_config(path: Path) -> BestConfig:
    raw = _read_json(path)
    try:
        spec = StudySpec.from_flat(raw["spec"])
        config = TrialConfig.from_dict(raw["model"])
        config = dataclasses.replace(config, batch_size=int(raw.get("batch_size", config.batch_size)))
        epochs, seed = int(raw.get("epochs", spec.epochs)), int(raw.get("seed", spec.seed))
    except (KeyError, TypeError, ValueError) as error:
        raise cli.UsageError(f"config {str(path)!r} is incomplete or invalid: {error}") from None
    return BestConfig(data=full_data(spec.data), config=config, epochs=epochs, seed=seed, raw=raw)


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
    data = load_train_val(best.data)
    test = load_test_split(best.data)
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
    provenance = best.raw.get("provenance", {})
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
    save_checkpoint(out / "model.pt", model, best.config, data.input_shape, data.classes,
                    data.mean, data.std, metrics)
    export_program(out / "model.pt2", model, data.input_shape, data.classes, data.mean, data.std)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


def build_parser() -> argparse.ArgumentParser:
    p = cli.Parser(prog=PROG, description="Retrain an exported configuration on train+val, "
                   "test it once, and save model.pt, model.pt2 and metrics.json.")
    p.add_argument("config", type=Path, help="best_config.json written by python -m search.report")
    p.add_argument("--seeds", type=cli.positive_int, default=3, help="retrains, one per seed (default 3)")
    p.add_argument("--epochs", type=cli.positive_int, help="default: the epochs in the config")
    p.add_argument("--out", type=Path, help="output folder (default: the config's folder)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    return p


def retrain_cli(args: argparse.Namespace) -> int:
    from search.run import resolve_device

    best = read_best_config(args.config)
    device = resolve_device(args.device)
    out = args.out or args.config.parent
    with staged(out) as staging:  # a retrain stopped part-way leaves the folder as it was
        result = retrain(best, args.seeds, staging, device, epochs=args.epochs)
    m = result.metrics
    print(f"test accuracy {m['test_accuracy_mean']:.4f} +- {m['test_accuracy_std']:.4f} over "
          f"{len(m['per_seed'])} seed(s); wrote {out / 'model.pt'}, model.pt2, metrics.json")
    return cli.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cli.quiet_libraries()
    interrupts.install()
    return cli.run_cli(PROG, lambda: retrain_cli(args))


if __name__ == "__main__":
    sys.exit(main())
