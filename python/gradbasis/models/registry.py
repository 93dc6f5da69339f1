"""The architectures named on the command line and in sweep files, built from one place."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from ..errors import UnknownNameError, UnsupportedModuleError
from .base import Model
from .basis import BasisModel
from .mlp import MLP, SkipMLP
from .resnet import ResNet

#: Architecture names accepted by ``gradbasis certify --model`` and a sweep's ``models`` axis.
MODEL_KINDS = ("mlp", "skip", "resnet", "basis", "linear")
#: A sweep's ``models`` axis also takes ``"torch:package.module:factory"``: a torch module
#: factory, wrapped as a :class:`gradbasis.torch.TorchModel`.
TORCH_PREFIX = "torch:"


def is_torch_kind(kind: object) -> bool:
    return isinstance(kind, str) and kind.startswith(TORCH_PREFIX)


def build_model(
    kind: str,
    d_x: int,
    d_y: int,
    widths: list[int],
    activation: str,
    sample_shape: Sequence[int] | None = None,
) -> Model:
    """The architecture ``kind`` for inputs of size d_x and outputs of size d_y.

    ``widths`` are the hidden layer sizes; ``"linear"`` is the MLP with identity activations,
    ``"skip"`` a SkipMLP with a skip from every hidden layer, ``"resnet"`` the ResNet of eq. 4.1
    with an MLP residual function, ``"basis"`` the basis-function model (widths unused).

    ``"torch:package.module:factory"`` calls ``factory(d_x=, d_y=, widths=, activation=)``, which
    returns an ``nn.Module`` ending in an ``nn.Linear``, and wraps it as a TorchModel: one
    sample's shape is the module's ``input_shape`` attribute if it has one, else
    ``sample_shape`` (the data set's, e.g. (1, 8, 8) for digits), else (d_x,).
    ``model.init(seed)`` re-runs the module's own initialisation with that seed.
    """
    if is_torch_kind(kind):
        return _torch_model(kind, d_x, d_y, widths, activation, sample_shape)
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


def _torch_model(
    kind: str,
    d_x: int,
    d_y: int,
    widths: list[int],
    activation: str,
    sample_shape: Sequence[int] | None,
) -> Model:
    path = kind[len(TORCH_PREFIX) :]
    module_name, _, factory_name = path.partition(":")
    if not module_name or not factory_name:
        raise UnknownNameError(
            f"a torch model kind is 'torch:package.module:factory'; got {kind!r}"
        )
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as exc:
        raise UnknownNameError(f"cannot import the module factory of {kind!r}: {exc}") from None
    from ..torch import TorchModel

    module = factory(d_x=d_x, d_y=d_y, widths=list(widths), activation=activation)
    shape = getattr(module, "input_shape", None) or sample_shape or (d_x,)
    try:
        return TorchModel(module, tuple(shape))
    except UnsupportedModuleError as exc:
        raise UnsupportedModuleError(f"{kind}: {exc}") from None
