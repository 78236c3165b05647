"""Build a CNN from a TrialConfig, sized from the input shape alone."""

from __future__ import annotations

import torch
from torch import nn

from model_space._config import TrialConfig

# Pool only maps of 8 px or more: 8x8 digits pool once and keep 4x4 maps, which measured
# more accurate on digits than pooling down to 2x2.
_MIN_SIZE_TO_POOL = 8
# The head keeps a 2x2 grid of features, so shallow nets still see where strokes are.
_HEAD_SIZE = 2


def _conv(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class _Residual(nn.Module):
    """x + body(x): the block's later convs learn a correction to its first conv's output."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _FlipAveraged(nn.Sequential):
    """Evaluation averages the logits of each image and its mirror image; training does not."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        if self.training:
            return logits
        return (logits + super().forward(x.flip(3))) / 2


def _block(in_channels: int, out_channels: int, config: TrialConfig, pool: bool) -> nn.Sequential:
    # One conv per block keeps the layout (and state_dict keys) models were saved with before
    # blocks could hold more.
    layers = _conv(in_channels, out_channels)
    more = [layer for _ in range(config.convs - 1) for layer in _conv(out_channels, out_channels)]
    if more and config.residual:
        layers.append(_Residual(nn.Sequential(*more)))
    else:
        layers.extend(more)
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def build_model(config: TrialConfig, input_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    """A stack of conv blocks, average pooling to a 2x2 grid, dropout and a linear classifier.

    Pure: no device, no trial. ``input_shape`` is (channels, height, width); any size works,
    since pooling stops once the feature map is small and the head pools globally.
    """
    channels, height, width = input_shape
    if min(input_shape) < 1 or n_classes < 2:
        raise ValueError(f"cannot build a classifier for input {input_shape} and {n_classes} classes")
    blocks: list[nn.Module] = []
    for out_channels in config.widths:
        pool = min(height, width) >= _MIN_SIZE_TO_POOL
        blocks.append(_block(channels, out_channels, config, pool))
        channels = out_channels
        if pool:
            height, width = height // 2, width // 2
    net = _FlipAveraged if config.tta_flip else nn.Sequential
    return net(
        *blocks,
        nn.AdaptiveAvgPool2d(_HEAD_SIZE),
        nn.Flatten(),
        nn.Dropout(config.dropout),
        nn.Linear(channels * _HEAD_SIZE**2, n_classes),
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
