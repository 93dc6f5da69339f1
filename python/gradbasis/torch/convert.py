"""One entry point for a torch module: the C++ model where the module converts, else a
:class:`~gradbasis.torch.TorchModel`."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..errors import ShapeError, UnsupportedModuleError
from .model import TorchModel
from .sequential import ImportedModel, ResNetModule, from_module


def as_model(
    module: nn.Module,
    input_shape: int | Sequence[int] | None = None,
    *,
    input_dtype: str = "float64",
    prefer_core: bool = True,
) -> ImportedModel:
    """``(model, theta)`` for ``module`` at its current parameters.

    An ``nn.Sequential`` MLP or a :class:`ResNetModule` becomes the C++ model
    (:func:`from_module`: faster, every check, theta in gradbasis's column-major order) unless
    ``prefer_core`` is False; any other module whose last operation is an ``nn.Linear``
    becomes a :class:`TorchModel` (theta in ``named_parameters()`` order, row-major).
    ``input_shape`` is one sample's shape as the module takes it; it may be left out when the
    module's first layer is an ``nn.Linear`` (then ``(in_features,)``).
    """
    if prefer_core and isinstance(module, (nn.Sequential, ResNetModule)):
        try:
            imported = from_module(module)
        except UnsupportedModuleError:
            pass
        else:
            if input_shape is not None and _size(input_shape) != imported.model.input_dim:
                raise ShapeError(
                    f"input_shape {input_shape} has {_size(input_shape)} values, but the module takes "
                    f"{imported.model.input_dim} inputs"
                )
            return imported
    if input_shape is None:
        first = next((m for m in module.modules() if not list(m.children())), None)
        if not isinstance(first, nn.Linear):
            raise ShapeError(
                "input_shape is needed (one sample's shape as the module takes it, e.g. (1, 8, 8)): the "
                f"module's first layer is {type(first).__name__}, not an nn.Linear"
            )
        input_shape = (first.in_features,)
    model = TorchModel(module, input_shape, input_dtype=input_dtype)
    return ImportedModel(model, model.theta0)


def _size(shape: int | Sequence[int]) -> int:
    if isinstance(shape, int):
        return shape
    out = 1
    for s in shape:
        out *= int(s)
    return out
