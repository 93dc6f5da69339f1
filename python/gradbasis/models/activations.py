"""Activation names and their kinds in the C++ core."""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .. import _core
from .._options import show
from ..errors import InvalidOptionError, UnknownNameError

_KINDS = {
    "identity": _core.ActivationKind.identity,
    "relu": _core.ActivationKind.relu,
    "leaky_relu": _core.ActivationKind.leaky_relu,
    "tanh": _core.ActivationKind.tanh,
    "sigmoid": _core.ActivationKind.sigmoid,
    "softplus": _core.ActivationKind.softplus,
    "gelu": _core.ActivationKind.gelu,
}
ACTIVATIONS = tuple(_KINDS)
_WITH_SLOPE = re.compile(r"^leaky_relu\(\s*([^)]*)\)$")


@dataclass(frozen=True)
class Activation:
    """One elementwise activation; ``negative_slope`` is used by leaky_relu only."""

    name: str
    negative_slope: float = 0.0

    def __post_init__(self) -> None:
        # Built directly as well as by parse_activation: an unknown name or a slope that is not
        # a finite number would otherwise reach the core (a KeyError, or NaN outputs).
        if not isinstance(self.name, str) or self.name not in _KINDS:
            raise UnknownNameError(
                f"unknown activation {self.name!r}; choose from {', '.join(ACTIVATIONS)}"
            )
        slope = self.negative_slope
        if (
            isinstance(slope, bool)
            or not isinstance(slope, numbers.Real)
            or not math.isfinite(float(slope))
        ):
            raise InvalidOptionError(
                f"leaky_relu negative_slope must be a finite number; got {show(slope)}"
            )
        object.__setattr__(self, "negative_slope", float(slope))

    @property
    def kind(self) -> _core.ActivationKind:
        """Internal: the C++ core's kind of this activation (gradbasis._core.ActivationKind)."""
        return _KINDS[self.name]

    @property
    def code(self) -> int:
        """The integer value of :attr:`kind`."""
        return int(self.kind)

    @property
    def has_kink(self) -> bool:
        """Whether the derivative jumps (at 0): relu, and leaky_relu unless its slope is 1."""
        return self.name == "relu" or (self.name == "leaky_relu" and self.negative_slope != 1.0)

    @property
    def init_gain(self) -> float:
        """Standard deviation gain for scaled random init (He for rectifiers, else LeCun)."""
        if self.name in ("relu", "leaky_relu"):
            return math.sqrt(2.0 / (1.0 + self.negative_slope**2))
        return 1.0

    def __str__(self) -> str:
        if self.name == "leaky_relu":
            return f"leaky_relu({self.negative_slope:g})"
        return self.name


def parse_activation(spec: str | Activation, negative_slope: float = 0.01) -> Activation:
    """``"tanh"``, ``"leaky_relu"`` (slope ``negative_slope``) or ``"leaky_relu(0.2)"``."""
    if isinstance(spec, Activation):
        return spec
    if not isinstance(spec, str):
        raise UnknownNameError(f"activation must be a name from {ACTIVATIONS}; got {spec!r}")
    name = spec.strip().lower()
    match = _WITH_SLOPE.match(name)
    if match:
        try:
            negative_slope = float(match.group(1))
        except ValueError:
            raise UnknownNameError(f"cannot read the slope in activation {spec!r}") from None
        name = "leaky_relu"
    if name not in _KINDS:
        raise UnknownNameError(f"unknown activation {spec!r}; choose from {', '.join(ACTIVATIONS)}")
    if name != "leaky_relu":
        return Activation(name, 0.0)
    return Activation(name, negative_slope)


def parse_activations(
    spec: str | Activation | Iterable[str | Activation], count: int, negative_slope: float = 0.01
) -> tuple[Activation, ...]:
    """One activation per hidden layer from one name or a sequence of ``count`` names."""
    if isinstance(spec, (str, Activation)) or not isinstance(spec, Iterable):
        return (parse_activation(spec, negative_slope),) * count
    specs = list(spec)
    if len(specs) != count:
        raise InvalidOptionError(
            f"got {len(specs)} activations for {count} hidden layers; give one name or one per layer"
        )
    return tuple(parse_activation(s, negative_slope) for s in specs)
