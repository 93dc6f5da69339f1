"""Train a small CNN on the 8x8 digits in PyTorch, then ask gradbasis how good its minimum is.

    pip install ".[torch,datasets]"
    python examples/cnn_digits.py            # trains, certifies, saves cnn.pt
    gradbasis certify --torch cnn.pt --data digits --report report/

The network is conv(1->4, 3x3) -> relu -> max-pool 2 -> conv(4->8, 2x2) -> tanh -> linear(32->10),
506 parameters, trained with the paper's squared loss on one-hot targets (mean over samples of
||f(x) - y||^2; a small CNN separates the digits, so the cross-entropy would have no minimum at
all: it only approaches 0 as the weights grow). Adam finds a basin, L-BFGS in float64 goes to a
critical point, and gradbasis certifies Theorem 1 there: L(theta) against the global minimum of
the gradient basis model. On 2 cores the script takes under five minutes (4 min 34 s). This network's Hessian
spans eigenvalues from about 1e-4 to 1e4 and its ReLUs and max-pool have kinks, so L-BFGS creeps:
it stops with ||grad L|| near 3e-3 at a saddle (critical by the scale-free test), and gradbasis
reports what that point is: "consistent", L(theta) 0.004 above the induced minimum, within the
first-order bound, the gap along directions a gradient this large does not resolve.
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
from gradbasis.torch.zoo import DigitsCNN  # importable, so cnn.pt loads in `gradbasis certify`


def loss_fn(out: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    return ((out - Y) ** 2).sum(dim=1).mean()  # = gb.SquaredLoss with weights 1/m


def train(net: nn.Module, X: torch.Tensor, labels: torch.Tensor, lbfgs_iterations: int) -> float:
    """Adam into a basin, then L-BFGS (strong Wolfe) to a critical point; returns ||grad L||."""
    adam = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(400):
        adam.zero_grad()
        loss_fn(net(X), labels).backward()
        adam.step()
    lbfgs = torch.optim.LBFGS(
        net.parameters(),
        lr=1,
        max_iter=lbfgs_iterations,
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


def main(save_to: str | None = "cnn.pt", lbfgs_iterations: int = 15000) -> gb.Theorem1Result:
    """Train (15,000 L-BFGS iterations: about four minutes on 2 cores), save, certify."""
    torch.manual_seed(0)
    data = load_digits()  # X (1797, 64) in [0, 1]; sample_shape (1, 8, 8)
    X, Y = data.X, np.eye(10)[data.labels]
    net = DigitsCNN().double()
    start = time.perf_counter()
    gnorm = train(
        net, torch.from_numpy(X.reshape(-1, 1, 8, 8)), torch.from_numpy(Y), lbfgs_iterations
    )
    trained = time.perf_counter() - start
    print(f"trained in {trained:.1f} s: ||grad L|| = {gnorm:.2e}")
    if save_to:
        torch.save(net, save_to)

    start = time.perf_counter()
    model = TorchModel(net, data.sample_shape)  # theta: named_parameters() order, row-major
    theta = model.theta0
    obj = gb.Objective(model, "squared", X, Y)
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
