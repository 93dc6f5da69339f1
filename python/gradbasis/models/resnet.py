"""The ResNet of eq. 4.1, f(x) = W (x + R z(x; u)), and pre-activation residual stacks for z."""

from __future__ import annotations

import math
from typing import Protocol

from ..errors import InvalidArgumentError, ShapeError, UnsupportedModelError
from .activations import Activation, parse_activation
from .base import Model
from .builder import GraphBuilder, dense_layer
from .layout import check_size


class ResidualFunction(Protocol):
    """What ResNet needs of z(x; u): its sizes and a way to add itself to a graph."""

    @property
    def input_dim(self) -> int: ...

    @property
    def output_dim(self) -> int: ...

    def emit(self, b: GraphBuilder, src: int, prefix: str) -> int: ...


class PreActResidualStack(Model):
    """z(x; u): ``num_blocks`` pre-activation residual blocks on R^dim (He et al. 2016, no BN).

    h_0 = x, h_b = h_{b-1} + V_b act(U_b act(h_{b-1}) + c_b) + e_b, z = h_B. Per block theta
    holds vec(U_b) (hidden x dim), c_b, vec(V_b) (dim x hidden), e_b (biases only when
    ``bias``); names ``U1``, ``c1``, ``V1``, ``e1``, ... V is initialised small
    (1/sqrt(num_blocks) scaling) so deep stacks start near the identity.
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        num_blocks: int = 1,
        activation: str | Activation = "relu",
        *,
        bias: bool = True,
        negative_slope: float = 0.01,
    ):
        self.dim = check_size(dim, "dim")
        self.hidden = check_size(hidden, "hidden")
        self.num_blocks = check_size(num_blocks, "num_blocks")
        self.activation = parse_activation(activation, negative_slope)
        self.bias = bool(bias)
        b = GraphBuilder(self.dim)
        super().__init__(b, self.emit(b, 0, ""), homogeneous=())

    def emit(self, b: GraphBuilder, src: int, prefix: str) -> int:
        act, h = self.activation, src
        for k in range(1, self.num_blocks + 1):
            inner = dense_layer(
                b,
                b.activation(h, act),
                self.hidden,
                f"{prefix}U{k}",
                f"{prefix}c{k}" if self.bias else None,
                act.init_gain,
            )
            branch = dense_layer(
                b,
                b.activation(inner, act),
                self.dim,
                f"{prefix}V{k}",
                f"{prefix}e{k}" if self.bias else None,
                act.init_gain / math.sqrt(self.num_blocks),
            )
            h = b.sum(h, branch)
        return h

    def homogeneity(self, theta: object):  # type: ignore[override]
        raise UnsupportedModelError(
            "a residual stack on its own is not linear in any parameter block; "
            "Assumption 2 applies to the ResNet that contains it"
        )

    def _constructor_arguments(self) -> tuple[tuple, dict]:
        return (self.dim, self.hidden, self.num_blocks, self.activation), {"bias": self.bias}

    def _describe(self) -> str:
        return f"dim={self.dim}, hidden={self.hidden}, blocks={self.num_blocks}, {self.activation}"


class ResNet(Model):
    """f(x; theta) = W (x + R z(x; u)) of eq. 4.1 (Shamir 2018, Theorem 3).

    W is (d_y x d_x), R is (d_x x d_z), z is ``residual`` (an :class:`MLP` from d_x to d_z,
    or a :class:`PreActResidualStack` on R^{d_x}). theta = [vec(W), vec(R), u] with the
    residual's parameters named ``u.<name>``. f is linear in W, so g(theta) = (W, 0, 0).
    """

    def __init__(self, input_dim: int, output_dim: int, residual: ResidualFunction):
        input_dim = check_size(input_dim, "input_dim")
        output_dim = check_size(output_dim, "output_dim")
        if not all(hasattr(residual, a) for a in ("emit", "input_dim", "output_dim")):
            raise InvalidArgumentError(
                f"residual must be an MLP or PreActResidualStack; got {type(residual).__name__}"
            )
        if residual.input_dim != input_dim:
            raise ShapeError(
                f"residual takes inputs of size {residual.input_dim}; the ResNet's input_dim is {input_dim}"
            )
        self.residual = residual
        d_z = residual.output_dim
        b = GraphBuilder(input_dim)
        w = b.param("W", (output_dim, input_dim), 1.0 / math.sqrt(input_dim))
        r = b.param("R", (input_dim, d_z), 1.0 / math.sqrt(d_z))
        z = residual.emit(b, 0, "u.")
        inner = b.sum(0, b.dense(z, input_dim, r))
        super().__init__(b, b.dense(inner, output_dim, w), homogeneous=("W",))

    def _constructor_arguments(self) -> tuple[tuple, dict]:
        return (self.input_dim, self.output_dim, self.residual), {}

    def _describe(self) -> str:
        return f"{self.input_dim} -> {self.output_dim}, residual={self.residual!r}"
