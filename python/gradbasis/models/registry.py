"""The architectures named on the command line and in sweep files, built from one place."""

from __future__ import annotations

from ..errors import UnknownNameError
from .base import Model
from .basis import BasisModel
from .mlp import MLP, SkipMLP
from .resnet import ResNet

#: Architecture names accepted by ``gradbasis certify --model`` and a sweep's ``models`` axis.
MODEL_KINDS = ("mlp", "skip", "resnet", "basis", "linear")


def build_model(kind: str, d_x: int, d_y: int, widths: list[int], activation: str) -> Model:
    """The architecture ``kind`` for inputs of size d_x and outputs of size d_y.

    ``widths`` are the hidden layer sizes; ``"linear"`` is the MLP with identity activations,
    ``"skip"`` a SkipMLP with a skip from every hidden layer, ``"resnet"`` the ResNet of eq. 4.1
    with an MLP residual function, ``"basis"`` the basis-function model (widths unused).
    """
    if kind == "mlp":
        return MLP([d_x, *widths, d_y], activation)
    if kind == "linear":
        return MLP([d_x, *widths, d_y], "identity")
    if kind == "skip":
        return SkipMLP([d_x, *widths, d_y], skip_from=range(len(widths)), activation=activation)
    if kind == "resnet":
        return ResNet(d_x, d_y, MLP([d_x, *widths, d_x], activation))
    if kind == "basis":
        return BasisModel(d_x, d_y)
    raise UnknownNameError(f"unknown model {kind!r}; choose from {', '.join(MODEL_KINDS)}")
