"""``nn.Sequential`` networks and the ResNet of eq. 4.1 to the C++ models and back.

MLPs
----
:func:`from_module` reads an ``nn.Sequential`` of ``nn.Linear`` layers and activations and returns
``(model, theta)``: an :class:`~gradbasis.MLP` and its flat theta (float64; float32 weights are
widened exactly). Supported layers, matched by exact type (a subclass may change ``forward``):

=================================  ======================================================
torch                              gradbasis activation
=================================  ======================================================
``nn.ReLU``                        ``relu``
``nn.LeakyReLU(negative_slope)``   ``leaky_relu`` with that slope
``nn.Tanh``, ``nn.Sigmoid``        ``tanh``, ``sigmoid``
``nn.Softplus()``                  ``softplus`` (only beta = 1, threshold = 20)
``nn.GELU()``                      ``gelu`` (only approximate = "none", the erf form)
``nn.Identity``                    nothing (dropped wherever it stands)
nested ``nn.Sequential``           flattened; its layers are named by dotted index ("2.1")
=================================  ======================================================

Each hidden layer takes at most one activation, between two ``nn.Linear`` layers. Two
``nn.Linear`` layers with no activation between them become a hidden layer with the
``identity`` activation: the product of the two matrices is *not* formed, because the paper's
deep linear networks (Theorem 4) keep every factor as a parameter, and so does theta. The
network must start and end with ``nn.Linear`` (gradbasis's output layer is affine; put an output
nonlinearity into the loss, e.g. cross-entropy on logits). The ``nn.Linear`` layers must all
have a bias or all have none. Anything else raises :class:`UnsupportedModuleError` (an
:class:`~gradbasis.UnknownNameError`) naming the layer's index and type or the setting.

:func:`to_module` turns an MLP and theta back into an ``nn.Sequential`` in float64 (a hidden
layer with the identity activation gets an ``nn.Identity``), and
``from_module(to_module(model, theta))`` returns the same theta bit for bit.

The ResNet of eq. 4.1
---------------------
f(x) = W (x + R z(x; u)) with W (d_y x d_x) and R (d_x x d_z) without biases and z an MLP.
In torch, hold the three parts in a :class:`ResNetModule` (or any three modules)::

    net = ResNetModule(nn.Linear(d_x, d_y, bias=False), nn.Linear(d_z, d_x, bias=False),
                       nn.Sequential(nn.Linear(d_x, h), nn.Tanh(), nn.Linear(h, d_z)))
    # ... train net ...
    model, theta = resnet_from_modules(net.W, net.R, net.z)  # or from_module(net)
    # model = gb.ResNet(d_x, d_y, gb.MLP([d_x, h, d_z], "tanh")); theta = [vec W, vec R, u]

:func:`resnet_to_module` goes back.

Agreement
---------
In float64, ``model.forward(theta, X)`` agrees with ``module(X)`` to about 1e-15 relative
(tested at 1e-12), with one exception: torch's ``Softplus`` returns x itself where x > 20
(its ``threshold``), while gradbasis evaluates log(1 + e^x) exactly; the two differ by
log(1 + e^-x) <= 2.1e-9 for pre-activations in (20, 28) and by less than 1e-12 elsewhere.
:func:`output_difference` measures the agreement on your data.

Loading
-------
:func:`load_module` reads a file written by ``torch.save(module, path)``. It calls
``torch.load(path, weights_only=False)``, which unpickles arbitrary code: load only files you trust.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple, cast

import numpy as np
import torch
from torch import nn

from ..errors import (
    DTypeError,
    ShapeError,
    TorchFileError,
    UnsupportedModuleError,
)
from ..models import MLP, Model, ResNet
from ..models.activations import Activation

__all__ = [
    "ImportedModel",
    "ResNetModule",
    "TorchFileError",
    "UnsupportedModuleError",
    "from_module",
    "load_module",
    "output_difference",
    "resnet_from_modules",
    "resnet_to_module",
    "to_module",
]

# torch's Softplus defaults; other settings compute a different function.
_SOFTPLUS_BETA, _SOFTPLUS_THRESHOLD = 1.0, 20.0


class ImportedModel(NamedTuple):
    """A gradbasis model and its flat theta (float64), read from a torch module."""

    model: Model
    theta: np.ndarray


class ResNetModule(nn.Module):
    """f(x) = W (x + R z(x)) of eq. 4.1 in torch: ``W`` and ``R`` are bias-free ``nn.Linear``
    layers, ``z`` an ``nn.Sequential`` MLP from d_x to d_z."""

    def __init__(self, W: nn.Linear, R: nn.Linear, z: nn.Sequential):
        super().__init__()
        self.W, self.R, self.z = W, R, z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.W(x + self.R(self.z(x)))


# ----------------------------------------------------------------------------- torch -> gradbasis
def from_module(module: nn.Module) -> ImportedModel:
    """``(model, theta)`` for an ``nn.Sequential`` MLP (see the module docstring for the layers
    it accepts) or a :class:`ResNetModule`; theta is float64 in gradbasis order
    (vec(W) column-major, then the bias, layer by layer)."""
    if isinstance(module, ResNetModule) and type(module).forward is ResNetModule.forward:
        return resnet_from_modules(module.W, module.R, module.z)
    linears, activations = _read_sequential(module)
    bias = _common_bias(linears)
    sizes = [linears[0][1].in_features] + [layer.out_features for _, layer in linears]
    model = MLP(sizes, activations, bias=bias)
    params: dict[str, np.ndarray] = {}
    for l, (name, layer) in enumerate(linears, start=1):
        params[f"W{l}"] = _to_numpy(layer.weight, f"layer {name} (Linear) weight")
        if bias:
            params[f"b{l}"] = _to_numpy(layer.bias, f"layer {name} (Linear) bias")
    return ImportedModel(model, model.flatten(params))


def resnet_from_modules(W: nn.Linear, R: nn.Linear, z: nn.Sequential) -> ImportedModel:
    """``(gb.ResNet(d_x, d_y, MLP), theta)`` for f(x) = W (x + R z(x)) of eq. 4.1, with theta =
    [vec W, vec R, u] and u the residual MLP's theta. W and R must be bias-free ``nn.Linear``
    layers (eq. 4.1 has no bias there); z an ``nn.Sequential`` accepted by :func:`from_module`."""
    for part, layer in (("W", W), ("R", R)):
        if type(layer) is not nn.Linear:
            raise UnsupportedModuleError(
                f"{part} of the ResNet must be an nn.Linear; got {type(layer).__name__}"
            )
        if layer.bias is not None:
            raise UnsupportedModuleError(
                f"{part} of the ResNet has a bias, but eq. 4.1 (f = W (x + R z(x))) has none: "
                f"use nn.Linear(..., bias=False)"
            )
    if type(z) is not nn.Sequential:
        raise UnsupportedModuleError(
            f"z of the ResNet must be an nn.Sequential MLP; got {type(z).__name__}"
        )
    residual, u = from_module(z)
    d_x, d_z = residual.input_dim, residual.output_dim
    if W.in_features != d_x or R.out_features != d_x or R.in_features != d_z:
        raise ShapeError(
            f"ResNet parts do not fit: z maps {d_x} -> {d_z}, so R must map {d_z} -> {d_x} and W take "
            f"{d_x} inputs; got R {R.in_features} -> {R.out_features}, W {W.in_features} -> {W.out_features}"
        )
    # z is an nn.Sequential, so from_module gave an MLP: a residual function ResNet accepts.
    model = ResNet(d_x, W.out_features, cast(MLP, residual))
    params = {"W": _to_numpy(W.weight, "W weight"), "R": _to_numpy(R.weight, "R weight")}
    params.update({f"u.{k}": v for k, v in residual.unflatten(u).items()})
    return ImportedModel(model, model.flatten(params))


def _leaf_layers(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """The layers of a Sequential in order, nested Sequentials flattened, with dotted names."""
    if not isinstance(module, nn.Sequential):
        hint = (
            "; a state_dict holds no architecture: save the whole module with torch.save(module, path)"
            if isinstance(module, Mapping)
            else ""
        )
        raise UnsupportedModuleError(
            f"expected an nn.Sequential of nn.Linear layers and activations (or a ResNetModule); "
            f"got {type(module).__name__}{hint}"
        )
    if type(module).forward is not nn.Sequential.forward:
        raise UnsupportedModuleError(
            f"{type(module).__name__} overrides nn.Sequential.forward, so its layers need not run in order"
        )
    _check_no_hooks(module, prefix or "the Sequential")
    layers = []
    for name, child in module.named_children():
        full = f"{prefix}.{name}" if prefix else name
        if isinstance(child, nn.Sequential):
            layers.extend(_leaf_layers(child, full))
        else:
            _check_no_hooks(child, f"layer {full} ({type(child).__name__})")
            layers.append((full, child))
    return layers


def _check_no_hooks(module: nn.Module, what: str) -> None:
    # Forward hooks may change a layer's output, which theta cannot represent.
    if module._forward_hooks or module._forward_pre_hooks:
        raise UnsupportedModuleError(
            f"{what} has forward hooks, which may change its output; remove them first"
        )


def _activation(name: str, layer: nn.Module) -> Activation | None:
    """The gradbasis activation of a torch activation layer; None for nn.Identity."""
    # Exact types (a subclass may change forward); "type(x) is C" also narrows for type checkers.
    if type(layer) is nn.Identity:
        return None
    if type(layer) is nn.ReLU:
        return Activation("relu")
    if type(layer) is nn.LeakyReLU:
        return Activation("leaky_relu", float(layer.negative_slope))
    if type(layer) is nn.Tanh:
        return Activation("tanh")
    if type(layer) is nn.Sigmoid:
        return Activation("sigmoid")
    if type(layer) is nn.Softplus:
        if layer.beta != _SOFTPLUS_BETA or layer.threshold != _SOFTPLUS_THRESHOLD:
            raise UnsupportedModuleError(
                f"layer {name} (Softplus) has beta={layer.beta}, threshold={layer.threshold}; only "
                f"beta={_SOFTPLUS_BETA:g}, threshold={_SOFTPLUS_THRESHOLD:g} (the defaults) are supported"
            )
        return Activation("softplus")
    if type(layer) is nn.GELU:
        if layer.approximate != "none":
            raise UnsupportedModuleError(
                f"layer {name} (GELU) has approximate={layer.approximate!r}; only approximate='none' "
                "(the exact erf form) is supported"
            )
        return Activation("gelu")
    raise UnsupportedModuleError(
        f"layer {name} ({type(layer).__name__}) is not supported; an MLP may hold nn.Linear, nn.ReLU, "
        "nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.GELU and nn.Identity"
    )


def _read_sequential(module: nn.Module) -> tuple[list[tuple[str, nn.Linear]], list[Activation]]:
    """The Linear layers and the one activation after each hidden one."""
    linears: list[tuple[str, nn.Linear]] = []
    activations: list[Activation] = []
    pending: tuple[str, str] | None = None  # the activation layer waiting for a Linear: name, type
    pending_act = Activation("identity")
    for name, layer in _leaf_layers(module):
        if type(layer) is nn.Linear:
            if linears:
                activations.append(pending_act if pending else Activation("identity"))
                previous = linears[-1]
                if layer.in_features != previous[1].out_features:
                    raise ShapeError(
                        f"layer {name} (Linear) takes {layer.in_features} inputs but layer {previous[0]} "
                        f"(Linear) gives {previous[1].out_features}"
                    )
            linears.append((name, layer))
            pending = None
            continue
        act = _activation(name, layer)
        if act is None:
            continue
        if not linears:
            raise UnsupportedModuleError(
                f"layer {name} ({type(layer).__name__}) comes before the first nn.Linear; a gradbasis "
                "MLP starts with a linear layer"
            )
        if pending is not None:
            raise UnsupportedModuleError(
                f"layer {name} ({type(layer).__name__}) follows layer {pending[0]} ({pending[1]}) with no "
                "nn.Linear between them; a gradbasis MLP has one activation per hidden layer"
            )
        pending, pending_act = (name, type(layer).__name__), act
    if not linears:
        raise UnsupportedModuleError("the Sequential holds no nn.Linear layer")
    if pending is not None:
        raise UnsupportedModuleError(
            f"layer {pending[0]} ({pending[1]}) comes after the last nn.Linear; a gradbasis MLP's output "
            "layer is affine (f = W h + b): drop it, or let the loss apply it (cross-entropy takes logits)"
        )
    return linears, activations


def _common_bias(linears: list[tuple[str, nn.Linear]]) -> bool:
    with_bias = [name for name, layer in linears if layer.bias is not None]
    if with_bias and len(with_bias) != len(linears):
        without = [name for name, layer in linears if layer.bias is None]
        raise UnsupportedModuleError(
            f"Linear layers {with_bias} have a bias and {without} do not; gradbasis needs all or none"
        )
    return bool(with_bias)


def _to_numpy(tensor: torch.Tensor, what: str) -> np.ndarray:
    """A float64 copy of a real floating-point tensor (float32 and smaller widen exactly)."""
    if not tensor.is_floating_point():
        raise DTypeError(f"{what} has dtype {tensor.dtype}; expected real floating point")
    if tensor.is_meta:
        raise DTypeError(
            f"{what} is on the meta device and has no values; materialise the module first"
        )
    return tensor.detach().to(device="cpu", dtype=torch.float64).numpy().copy()


# ----------------------------------------------------------------------------- gradbasis -> torch
def _activation_module(act: Activation) -> nn.Module:
    if act.name == "leaky_relu":
        return nn.LeakyReLU(act.negative_slope)
    return {
        "identity": nn.Identity,
        "relu": nn.ReLU,
        "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid,
        "softplus": nn.Softplus,
        "gelu": nn.GELU,
    }[act.name]()


def to_module(model: Model, theta: object) -> nn.Sequential:
    """An ``nn.Sequential`` (float64, CPU) computing the :class:`~gradbasis.MLP` ``model`` at
    ``theta``: Linear, activation, ..., Linear (an identity activation becomes ``nn.Identity``)."""
    if not isinstance(model, MLP):
        hint = "; for a ResNet use resnet_to_module" if isinstance(model, ResNet) else ""
        raise UnsupportedModuleError(
            f"to_module converts MLP models; got {type(model).__name__}{hint}"
        )
    params = model.unflatten(theta)
    sizes = model.layer_sizes
    layers: list[nn.Module] = []
    for l in range(1, len(sizes)):
        linear = nn.Linear(sizes[l - 1], sizes[l], bias=model.bias, dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(params[f"W{l}"]))
            if model.bias:
                linear.bias.copy_(torch.from_numpy(params[f"b{l}"]))
        layers.append(linear)
        if l < len(sizes) - 1:
            layers.append(_activation_module(model.activations[l - 1]))
    return nn.Sequential(*layers)


def resnet_to_module(model: Model, theta: object) -> ResNetModule:
    """A :class:`ResNetModule` (float64) computing a :class:`~gradbasis.ResNet` whose residual
    is an MLP, at ``theta``; ``resnet_from_modules(net.W, net.R, net.z)`` reads it back."""
    if not isinstance(model, ResNet) or not isinstance(model.residual, MLP):
        got = type(model).__name__
        if isinstance(model, ResNet):
            got = f"ResNet with a {type(model.residual).__name__} residual"
        raise UnsupportedModuleError(
            f"resnet_to_module converts a ResNet with an MLP residual; got {got}"
        )
    params = model.unflatten(theta)
    d_x, d_y, d_z = model.input_dim, model.output_dim, model.residual.output_dim
    W = nn.Linear(d_x, d_y, bias=False, dtype=torch.float64)
    R = nn.Linear(d_z, d_x, bias=False, dtype=torch.float64)
    with torch.no_grad():
        W.weight.copy_(torch.from_numpy(params["W"]))
        R.weight.copy_(torch.from_numpy(params["R"]))
    u = model.residual.flatten({k[2:]: v for k, v in params.items() if k.startswith("u.")})
    return ResNetModule(W, R, to_module(model.residual, u))


# ----------------------------------------------------------------------------- checks and files
def output_difference(module: nn.Module, model: Model, theta: object, X: object) -> float:
    """max |module(X) - model.forward(theta, X)| over samples and outputs, with X cast to the
    dtype of the module's first parameter (so a float32 module is measured as it is)."""
    f = model.forward(theta, X)
    dtype = next(module.parameters()).dtype
    with torch.no_grad():
        g = module(
            torch.tensor(np.asarray(X, dtype=np.float64), dtype=dtype)
        )  # a copy: X may be read-only
    g64 = g.detach().to(dtype=torch.float64).numpy()
    if g64.shape != f.shape:
        raise ShapeError(
            f"the module gives outputs of shape {tuple(g64.shape)}; the model gives {f.shape}"
        )
    return float(np.max(np.abs(g64 - f)))


def load_module(path: str | Path) -> nn.Module:
    """The module saved whole with ``torch.save(module, path)``, on the CPU.

    This unpickles the file (``torch.load(path, weights_only=False)``), which can run arbitrary
    code: load only files you trust. The module's class must be importable: installed, or in a
    ``.py`` file in the file's own folder (searched while loading).
    """
    path = Path(path)
    if not path.is_file():
        raise TorchFileError(f"torch file {str(path)!r} does not exist")
    # The module's class is looked up by its import path: also beside the file itself.
    folder = str(path.resolve().parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        module = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many kinds (pickle, zip, runtime) for a bad file
        hint = ""
        if "on <module '__main__'" in str(exc):
            hint = (
                "; the module's class was defined in the script that saved it (__main__): define it "
                "in an importable module (a .py file beside the .pt file, or an installed package) "
                "and save the module again"
            )
        raise TorchFileError(
            f"cannot load {path} with torch.load: {type(exc).__name__}: {exc}{hint}"
        ) from None
    finally:
        if added:
            sys.path.remove(folder)
    if not isinstance(module, nn.Module):
        hint = (
            "; a state_dict holds no architecture: save the whole module with torch.save(module, path)"
            if isinstance(module, Mapping)
            else ""
        )
        raise TorchFileError(f"{path} holds a {type(module).__name__}, not an nn.Module{hint}")
    return module
