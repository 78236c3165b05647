"""``best_config.json``: the one writer and the one reader of the file a retrain starts from.

Version 2 stores each value once:

    {"format": "cnn-search-best-config/2",
     "data": {...DataOptions...}, "epochs": 8, "seed": 0,
     "model": {...TrialConfig...},
     "provenance": {"study", "trial", "val_accuracy", "params", versions, "exported_at"}}

Version 1 files (written before 2026-12) are still read; they stored epochs, seed and
batch_size twice, and the copy at the top level won.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_space import TrialConfig
from search.data.options import DataOptions
from search.errors import InputError
from search.hints import file_inside
from search.study.spec import SpecError, StudySpec

NAME = "best_config.json"
FORMAT_PREFIX = "cnn-search-best-config/"
VERSION = 2
FORMAT = f"{FORMAT_PREFIX}{VERSION}"
READS = (1, 2)


class BestConfigError(InputError):
    """A best_config.json that cannot be read or holds a value that cannot be used."""


@dataclass(frozen=True)
class BestConfig:
    """What a retrain needs, and where it came from."""

    data: DataOptions  # the study's data and split (train_subset as searched)
    config: TrialConfig
    epochs: int  # the epochs the best trial was allowed (the study's max)
    seed: int  # first retrain seed; seed i of N is seed + i
    provenance: dict[str, Any]  # study, trial, val_accuracy, params, versions, time

    @property
    def full_data(self) -> DataOptions:
        """The data with search-time subsetting undone: the final model sees all of train+val."""
        return dataclasses.replace(self.data, train_subset=None)


def from_trial(*, study: str, trial: int, value: float | None, params: dict[str, Any],
               spec: StudySpec, config: TrialConfig,
               costs: dict[str, Any] | None = None) -> BestConfig:
    """The best config of a study's trial, stamped with the versions that trained it."""
    import optuna
    import torch

    provenance = {
        "study": study,
        "trial": trial,
        "val_accuracy": value,
        "params": params,
        # n_params, macs, latency_ms and where latency was measured, before the trial trained.
        "costs": costs or {},
        "optuna_version": optuna.__version__,
        "torch_version": str(torch.__version__),
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    return BestConfig(data=spec.data, config=config, epochs=spec.epochs, seed=spec.seed,
                      provenance=provenance)


def write_best_config(path: Path, best: BestConfig) -> None:
    data = dataclasses.asdict(best.data)
    del data["download"]  # how to fetch the files, not what they are
    body = {"format": FORMAT, "data": data, "epochs": best.epochs, "seed": best.seed,
            "model": best.config.to_dict(), "provenance": best.provenance}
    path.write_text(json.dumps(body, indent=2) + "\n")


def read_best_config(path: Path) -> BestConfig:
    """Read and check a best_config.json; any bad value is one BestConfigError naming it."""
    raw = _read_json(path)
    version = _version(path, raw)
    if version == 1:
        raw = _from_version_1(raw)
    for key in ("data", "model"):
        if not isinstance(raw.get(key), dict):
            raise BestConfigError(f"config {str(path)!r}: {key!r} must be an object but got "
                                  f"{raw.get(key)!r}")
    spec = _spec(path, raw)
    try:
        config = TrialConfig.from_dict(raw["model"])
    except (KeyError, TypeError, ValueError) as error:
        raise BestConfigError(f"config {str(path)!r} has an invalid model: {error}") from None
    provenance = raw.get("provenance")
    return BestConfig(data=spec.data, config=config, epochs=spec.epochs, seed=spec.seed,
                      provenance=provenance if isinstance(provenance, dict) else {})


def _spec(path: Path, raw: dict[str, Any]) -> StudySpec:
    """The data, epochs and seed, checked by the spec's rules exactly as the flags are."""
    known = {f.name for f in dataclasses.fields(DataOptions)} - {"download"}
    unknown = sorted(set(raw["data"]) - known)
    if unknown:
        raise BestConfigError(f"config {str(path)!r}: unknown data key {unknown[0]!r}; known: "
                              f"{', '.join(sorted(known))}")
    try:
        return StudySpec.from_flat({**raw["data"], "epochs": raw.get("epochs"),
                                    "seed": raw.get("seed")})
    except SpecError as error:
        raise BestConfigError(f"config {str(path)!r}: {error}") from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise BestConfigError(f"config {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise BestConfigError(f"config {str(path)!r} is a folder, not a {NAME}"
                              f"{file_inside(path, NAME)}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BestConfigError(f"config {str(path)!r} is not a JSON file: {error}") from None
    if not isinstance(raw, dict) or not str(raw.get("format", "")).startswith(FORMAT_PREFIX):
        raise BestConfigError(f"{str(path)!r} is not a {NAME} (no {FORMAT!r} marker)")
    return raw


def _version(path: Path, raw: dict[str, Any]) -> int:
    text = str(raw["format"]).removeprefix(FORMAT_PREFIX)
    if not text.isdigit() or int(text) not in READS:
        raise BestConfigError(f"config {str(path)!r} is {NAME} version {text!r}; this cnn-search "
                              f"reads versions {', '.join(map(str, READS))}: retrain it with the "
                              "cnn-search that wrote it, or export the study again")
    return int(text)


def _from_version_1(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 1 kept the whole flat spec under "spec" and epochs/seed/batch_size twice."""
    spec = raw.get("spec")
    model = raw.get("model")
    if not isinstance(spec, dict) or not isinstance(model, dict):
        return {"data": spec, "model": model}  # refused, by name, by the caller
    data_keys = {f.name for f in dataclasses.fields(DataOptions)}
    return {
        "data": {k: v for k, v in spec.items() if k in data_keys},
        "epochs": raw.get("epochs", spec.get("epochs")),
        "seed": raw.get("seed", spec.get("seed")),
        "model": {**model, **({"batch_size": raw["batch_size"]} if "batch_size" in raw else {})},
        "provenance": raw.get("provenance"),
    }
