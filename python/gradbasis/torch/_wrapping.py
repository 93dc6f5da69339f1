"""The checks made when a torch module is wrapped as a TorchModel: modes, the output layer,
per-sample independence, Assumption 2, and the costs measured on one sample."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from .._options import show
from ..errors import (
    DTypeError,
    InvalidOptionError,
    ShapeError,
    UnknownNameError,
    UnsupportedModuleError,
)
from ..models.base import ParamSpec

# Relative agreement required of the checks made on probe inputs (a float64 forward pass
# rounds at ~1e-16 relative; this leaves room for deep networks).
PROBE_RTOL = 1e-9
_TRAINING_MODE_MODULES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
    nn.RReLU,
)


def as_shape(input_shape: object) -> tuple[int, ...]:
    """One sample's shape as a tuple of positive integers, or a ShapeError."""
    values: Any = (input_shape,) if isinstance(input_shape, (int, np.integer)) else input_shape
    try:
        out = tuple(int(s) for s in values)
        ok = len(out) >= 1 and all(int(s) == s and s >= 1 for s in values)
    except (TypeError, ValueError):
        ok = False
    if isinstance(input_shape, bool) or not ok:
        raise ShapeError(
            f"input_shape must be a positive integer or a tuple of them (one sample's shape); got {show(input_shape)}"
        )
    return out


INPUT_DTYPES = ("float64", "long")


def check_input_dtype(input_dtype: object) -> str:
    if input_dtype not in INPUT_DTYPES:
        raise UnknownNameError(
            f"input_dtype must be one of {INPUT_DTYPES}; got {show(input_dtype)}"
        )
    return str(input_dtype)


def check_chunk_size(chunk_size: object) -> int | None:
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    ):
        raise InvalidOptionError(
            f"chunk_size must be a positive integer or None; got {show(chunk_size)}"
        )
    return chunk_size


def trainable_parameters(module: nn.Module) -> tuple[tuple[ParamSpec, ...], np.ndarray]:
    """theta's blocks (the parameters with requires_grad, in ``named_parameters()`` order, each
    row-major) and theta at the module's values."""
    trainable = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    if not trainable:
        raise UnsupportedModuleError(
            "the module has no parameter with requires_grad=True: theta would be empty"
        )
    specs, offset = [], 0
    for name, p in trainable:
        specs.append(ParamSpec(name, tuple(p.shape), offset, 0.0, order="C"))
        offset += p.numel()
    theta = np.concatenate([p.detach().reshape(-1).numpy() for _, p in trainable])
    return tuple(specs), theta.astype(np.float64)


def reinitialised(module: nn.Module, specs: tuple[ParamSpec, ...], seed: object) -> np.ndarray:
    """theta of a copy of the module after every submodule's ``reset_parameters()``, torch's
    generator seeded from ``seed`` (the global torch random state is restored)."""
    rng = np.random.default_rng(seed)  # type: ignore[arg-type]
    fresh = copy.deepcopy(module)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**62)))
        for sub in fresh.modules():
            reset = getattr(sub, "reset_parameters", None)
            if callable(reset):
                reset()
    named = dict(fresh.named_parameters())
    return np.concatenate([named[s.name].detach().reshape(-1).numpy() for s in specs]).astype(
        np.float64
    )


def float64_copy(module: nn.Module) -> nn.Module:
    """A float64 CPU copy of the module (the caller's module is never changed)."""
    try:
        copied = copy.deepcopy(module)
    except Exception as exc:  # noqa: BLE001  (any failure to copy is a module problem)
        raise UnsupportedModuleError(
            f"the module cannot be copied (copy.deepcopy): {type(exc).__name__}: {exc}"
        ) from None
    for name, t in list(copied.named_parameters()) + list(copied.named_buffers()):
        if t.is_meta:
            raise DTypeError(
                f"{name} is on the meta device and has no values; materialise the module first"
            )
        if t.is_complex():
            raise DTypeError(f"{name} is complex ({t.dtype}); a TorchModel needs real parameters")
    return copied.to(device="cpu", dtype=torch.float64)


def check_modes(module: nn.Module) -> None:
    """Batch norm, dropout and random layers must be in eval mode (named when they are not)."""
    for name, sub in module.named_modules():
        if isinstance(sub, _TRAINING_MODE_MODULES) and sub.training:
            if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                why = "its output depends on the whole batch and it updates its running statistics"
            elif getattr(sub, "p", 1.0) == 0.0:
                continue  # dropout with p = 0 is the identity
            else:
                why = "it is random"
            raise UnsupportedModuleError(
                f"module {name or 'the module'!r} ({type(sub).__name__}) is in training mode: {why}; "
                "call module.eval() first"
            )


def probe_batch(input_shape: tuple[int, ...], input_dtype: str) -> torch.Tensor:
    """Three seeded samples to check the module on (zeros for token indices: always valid)."""
    if input_dtype == "long":
        return torch.zeros((3, *input_shape), dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    return torch.randn((3, *input_shape), generator=g, dtype=torch.float64)


def run_checked(fn: Callable, x: torch.Tensor, what: str):
    """fn(x), with any torch failure reported as an UnsupportedModuleError saying what failed."""
    try:
        return fn(x)
    except Exception as exc:  # noqa: BLE001  (reported as a module problem, whatever torch raised)
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise UnsupportedModuleError(f"{what} failed: {type(exc).__name__}: {first}") from exc


def find_output_layer(module: nn.Module, probe: torch.Tensor) -> tuple[str, int]:
    """(name in ``named_modules()`` of the nn.Linear whose output the module returns, d_y)."""
    seen: dict[int, str] = {}
    handles = []
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Linear) and type(sub).forward is nn.Linear.forward:
            handles.append(
                sub.register_forward_hook(
                    lambda _m, _i, o, name=name: seen.__setitem__(id(o), name)
                )
            )
    try:
        with torch.no_grad():
            out = run_checked(module, probe, "calling the module on a probe batch")
    finally:
        for h in handles:
            h.remove()
    if not isinstance(out, torch.Tensor):
        raise UnsupportedModuleError(
            f"the module returns a {type(out).__name__}; a TorchModel needs a tensor of shape (batch, d_y)"
        )
    if out.ndim != 2 or out.shape[0] != probe.shape[0]:
        raise ShapeError(
            f"the module maps a batch of {probe.shape[0]} samples of shape {tuple(probe.shape[1:])} to shape "
            f"{tuple(out.shape)}; a TorchModel needs (batch, d_y): check input_shape"
        )
    name = seen.get(id(out))
    if name is None:
        raise UnsupportedModuleError(
            "the module's output is not the output of an nn.Linear: a TorchModel needs the last operation "
            "to be an nn.Linear module (Assumption 2's g(theta) is its weight and bias); move any output "
            "nonlinearity into the loss (cross-entropy takes logits)"
        )
    return name, int(out.shape[1])


def measure_costs(
    forward: Callable[[torch.Tensor], torch.Tensor], one: torch.Tensor
) -> tuple[float, float]:
    """(floats of the tensors autograd keeps, flops) of ``forward`` on one sample, whose
    parameters require gradients."""
    from torch.utils.flop_counter import FlopCounterMode

    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with FlopCounterMode(display=False) as counter:
            run_checked(forward, one, "a forward pass with gradients")
    return float(saved[0]), float(counter.get_total_flops())


def check_per_sample(
    batch_fn: Callable[[torch.Tensor], torch.Tensor],
    per_sample_fn: Callable[[torch.Tensor], torch.Tensor],
    along_g_fn: Callable[[torch.Tensor], torch.Tensor],
    probe: torch.Tensor,
    output_layer: str,
) -> None:
    """The module is deterministic, a sample's output depends on that sample alone (vmap over
    samples agrees with the batch) and f is linear in the output layer (J g = f_X, Assumption 2),
    each to PROBE_RTOL on the probe batch."""
    with torch.no_grad():
        batch, again = batch_fn(probe), batch_fn(probe)
    if not torch.equal(batch, again):
        raise UnsupportedModuleError(
            "the module gives different outputs for the same input on two calls (a random layer in "
            "training mode?); call module.eval()"
        )
    scale = float(batch.abs().max()) or 1.0
    per_sample = run_checked(per_sample_fn, probe, "torch.func.vmap over samples")
    if float((per_sample - batch).abs().max()) > PROBE_RTOL * scale:
        raise UnsupportedModuleError(
            "a sample's output depends on the other samples of the batch (batch norm in training mode?); "
            "a TorchModel needs f(x_i) to depend on x_i alone: call module.eval()"
        )
    Jg = run_checked(along_g_fn, probe, "torch.func.jvp")
    if float((Jg - batch).abs().max()) > PROBE_RTOL * scale:
        raise UnsupportedModuleError(
            f"f is not linear in the output layer {output_layer!r} (J g != f_X on probe inputs: its weight "
            "is used elsewhere too, or its output is changed before it is returned); Assumption 2 needs "
            "f = W h + b with W, b used only there"
        )
