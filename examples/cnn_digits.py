"""Train a small CNN on the 8x8 digits in PyTorch, then ask gradbasis how good its minimum is.

    pip install ".[torch,datasets]"
    python examples/cnn_digits.py            # trains, certifies, saves cnn.pt (about a minute)
    gradbasis certify --torch cnn.pt --data digits --report report/

The network is conv(1->4, 3x3) -> relu -> max-pool 2 -> conv(4->8, 3x3) -> tanh -> linear(32->10),
454 parameters: too few to separate the 1,797 digits, so the cross-entropy has a minimum (on
separable data it has none: the loss only approaches 0 as the weights grow). Adam finds the
basin, L-BFGS in float64 goes to a critical point, and gradbasis certifies Theorem 1 there: L at
theta against the global minimum of the gradient basis model.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from torch import nn

import gradbasis as gb
from gradbasis.datasets import load_digits
from gradbasis.torch import TorchModel


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)  # 8x8 -> 6x6
        self.pool = nn.MaxPool2d(2)  # -> 3x3
        self.conv2 = nn.Conv2d(4, 8, 2)  # -> 2x2
        self.fc = nn.Linear(8 * 2 * 2, 10)
        # The loss it is trained with, read by `gradbasis certify --torch` (--loss overrides).
        self.gradbasis_loss = "cross_entropy"

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = torch.tanh(self.conv2(x))
        return self.fc(x.flatten(1))


def train(net: nn.Module, X: torch.Tensor, labels: torch.Tensor) -> float:
    """Adam into a basin, then L-BFGS (strong Wolfe) to a critical point; returns ||grad L||."""
    loss_fn = nn.CrossEntropyLoss()  # mean over samples = gb.CrossEntropyLoss, weights 1/m
    adam = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(400):
        adam.zero_grad()
        loss_fn(net(X), labels).backward()
        adam.step()
    lbfgs = torch.optim.LBFGS(
        net.parameters(),
        lr=1,
        max_iter=20000,
        tolerance_grad=1e-13,
        tolerance_change=0,
        history_size=100,
        line_search_fn="strong_wolfe",
    )

    def closure():
        lbfgs.zero_grad()
        loss = loss_fn(net(X), labels)
        loss.backward()
        return loss

    lbfgs.step(closure)
    closure()
    return float(torch.cat([p.grad.reshape(-1) for p in net.parameters()]).norm())


def main(save_to: str | None = "cnn.pt") -> gb.Theorem1Result:
    torch.manual_seed(0)
    data = load_digits()  # X (1797, 64) in [0, 1]; sample_shape (1, 8, 8)
    X, Y = data.X, np.eye(10)[data.labels]
    net = DigitsCNN().double()
    start = time.perf_counter()
    gnorm = train(net, torch.from_numpy(X.reshape(-1, 1, 8, 8)), torch.from_numpy(data.labels))
    trained = time.perf_counter() - start
    print(f"trained in {trained:.1f} s: ||grad L|| = {gnorm:.2e}")
    if save_to:
        torch.save(net, save_to)

    start = time.perf_counter()
    model = TorchModel(net, data.sample_shape)  # theta: named_parameters() order, row-major
    theta = model.theta0
    obj = gb.Objective(model, "cross_entropy", X, Y)
    with gb.show_progress():
        point = gb.classify_point(obj, theta)
        result = gb.theorem1(obj, theta)
    print(model)
    print(point)
    print()
    print(result)
    print(
        f"\nverdict: {result.verdict}; L(theta) - certified lower end of the induced minimum = "
        f"{result.gap:.3g} (tol {result.tol:.3g}); certified in {time.perf_counter() - start:.1f} s"
    )
    return result


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "cnn.pt")
