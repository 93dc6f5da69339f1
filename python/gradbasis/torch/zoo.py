"""Small reference networks, importable from anywhere gradbasis is installed, so that a module
saved whole with ``torch.save(net, path)`` loads in another process (``gradbasis certify
--torch``): a class defined in a script is pickled as ``__main__.Name`` and cannot be found
there."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DigitsCNN"]


class DigitsCNN(nn.Module):
    """conv(1->4, 3x3) -> relu -> max-pool 2 -> conv(4->8, 2x2) -> tanh -> linear(32->10) on one-
    channel 8x8 images (506 parameters): the network of examples/cnn_digits.py. ``gradbasis_loss``
    names the loss it is trained with (``gradbasis certify --torch`` reads it)."""

    def __init__(self, gradbasis_loss: str = "squared"):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)  # 8x8 -> 6x6
        self.pool = nn.MaxPool2d(2)  # -> 3x3
        self.conv2 = nn.Conv2d(4, 8, 2)  # -> 2x2
        self.fc = nn.Linear(8 * 2 * 2, 10)
        self.gradbasis_loss = gradbasis_loss

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = torch.tanh(self.conv2(x))
        return self.fc(x.flatten(1))
