"""Where a torch network is not differentiable: the kink margin of a forward pass.

Theorem 1 needs f differentiable at theta. A network built from torch operations is
differentiable there unless some operation sits exactly on a kink. :class:`KinkRecorder` watches
every torch function a forward pass calls (a ``TorchFunctionMode``, so ``nn.ReLU``,
``F.relu``, ``torch.relu`` and ``x.relu()`` are all seen) and measures, for the operations
whose kinks it can locate, how far their inputs are from one:

========================================  ==========================================
operation                                  distance to the nearest kink
========================================  ==========================================
``relu``, ``leaky_relu`` (slope != 1),     |x|
``prelu``
``relu6``, ``hardtanh(min, max)``          min(|x - min|, |x - max|)
``max_pool1d``, ``max_pool2d``             the gap between a window's largest entry and
                                           the next smaller one
========================================  ==========================================

The forward pass runs with dual numbers (forward-mode AD along one seeded random direction v
of theta), so each input x comes with its derivative dx along v. An entry on a kink whose
derivative is 0 is no kink of f (kink(g) differs from kink(g(theta0)) by at most |g - g(theta0)|
= o(|theta - theta0|)), and a pooling window whose largest value is shared by entries with
equal derivatives is one smooth function there (a constant patch of an image gives such ties,
as do rectified zeros): both are skipped. With v random, a derivative that vanishes along v
but not in general has probability 0.

Operations with kinks it cannot locate (``abs``, ``clamp``, ``maximum``, ``max``,
``max_pool3d``, ``adaptive_max_pool2d``, a pool with ``ceil_mode=True``, rounding, ...) make
the margin *unknown*: :attr:`KinkRecorder.unknown` names them and the margin is NaN, never
+inf. Every other torch operation is taken as smooth where it is defined. A custom
``torch.autograd.Function`` is seen through the torch functions its ``forward`` calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

# Operations with a kink gradbasis does not locate: their presence makes the margin unknown.
UNLOCATED_KINKS = frozenset(
    {
        "abs",
        "absolute",
        "clamp",
        "clamp_",
        "clip",
        "clip_",
        "clamp_min",
        "clamp_min_",
        "clamp_max",
        "clamp_max_",
        "maximum",
        "minimum",
        "fmax",
        "fmin",
        "max",
        "min",
        "amax",
        "amin",
        "sort",
        "topk",
        "kthvalue",
        "median",
        "nanmedian",
        "quantile",
        "floor",
        "ceil",
        "round",
        "trunc",
        "frac",
        "sign",
        "sgn",
        "heaviside",
        "threshold",
        "threshold_",
        "hardshrink",
        "softshrink",
        "hardswish",
        "hardsigmoid",
        "rrelu",
        "rrelu_",
        "remainder",
        "fmod",
        "max_pool3d",
        "max_pool3d_with_indices",
        "adaptive_max_pool1d",
        "adaptive_max_pool2d",
        "adaptive_max_pool3d",
        "adaptive_max_pool1d_with_indices",
        "adaptive_max_pool2d_with_indices",
        "adaptive_max_pool3d_with_indices",
        "fractional_max_pool2d",
        "fractional_max_pool3d",
        "lp_pool1d",
        "lp_pool2d",
        "lp_pool3d",
        "where",
        "masked_fill",
        "masked_fill_",
        "norm",
        "linalg_vector_norm",
        "cdist",
        "pdist",
    }
)


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _min_abs(x: torch.Tensor, dx: torch.Tensor, at: float = 0.0) -> float:
    """min |x - at| over the entries that vary with theta at first order (an entry sitting on
    the kink with zero derivative is no kink of f: |kink(g)| <= |g| = o(|theta - theta0|))."""
    off = (x - at).abs()
    moving = (off != 0) | (dx != 0)
    return float(off[moving].min()) if bool(moving.any()) else math.inf


def _rectifier(x: torch.Tensor, dx: torch.Tensor, args: tuple, kwargs: dict) -> float | None:
    return _min_abs(x, dx)


def _leaky(x: torch.Tensor, dx: torch.Tensor, args: tuple, kwargs: dict) -> float | None:
    slope = float(_arg(args, kwargs, 1, "negative_slope", 0.01))
    return math.inf if slope == 1.0 else _min_abs(x, dx)


def _prelu(x: torch.Tensor, dx: torch.Tensor, args: tuple, kwargs: dict) -> float | None:
    weight = _arg(args, kwargs, 1, "weight")
    if isinstance(weight, torch.Tensor) and bool((weight == 1.0).all()):
        return math.inf
    return _min_abs(x, dx)


def _hardtanh(x: torch.Tensor, dx: torch.Tensor, args: tuple, kwargs: dict) -> float | None:
    lo = float(_arg(args, kwargs, 1, "min_val", -1.0))
    hi = float(_arg(args, kwargs, 2, "max_val", 1.0))
    return min(_min_abs(x, dx, lo), _min_abs(x, dx, hi))


def _relu6(x: torch.Tensor, dx: torch.Tensor, args: tuple, kwargs: dict) -> float | None:
    return min(_min_abs(x, dx, 0.0), _min_abs(x, dx, 6.0))


def _pair(value: Any, dims: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * dims
    out = tuple(int(v) for v in value)
    return out * dims if len(out) == 1 else out


def _max_pool(dims: int) -> Callable[[torch.Tensor, torch.Tensor, tuple, dict], float | None]:
    """The smallest gap between a window's largest entry and the next one; a window whose
    largest value is shared by entries with equal derivatives (e.g. a constant patch of the
    image, or rectified zeros) is one smooth function there and counts as no kink."""

    def margin(x: torch.Tensor, dx: torch.Tensor, args: tuple, kwargs: dict) -> float | None:
        kernel = _arg(args, kwargs, 1, "kernel_size")
        stride = _arg(args, kwargs, 2, "stride") or kernel
        padding = _arg(args, kwargs, 3, "padding", 0)
        dilation = _arg(args, kwargs, 4, "dilation", 1)
        if bool(_arg(args, kwargs, 5, "ceil_mode", False)):
            return None  # windows past the edge: not located
        k, s, p, d = (_pair(v, dims) for v in (kernel, stride, padding, dilation))
        if dims == 1:  # as a 2-D pool over a height of 1
            k, s, p, d = (1, *k), (1, *s), (0, *p), (1, *d)
        pad = [v for pv in reversed(p) for v in (pv, pv)]

        def windows(t: torch.Tensor, fill: float) -> torch.Tensor:
            planes = t.reshape(-1, 1, *([1] if dims == 1 else []), *t.shape[-dims:])
            planes = F.pad(planes, pad, value=fill)
            return F.unfold(planes, kernel_size=k, dilation=d, stride=s)  # (planes, k, windows)

        w, dw = windows(x, -math.inf), windows(dx, 0.0)
        if w.shape[1] < 2 or w.numel() == 0:
            return math.inf
        top = w.max(dim=1, keepdim=True).values
        at_top = w == top
        # the largest entries' derivatives: equal (one smooth piece) or not (a kink)
        hi = torch.where(at_top, dw, -math.inf).max(dim=1).values
        lo = torch.where(at_top, dw, math.inf).min(dim=1).values
        tied_kink = (at_top.sum(dim=1) > 1) & (hi != lo)
        if bool(tied_kink.any()):
            return 0.0
        below = torch.where(at_top, -math.inf, w).max(dim=1).values
        gap = top.squeeze(1) - below
        gap = gap[torch.isfinite(gap)]
        return float(gap.min()) if gap.numel() else math.inf

    return margin


LOCATED_KINKS: dict[str, Callable[[torch.Tensor, torch.Tensor, tuple, dict], float | None]] = {
    "relu": _rectifier,
    "relu_": _rectifier,
    "leaky_relu": _leaky,
    "leaky_relu_": _leaky,
    "prelu": _prelu,
    "_prelu_kernel": _prelu,
    "hardtanh": _hardtanh,
    "hardtanh_": _hardtanh,
    "relu6": _relu6,
    "max_pool1d": _max_pool(1),
    "max_pool1d_with_indices": _max_pool(1),
    "_max_pool1d": _max_pool(1),
    "max_pool2d": _max_pool(2),
    "max_pool2d_with_indices": _max_pool(2),
    "_max_pool2d": _max_pool(2),
}


def _side(name: str, args: tuple, kwargs: dict) -> torch.Tensor:
    """Which side of its kinks each input of a located operation is on."""
    x = args[0]
    if name.startswith(("hardtanh", "relu6")):
        lo, hi = (
            (0.0, 6.0)
            if name == "relu6"
            else (
                float(_arg(args, kwargs, 1, "min_val", -1.0)),
                float(_arg(args, kwargs, 2, "max_val", 1.0)),
            )
        )
        return torch.sign(x - lo) + torch.sign(x - hi)
    if "max_pool" in name:
        kernel = _arg(args, kwargs, 1, "kernel_size")
        stride = _arg(args, kwargs, 2, "stride") or kernel
        pool = F.max_pool1d if "1d" in name else F.max_pool2d
        _, where = pool(
            x,
            kernel,
            stride,
            _arg(args, kwargs, 3, "padding", 0),
            _arg(args, kwargs, 4, "dilation", 1),
            ceil_mode=bool(_arg(args, kwargs, 5, "ceil_mode", False)),
            return_indices=True,
        )
        return where
    return torch.sign(x)


class KinkRecorder(TorchFunctionMode):
    """Within ``with KinkRecorder() as rec:``, every torch function call is checked: ``rec.margin``
    is the smallest distance to a located kink (+inf when none was met) and ``rec.unknown`` the
    names of operations whose kinks are not located; :attr:`result` combines them."""

    def __init__(self, patterns: bool = False) -> None:
        super().__init__()
        self.margin = math.inf
        self.unknown: set[str] = set()
        self.located: set[str] = set()
        # With patterns=True: the side of every located kink each input is on, in call order
        # (signs for rectifiers, window arg-max for pools): the activation region.
        self.patterns: list[torch.Tensor] | None = [] if patterns else None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        measure = LOCATED_KINKS.get(name)
        if measure is not None and args and isinstance(args[0], torch.Tensor):
            x, dx = fwAD.unpack_dual(args[0])
            x = x.detach()
            dx = torch.zeros_like(x) if dx is None else dx.detach()
            with torch.no_grad():
                found = measure(x, dx, args, kwargs)  # before the call: in-place ops overwrite x
                if self.patterns is not None:
                    self.patterns.append(_side(name, (x, *args[1:]), kwargs))
            if found is None:
                self.unknown.add(f"{name} (ceil_mode=True)")
            else:
                self.margin = min(self.margin, found)
                self.located.add(name)
        elif name in UNLOCATED_KINKS:
            self.unknown.add(name)
        return func(*args, **kwargs)

    @property
    def result(self) -> float:
        """The margin: 0 on a kink, NaN where an unlocated kink was met (and none at 0)."""
        if self.margin == 0.0:
            return 0.0
        return math.nan if self.unknown else self.margin


def record_kinks(
    forward: Callable[[dict, torch.Tensor], torch.Tensor],
    params: dict[str, torch.Tensor],
    tangents: dict[str, torch.Tensor],
    batches: Iterable[torch.Tensor],
) -> KinkRecorder:
    """Run ``forward(params, x)`` on every batch with theta's derivative along ``tangents``
    carried as dual numbers, recording the kinks met."""
    recorder = KinkRecorder()
    with fwAD.dual_level():
        dual = {k: fwAD.make_dual(p, tangents[k]) for k, p in params.items()}
        for xb in batches:
            with recorder:
                forward(dual, xb)
    return recorder


def record_patterns(
    forward: Callable[[dict, torch.Tensor], torch.Tensor],
    params: dict[str, torch.Tensor],
    batches: Iterable[torch.Tensor],
) -> list[np.ndarray]:
    """The side of each located kink every input is on, per kinked call, samples stacked."""
    pieces: list[list[np.ndarray]] = []
    with torch.no_grad():
        for xb in batches:
            recorder = KinkRecorder(patterns=True)
            with recorder:
                forward(params, xb)
            pieces.append([t.numpy() for t in recorder.patterns or []])
    return [np.concatenate(parts) for parts in zip(*pieces, strict=True)]
