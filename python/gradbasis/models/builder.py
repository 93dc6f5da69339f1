"""Building a model's C++ graph: parameter blocks (ParamSpec) in theta order and graph nodes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .. import _core
from .activations import Activation


@dataclass(frozen=True)
class ParamSpec:
    """One named parameter block of theta: ``theta[offset:offset + size]`` reshaped to
    ``shape`` in ``order`` ("F", column-major, the paper's vec, for the C++ models; "C",
    row-major, for torch modules); initialised N(0, init_std^2)."""

    name: str
    shape: tuple[int, ...]
    offset: int
    init_std: float
    order: Literal["C", "F"] = "F"

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


class GraphBuilder:
    """Allocates parameter blocks in theta order and adds C++ graph nodes.

    Allocation and node creation are separate because theta's order (e.g. W, R, u for
    the ResNet of eq. 4.1) need not follow the order in which values are computed.
    """

    def __init__(self, input_dim: int):
        self.graph = _core.Graph(int(input_dim))
        self.params: list[ParamSpec] = []
        self.dims: list[int] = [int(input_dim)]
        self._next = 0

    def param(self, name: str, shape: tuple[int, ...], init_std: float) -> int:
        spec = ParamSpec(name, tuple(int(s) for s in shape), self._next, float(init_std))
        self.params.append(spec)
        self._next += spec.size
        return spec.offset

    def dense(self, src: int, out_dim: int, weight_offset: int, bias_offset: int = -1) -> int:
        return self._push(self.graph.add_dense(src, out_dim, weight_offset, bias_offset), out_dim)

    def activation(self, src: int, act: Activation) -> int:
        return self._push(
            self.graph.add_activation(src, act.kind, act.negative_slope), self.dims[src]
        )

    def sum(self, a: int, b: int) -> int:
        return self._push(self.graph.add_sum(a, b), self.dims[a])

    def finalize(self, output: int) -> None:
        self.graph.finalize(output, self._next)

    def _push(self, node: int, dim: int) -> int:
        self.dims.append(int(dim))
        assert node == len(self.dims) - 1
        return node


def dense_layer(
    b: GraphBuilder, src: int, out_dim: int, name: str, bias_name: str | None, gain: float
) -> int:
    """Allocate W (and b) right here in theta order and add the layer W src + b."""
    fan_in = b.dims[src]
    w = b.param(name, (out_dim, fan_in), gain / np.sqrt(fan_in))
    bias = b.param(bias_name, (out_dim,), 0.0) if bias_name else -1
    return b.dense(src, out_dim, w, bias)
