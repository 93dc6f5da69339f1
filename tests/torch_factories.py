"""Torch module factories that sweep tests name as ``"torch:torch_factories:NAME"``."""

from __future__ import annotations

from torch import nn


def tiny_cnn(d_x: int, d_y: int, widths: list[int], activation: str) -> nn.Module:
    """conv(1 -> widths[0], 3x3) -> tanh -> max-pool -> linear, on (1, 8, 8) images."""
    channels = widths[0] if widths else 2
    return nn.Sequential(
        nn.Conv2d(1, channels, 3),
        nn.Tanh() if activation == "tanh" else nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(channels * 3 * 3, d_y),
    ).double()
