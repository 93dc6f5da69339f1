"""Train a small network in PyTorch with L-BFGS, import it, and ask how good its minimum is."""

import numpy as np
import torch
from torch import nn

import gradbasis as gb
from gradbasis.datasets import load_iris
from gradbasis.torch import from_module, output_difference

data = load_iris()  # 150 samples, 4 standardized features, 3 classes
X, Y = data.X, np.eye(3)[data.labels]  # one-hot targets
Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)

torch.set_num_threads(1)  # tiny tensors: threads only add overhead
torch.manual_seed(0)
net = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 3)).double()
opt = torch.optim.LBFGS(
    net.parameters(),
    lr=1,
    max_iter=5000,
    tolerance_grad=1e-8,
    tolerance_change=0,
    history_size=50,
    line_search_fn="strong_wolfe",
)


def closure():
    opt.zero_grad()
    loss = ((net(Xt) - Yt) ** 2).sum(dim=1).mean()  # = gb.SquaredLoss with weights 1/m
    loss.backward()
    return loss


opt.step(closure)

model, theta = from_module(net)  # gb.MLP([4, 3, 3], tanh) and theta in gradbasis order
obj = gb.Objective(model, gb.SquaredLoss(), X, Y)
print(model, f"-- max |f_torch - f| = {output_difference(net, model, theta, X):.1e}")
point = gb.classify_point(obj, theta)
thm = gb.theorem1(obj, theta)
print(
    f"torch point: {point.kind}, ||grad L|| = {point.gradient_norm:.1e}, "
    f"Hessian eigenvalues in [{point.min_eigenvalue:.2g}, {point.max_eigenvalue:.2g}]"
)
print(f"Theorem 1 at the torch point: {thm.verdict} -- {thm.reason}")

# torch's L-BFGS stops at ||grad L|| ~ 1e-8; Newton on exact Hessian-vector products goes on to
# rounding level, where the verdict is earned (or refused) on the numerical span of J.
fit = gb.minimize(obj, theta, method="lbfgs+newton", gtol=1e-12)
point = gb.classify_point(obj, fit.theta)
thm = gb.theorem1(obj, fit.theta)
print(f"polished point: {point.kind}, ||grad L|| = {point.gradient_norm:.1e}")
print(
    f"Theorem 1: {thm.verdict} -- L(theta) = {thm.loss_value:.10f}, "
    f"induced infimum in [{thm.lower:.10f}, {thm.value:.10f}]"
)
