"""Theorem 4: deep networks of eq. 4.3 with a locally induced partial linear structure.

At a local minimum theta in Theta_{d_y,t} outside Omega^, for small eps > 0,

    L(theta) = inf over sum_{l=t}^{H} alpha^(l+1) h^(l)(x) + f~_theta(x; alpha, eps, S),

so L(theta) is no worse than the best linear model on the learned features h^(t), ..., h^(H).
For a deep linear network with d_y <= min(d_1, ..., d_H), t = 0 and this is inf_a l(a x):
every local minimum is global (Laurent & Brecht 2018, Proposition 2).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from .._options import show
from .._validation import as_theta
from ..errors import InvalidOptionError
from ..models.mlp import MLP
from ..objective import Objective, check_objective
from ..verdict import jsonable, table
from ._perturbed import PerturbedOptions, PerturbedResult, listed_after, perturbed_check
from .linear_units import LinearUnitSets, check_mlp, unit_sets
from .perturbation import PerturbationSet
from .span_check import FeatureBound, feature_bound

__all__ = ["Theorem4Result", "hidden_features", "theorem4"]


def hidden_features(model: MLP, theta: object, X: object, layers: Sequence[int]) -> np.ndarray:
    """[h^(l)(x_i) for l in layers] side by side, shape (m, sum d_l); h^(0) = x. A column of
    ones is appended when the network has biases (the affine part every layer carries).
    ``layers`` are integers in 0..H."""
    model = check_mlp(model)
    dense = model.dense_layers()
    H = len(dense) - 1
    listed = (
        list(layers)
        if isinstance(layers, Iterable) and not isinstance(layers, (str, bytes))
        else None
    )
    if listed is None or any(
        isinstance(l, (bool, np.bool_)) or not isinstance(l, (int, np.integer)) or not 0 <= l <= H
        for l in listed
    ):
        shown = (
            "[" + ", ".join(show(l) for l in listed) + "]" if listed is not None else repr(layers)
        )
        raise InvalidOptionError(
            f"layers must be hidden-layer indices in 0..H = 0..{H} (0 = the input x); got {shown}"
        )
    blocks = [model.node_values(theta, X, dense[l].input_node) for l in listed]
    if model.bias:
        blocks.append(np.ones((blocks[0].shape[0] if blocks else np.asarray(X).shape[0], 1)))
    return np.hstack(blocks)


@dataclass(frozen=True, repr=False)
class Theorem4Result(PerturbedResult):
    """Theorem 4 at one point for a given t (the fields every theorem of the perturbable basis
    reports: :class:`PerturbedResult`).

    ``lower``/``value`` certify the infimum over [h^(t), ..., h^(H)] (x) I plus the perturbable
    span, against L(theta). ``features`` is the bound over the hidden features alone and
    ``linear`` the bound over x (+ 1) alone, the global minimum of a deep linear network; each
    says whether L(theta) <= it. ``set_sizes`` are |J^(1)|, ..., |J^(H+1)|, and ``in_theta``
    whether theta is in Theta_{d_y,t}. ``residual`` is the scale-free residual of the features
    and the difference quotients.
    """

    t: int = listed_after("reason")
    features: FeatureBound = listed_after("tol")
    linear: FeatureBound = listed_after("tol")
    set_sizes: tuple[int, ...] = listed_after("tol")
    in_theta: bool = listed_after("tol")
    residual: float = listed_after("relative_gradient")
    sets: LinearUnitSets = listed_after("seconds", repr=False)

    def to_dict(self) -> dict:
        d = self.listed("check", "basis", "features", "linear", "sets")
        d["features"] = self.features.to_dict()
        d["linear"] = self.linear.to_dict()
        return cast(dict, jsonable(d))

    def __str__(self) -> str:
        skip = ("check", "basis", "seconds", "directions", "features", "linear", "sets")
        rows = list(self.listed(*skip).items())
        rows += [
            ("hidden-feature bound (value)", self.features.value),
            ("L <= hidden-feature bound", self.features.meets),
            ("linear-model bound (value)", self.linear.value),
            ("L <= linear-model bound", self.linear.meets),
        ]
        return table(f"Theorem 4 (eq. 4.3, t = {self.t})", rows)


def theorem4(
    obj: Objective,
    theta: object,
    t: int,
    *,
    eps: float = PerturbedOptions.eps,
    S: PerturbationSet | None = PerturbedOptions.S,
    kinds: Sequence[str] = PerturbedOptions.kinds,
    budget: int = PerturbedOptions.budget,
    combinations: int = PerturbedOptions.combinations,
    margin: float = PerturbedOptions.margin,
    rtol: float = PerturbedOptions.rtol,
    grad_tol: float = PerturbedOptions.grad_tol,
    rank_tol: float | None = PerturbedOptions.rank_tol,
    cuts: Sequence[float] = PerturbedOptions.cuts,
    check_minimum: bool = PerturbedOptions.check_minimum,
    curvature_tol: float = PerturbedOptions.curvature_tol,
    seed: int = PerturbedOptions.seed,
    strategy: str = PerturbedOptions.strategy,
) -> Theorem4Result:
    """Check Theorem 4 at theta for an :class:`MLP` and t in 0..H.

    Verdicts as :func:`gradbasis.theorem2`; "does not apply" also when theta is not in
    Theta_{d_y,t} (the sets of locally linear units, :func:`linear_unit_sets` with ``margin``,
    are too small; the numbers are still reported). tol = rtol * max(1, |L|).
    """
    obj = check_objective(obj)
    model = check_mlp(obj.model)
    theta = as_theta(theta, model.num_params)
    options = PerturbedOptions(
        eps=eps,
        S=S,
        kinds=kinds,
        budget=budget,
        combinations=combinations,
        rtol=rtol,
        grad_tol=grad_tol,
        rank_tol=rank_tol,
        cuts=cuts,
        check_minimum=check_minimum,
        curvature_tol=curvature_tol,
        seed=seed,
        strategy=strategy,
        margin=margin,
    )
    sets = unit_sets(model, theta, obj.X, options.margin)
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t <= sets.depth:
        raise InvalidOptionError(f"t must be an integer in 0..H = 0..{sets.depth}; got {t!r}")
    t = int(t)
    d_y = model.output_dim
    feats = hidden_features(model, theta, obj.X, range(t, sets.depth + 1))
    in_theta = sets.in_theta(d_y, t)
    precondition = None
    if not in_theta:
        short = [
            f"|J^({l})| = {s.size}"
            for l, s in enumerate(sets.sets, start=1)
            if l > t and s.size < d_y
        ]
        precondition = (
            f"theta is not in Theta_{{d_y,t}} for d_y = {d_y}, t = {t}: {', '.join(short)} < d_y"
        )
    pc = perturbed_check(
        obj,
        theta,
        options,
        features=feats,
        feature_meaning=f"the hidden features h^({t}..{sets.depth})",
        precondition=precondition,
    )
    L, tol = pc.check.loss_value, pc.check.tol
    t0 = time.perf_counter()
    features = feature_bound(obj, theta, f"features: h^({t}..{sets.depth})", feats, L, tol)
    inputs = hidden_features(model, theta, obj.X, [0])
    linear = feature_bound(obj, theta, "linear: a x", inputs, L, tol)
    pc.seconds["feature_bounds"] = time.perf_counter() - t0
    return Theorem4Result(
        **pc.result_fields(),
        t=t,
        features=features,
        linear=linear,
        set_sizes=sets.sizes(),
        in_theta=in_theta,
        residual=pc.residual,
        sets=sets,
    )
