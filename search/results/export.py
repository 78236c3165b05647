"""A ``torch.export`` program of a trained model, usable without this project.

The program takes raw uint8 images (N, C, H, W) and returns logits: normalisation is baked
in, so the only thing a consumer needs is ``torch.export.load``. Class names and the input
shape travel inside the .pt2 file as ``extra_files["meta.json"]``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch
from torch import nn

from search.data.format import InputFormat
from search.results.checkpoint import write_bytes

META_FILE = "meta.json"


class Deployed(nn.Module):
    """Normalisation, then the classifier; the same arithmetic as ``search.training.loop.Normalizer``."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1) * 255.0)
        self.register_buffer("scale", 1.0 / (torch.tensor(std).view(1, -1, 1, 1) * 255.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x.float() - self.mean) * self.scale)


def export_program(path: Path, model: nn.Module, input_format: InputFormat) -> None:
    """Write ``path`` (.pt2): a program whose batch dimension is dynamic."""
    deployed = Deployed(model, input_format.mean, input_format.std).cpu().eval()
    example = torch.zeros((2, *input_format.input_shape), dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    program = torch.export.export(deployed, (example,), dynamic_shapes=({0: batch},))
    meta = {"input_shape": list(input_format.input_shape), "classes": list(input_format.classes),
            "input": "uint8 NCHW",
            "output": "logits"}
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={META_FILE: json.dumps(meta)})
    write_bytes(path, buffer.getvalue())  # a full disk: an OSError, not an abort in C++
