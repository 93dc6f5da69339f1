"""Theorem 4's locally induced partial linear structure of a fully connected network (eq. 4.3).

A unit is *locally linear* when h^(l)_k = (W^(l) h^(l-1) + b^(l))_k on a neighbourhood of theta
for every sample: identity activations always, relu / leaky_relu when every pre-activation is
above ``margin``. The largest family J^(t+1), ..., J^(H+1) of the paper's definition is the
fixed point of: start from all locally linear units (J^(H+1) = every output), then drop from
J^(l) each unit with a nonzero weight into a unit of layer l+1 outside J^(l+1). The drop only
looks one layer up, so one pass from the top reaches the fixed point, and the family for a
given t is this one restricted to layers t+1..H+1.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import cast

import numpy as np

from .._options import finite_nonnegative, nonnegative_int, show
from .._validation import as_samples, as_theta
from ..errors import InvalidArgumentError, InvalidOptionError
from ..models.mlp import MLP
from ..verdict import jsonable

__all__ = ["LinearUnitSets", "check_mlp", "linear_unit_sets", "in_theta_nt", "unit_sets"]


@dataclass(frozen=True)
class LinearUnitSets:
    """J^(1), ..., J^(H+1) as sorted 0-based unit indices (``sets[l - 1]`` is J^(l)).

    ``linear[l - 1]`` are the locally linear units of layer l before the fixed point dropped
    any; ``margin`` is the pre-activation margin used for rectifiers.
    """

    sets: tuple[np.ndarray, ...]
    linear: tuple[np.ndarray, ...]
    widths: tuple[int, ...]  # d_1, ..., d_H, d_y
    margin: float

    @property
    def depth(self) -> int:
        """H, the number of hidden layers."""
        return len(self.sets) - 1

    def sizes(self) -> tuple[int, ...]:
        return tuple(int(s.size) for s in self.sets)

    def in_theta(self, n: int, t: int) -> bool:
        """theta in Theta_{n,t}: |J^(l)| >= n for every l = t+1, ..., H+1."""
        if (
            isinstance(t, (bool, np.bool_))
            or not isinstance(t, numbers.Integral)
            or not 0 <= t <= self.depth
        ):
            raise InvalidOptionError(f"t must lie in 0..H = 0..{self.depth}; got {show(t)}")
        n = nonnegative_int(n, "n")
        return all(s.size >= n for s in self.sets[int(t) :])

    def largest_t(self, n: int) -> int | None:
        """The smallest t with theta in Theta_{n,t} (most layers linear), or None."""
        for t in range(self.depth + 1):
            if self.in_theta(n, t):
                return t
        return None

    def to_dict(self) -> dict:
        return cast(
            dict,
            jsonable(
                {
                    "sets": [s.tolist() for s in self.sets],
                    "sizes": self.sizes(),
                    "widths": self.widths,
                    "margin": self.margin,
                }
            ),
        )


def check_mlp(model: object) -> MLP:
    if not isinstance(model, MLP):
        raise InvalidArgumentError(
            f"Theorem 4's linear-unit sets are defined for the fully connected network of eq. 4.3 (gradbasis.MLP); "
            f"got {type(model).__name__}"
        )
    return model


def linear_unit_sets(
    model: MLP, theta: object, X: object, *, margin: float = 1e-8
) -> LinearUnitSets:
    """The largest family J^(1..H+1) of locally linear units at theta (see module docstring).

    ``margin`` (>= 0): a relu / leaky_relu unit counts as linear when every sample's
    pre-activation exceeds it, so the unit stays linear on a ball around theta. Weights are
    compared with exactly 0 in the dropping rule, as in the paper's condition 3.
    """
    model = check_mlp(model)
    theta = as_theta(theta, model.num_params)
    X = as_samples(X, model.input_dim)
    return unit_sets(model, theta, X, finite_nonnegative(margin, "margin"))


def unit_sets(model: MLP, theta: np.ndarray, X: np.ndarray, margin: float) -> LinearUnitSets:
    """:func:`linear_unit_sets` on checked inputs: theta and X float64 arrays of the model's
    shapes (:func:`gradbasis._validation.as_theta`, ``as_samples``), ``margin`` >= 0."""
    layers = model.dense_layers()
    params = model.unflatten(theta)
    H = len(layers) - 1
    linear: list[np.ndarray] = []
    for layer, act in zip(layers[:H], model.activations, strict=False):
        if act.name == "identity" or (act.name == "leaky_relu" and act.negative_slope == 1.0):
            linear.append(np.arange(layer.out_dim))
        elif act.name in ("relu", "leaky_relu"):
            pre = model.node_values(theta, X, layer.node)
            linear.append(
                np.flatnonzero(pre.min(axis=0) > margin)
                if pre.shape[0]
                else np.arange(layer.out_dim)
            )
        else:
            linear.append(np.arange(0))
    sets: list[np.ndarray] = [np.arange(layers[H].out_dim)]
    for l in range(H, 0, -1):  # J^(l) from J^(l+1): drop units feeding a unit outside J^(l+1)
        W_next = params[layers[l].weight.name]
        outside = np.setdiff1d(np.arange(W_next.shape[0]), sets[0])
        cand = linear[l - 1]
        feeds_outside = (
            np.any(W_next[np.ix_(outside, cand)] != 0.0, axis=0)
            if outside.size
            else np.zeros(cand.size, bool)
        )
        sets.insert(0, cand[~feeds_outside])
    return LinearUnitSets(
        sets=tuple(sets),
        linear=tuple(linear),
        widths=tuple(l.out_dim for l in layers),
        margin=float(margin),
    )


def in_theta_nt(
    model: MLP, theta: object, X: object, n: int, t: int, *, margin: float = 1e-8
) -> bool:
    """Whether theta lies in Theta_{n,t} (|J^(l)| >= n for l = t+1..H+1) on the data X."""
    return linear_unit_sets(model, theta, X, margin=margin).in_theta(n, t)
