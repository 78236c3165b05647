"""Self-describing checkpoints: weights plus everything needed to rebuild and use the model.

The one writer and the one reader of the format: the study's best-model artifact,
``model-trial-N.pt`` (``--save-models all``) and ``reports/<study>/model.pt`` are all written by
``write_checkpoint`` and read by ``load_checkpoint``. A checkpoint is a plain dict of tensors,
strings, numbers, lists and dicts, so it loads with ``torch.load(path, weights_only=True)`` and
never unpickles code.
"""

from __future__ import annotations

import io
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from model_space import TrialConfig, build_model
from search.data.format import InputFormat
from search.errors import InputError
from search.hints import file_inside, first_line

# Marks our checkpoints, so a foreign .pt file is refused with a clear message.
FORMAT = "cnn-search-checkpoint/1"
REQUIRED = ("format", "state_dict", "config", "input_shape", "classes", "mean", "std")


class CheckpointError(InputError):
    """A file is not a readable cnn-search checkpoint."""


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the rebuilt model (in eval mode) and what it was trained on."""

    model: nn.Module
    config: TrialConfig
    format: InputFormat
    metrics: dict[str, Any]


def write_checkpoint(destination: Path | IO[bytes], model: nn.Module, config: TrialConfig,
                     input_format: InputFormat, metrics: dict[str, Any] | None = None) -> None:
    """Write the model's weights with its config, input format and metrics (e.g. val_accuracy)."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save({
        "format": FORMAT,
        "state_dict": state,
        "config": config.to_dict(),
        **input_format.to_dict(),
        "metrics": dict(metrics or {}),
        "torch_version": str(torch.__version__),  # TorchVersion would need unpickling
    }, buffer)
    write_bytes(destination, buffer.getvalue())


def write_bytes(destination: Path | IO[bytes], data: bytes) -> None:
    """Write through Python's file I/O: a full disk is an OSError (ENOSPC) naming the file.

    torch's own writer fails on a full disk in C++, where a failure while it unwinds can abort
    the process (exit 134) instead of raising.
    """
    if isinstance(destination, Path):
        with destination.open("wb") as out:
            out.write(data)
    else:
        destination.write(data)


def _first_sentence(error: Exception) -> str:
    # torch's messages run to paragraphs; the first sentence names the problem.
    return first_line(error).split(". ")[0][:160]


def _read(path: Path) -> dict[str, Any]:
    try:
        with warnings.catch_warnings():
            # A foreign pickle makes torch warn about its protocol before refusing it; the
            # refusal below is the one line the user needs.
            warnings.simplefilter("ignore")
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"checkpoint {str(path)!r} is a folder, not a model file"
                              f"{file_inside(path, 'model.pt')}") from None
    except pickle.UnpicklingError:
        # torch reports corrupt bytes and foreign pickled objects alike as "Weights only load failed".
        raise CheckpointError(f"{str(path)!r} is not a cnn-search checkpoint: weights_only loading "
                              "refuses it (a pickle of other objects, or a corrupt file)") from None
    except Exception as error:
        # Arbitrary bytes make torch's unpickler fail with almost any exception type
        # (KeyError, struct.error, RuntimeError...): all of them mean "not a checkpoint".
        reason = f"{type(error).__name__}: {_first_sentence(error)}"
        raise CheckpointError(f"{str(path)!r} is not a readable checkpoint (corrupt, truncated or "
                              f"not a torch.save file): {reason}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a cnn-search checkpoint (no {FORMAT!r} marker)")
    missing = [key for key in REQUIRED if key not in raw]
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} lacks {', '.join(missing)}")
    return raw


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint and rebuild its model through ``build_model``."""
    raw = _read(path)
    try:
        config = TrialConfig.from_dict(raw["config"])
        input_format = InputFormat.from_dict(raw)
        model = build_model(config, input_format.input_shape, input_format.n_classes)
        model.load_state_dict(raw["state_dict"])
    except (TypeError, ValueError, KeyError, RuntimeError) as error:
        raise CheckpointError(f"checkpoint {str(path)!r} does not rebuild: "
                              f"{_first_sentence(error)}") from None
    model.eval()
    metrics = raw.get("metrics", {})
    return Checkpoint(model=model, config=config, format=input_format,
                      metrics=dict(metrics) if isinstance(metrics, dict) else {})
