"""Class and probability for images, from a loaded checkpoint."""

from __future__ import annotations

import torch

from search.results.checkpoint import Checkpoint
from search.training.loop import Normalizer


@torch.inference_mode()
def classify(checkpoint: Checkpoint, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(class index, probability) for a uint8 batch (N, C, H, W)."""
    fmt = checkpoint.format
    normalize = Normalizer.from_stats(fmt.mean, fmt.std, torch.device("cpu"))
    probabilities = torch.softmax(checkpoint.model(normalize(images)), dim=1)
    confidence, index = probabilities.max(dim=1)
    return index, confidence
