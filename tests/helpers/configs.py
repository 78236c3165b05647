"""Small spaces and configurations that train in well under a second per epoch on digits."""

from __future__ import annotations

import torch

from model_space import SearchSpace

CPU = torch.device("cpu")
# Learning rates from hopeless to useful, so a test can enqueue either.
WIDE_LR = SearchSpace(depth=(1, 2), widths=(8, 16), batch_sizes=(64,), lr=(1e-7, 1e10),
                      optimizers=("adam", "sgd"))
GOOD = {"depth": 2, "width_0": 16, "width_1": 16, "optimizer": "adam", "lr": 1e-2,
        "weight_decay": 1e-5, "dropout": 0.0, "batch_size": 64, "adam_beta1": 0.9}

# A small space that trains in well under a second per epoch on the digits.
TINY_SPACE_TOML = """
[space]
depth = [1, 2]
widths = [8, 16]
batch_sizes = [64]
"""
