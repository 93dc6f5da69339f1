"""PyTorch interop (needs PyTorch: ``pip install "gradbasis[torch]"``; ``import gradbasis``
never imports it).

Two ways in:

* :class:`TorchModel` -- the general path: **any** ``nn.Module`` whose last operation is an
  ``nn.Linear`` (convolutions, pooling, batch norm in eval mode, residual blocks, embeddings),
  run through ``torch.func`` in float64. theta is the module's trainable parameters in
  ``named_parameters()`` order, each flattened row-major. See :mod:`gradbasis.torch.model`.
* :func:`from_module` -- ``nn.Sequential`` MLPs and the ResNet of eq. 4.1 converted to the
  C++ models (:class:`~gradbasis.MLP`, :class:`~gradbasis.ResNet`), which are faster and
  support every check (the perturbable-basis checks and Theorems 2-4 need the graph); theta
  is then in gradbasis's order (column-major vec(W)). :func:`to_module` goes back. See
  :mod:`gradbasis.torch.sequential`.

:func:`as_model` picks: the C++ model when the module converts, else a TorchModel.
:mod:`gradbasis.torch.zoo` holds small reference networks (``DigitsCNN``).
"""

from __future__ import annotations

from ..errors import TorchFileError, UnsupportedModuleError
from . import _requirement  # noqa: F401  (first: the error naming the install command)
from .convert import as_model
from .model import TorchModel
from .sequential import (
    ImportedModel,
    ResNetModule,
    from_module,
    load_module,
    output_difference,
    resnet_from_modules,
    resnet_to_module,
    to_module,
)

__all__ = [
    "ImportedModel",
    "ResNetModule",
    "TorchFileError",
    "TorchModel",
    "UnsupportedModuleError",
    "as_model",
    "from_module",
    "load_module",
    "output_difference",
    "resnet_from_modules",
    "resnet_to_module",
    "to_module",
]
