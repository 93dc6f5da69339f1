"""Fully connected networks: eq. 4.3 (MLP) and Example 3 (skip connections to the output)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from ..errors import InvalidOptionError
from .activations import Activation, parse_activations
from .base import Model
from .builder import GraphBuilder, dense_layer
from .layout import check_layer_sizes


def emit_hidden_layers(
    b: GraphBuilder,
    src: int,
    sizes: tuple[int, ...],
    activations: tuple[Activation, ...],
    bias: bool,
    prefix: str,
) -> list[int]:
    """h_l = act_l(W_l h_{l-1} + b_l) for l = 1..H; returns the nodes [h_0, h_1, ..., h_H]."""
    hidden = [src]
    for l, (width, act) in enumerate(zip(sizes, activations, strict=False), start=1):
        pre = dense_layer(
            b, hidden[-1], width, f"{prefix}W{l}", f"{prefix}b{l}" if bias else None, act.init_gain
        )
        hidden.append(b.activation(pre, act))
    return hidden


class MLP(Model):
    """Fully connected network of eq. 4.3 with an affine output layer.

    ``layer_sizes = [d_x, d_1, ..., d_H, d_y]``; h_0 = x, h_l = act_l(W_l h_{l-1} + b_l),
    f = W_{H+1} h_H + b_{H+1}. ``activation`` is one name or one per hidden layer:
    identity (deep linear networks), relu, leaky_relu (slope ``negative_slope``, or
    ``"leaky_relu(0.2)"``), tanh, sigmoid, softplus, gelu (exact, erf form).
    theta = [vec(W_1), b_1, ..., vec(W_{H+1}), b_{H+1}], names ``W1``, ``b1``, ...
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activation: str | Activation | Sequence[str | Activation] = "tanh",
        *,
        bias: bool = True,
        negative_slope: float = 0.01,
    ):
        self.layer_sizes = check_layer_sizes(layer_sizes)
        self.activations = parse_activations(activation, len(self.layer_sizes) - 2, negative_slope)
        self.bias = bool(bias)
        b = GraphBuilder(self.layer_sizes[0])
        out = self.emit(b, 0, "")
        H = len(self.layer_sizes) - 2
        names = (f"W{H + 1}", f"b{H + 1}") if self.bias else (f"W{H + 1}",)
        super().__init__(b, out, homogeneous=names)

    def emit(self, b: GraphBuilder, src: int, prefix: str) -> int:
        """Add this network to a larger graph (e.g. as a ResNet's residual function)."""
        hidden = emit_hidden_layers(
            b, src, self.layer_sizes[1:-1], self.activations, self.bias, prefix
        )
        H = len(self.layer_sizes) - 2
        return dense_layer(
            b,
            hidden[-1],
            self.layer_sizes[-1],
            f"{prefix}W{H + 1}",
            f"{prefix}b{H + 1}" if self.bias else None,
            1.0,
        )

    def _constructor_arguments(self) -> tuple[tuple, dict]:
        return (self.layer_sizes, self.activations), {"bias": self.bias}

    def _describe(self) -> str:
        acts = sorted({str(a) for a in self.activations})
        return f"{list(self.layer_sizes)}, {'/'.join(acts) or 'linear'}, bias={self.bias}"


class SkipMLP(Model):
    """A fully connected network with skip connections to the output (Example 3).

    f(x) = sum_{l in I} S_l h_l + W_{H+1} h_H + b_{H+1} with I = ``skip_from``, a subset of
    {0, ..., H} (0 is the input x itself); the last hidden layer always feeds the output.
    theta = [hidden layers as in MLP, vec(S_l) for l in I (l < H) ascending, vec(W_{H+1}),
    b_{H+1}]; names ``S{l}`` for the skip matrices. With no skips this is exactly :class:`MLP`.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        skip_from: Iterable[int] = (),
        activation: str | Activation | Sequence[str | Activation] = "tanh",
        *,
        bias: bool = True,
        negative_slope: float = 0.01,
    ):
        self.layer_sizes = check_layer_sizes(layer_sizes)
        H = len(self.layer_sizes) - 2
        if isinstance(skip_from, (str, bytes)) or not isinstance(skip_from, Iterable):
            raise InvalidOptionError(
                f"skip_from must be a collection of layer indices in 0..{H}; got {skip_from!r}"
            )
        given = list(skip_from)
        if any(
            isinstance(l, (bool, np.bool_)) or not isinstance(l, (int, np.integer)) for l in given
        ):
            raise InvalidOptionError(
                f"skip_from must hold integer layer indices in 0..{H}; got {given!r}"
            )
        skips = sorted({int(l) for l in given})
        if any(l < 0 or l > H for l in skips):
            raise InvalidOptionError(f"skip_from must lie in 0..{H} (0 = the input); got {skips}")
        self.skip_from = tuple(l for l in skips if l < H) + (H,)
        self.activations = parse_activations(activation, H, negative_slope)
        self.bias = bool(bias)
        d_y = self.layer_sizes[-1]
        b = GraphBuilder(self.layer_sizes[0])
        hidden = emit_hidden_layers(b, 0, self.layer_sizes[1:-1], self.activations, self.bias, "")
        skip_nodes = [
            dense_layer(b, hidden[l], d_y, f"S{l}", None, 1.0) for l in self.skip_from[:-1]
        ]
        out = dense_layer(b, hidden[H], d_y, f"W{H + 1}", f"b{H + 1}" if self.bias else None, 1.0)
        for node in skip_nodes:
            out = b.sum(out, node)
        names = (
            tuple(f"S{l}" for l in self.skip_from[:-1])
            + (f"W{H + 1}",)
            + ((f"b{H + 1}",) if self.bias else ())
        )
        super().__init__(b, out, homogeneous=names)

    def _constructor_arguments(self) -> tuple[tuple, dict]:
        return (self.layer_sizes, self.skip_from, self.activations), {"bias": self.bias}

    def _describe(self) -> str:
        return f"{list(self.layer_sizes)}, skip_from={list(self.skip_from)}, bias={self.bias}"
