"""Checks of architecture arguments (sizes, layer lists)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ShapeError


def check_size(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ShapeError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def check_layer_sizes(layer_sizes: Sequence[int]) -> tuple[int, ...]:
    """[d_x, d_1, ..., d_H, d_y] with H >= 0 hidden layers."""
    if isinstance(layer_sizes, (str, bytes)) or not isinstance(layer_sizes, Sequence):
        raise ShapeError(
            f"layer_sizes must be a sequence [d_x, d_1, ..., d_y]; got {layer_sizes!r}"
        )
    if len(layer_sizes) < 2:
        raise ShapeError(
            f"layer_sizes needs at least input and output sizes; got {list(layer_sizes)}"
        )
    return tuple(check_size(s, f"layer_sizes[{i}]") for i, s in enumerate(layer_sizes))
