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
from dataclasses import dataclass, field

import numpy as np

from .._options import check_seed, positive_step, show
from .._validation import as_theta
from ..errors import InvalidOptionError
from ..models.mlp import MLP
from ..objective import Objective, check_objective, finite_value_and_gradient
from ..solve.induced import DEFAULT_CUTS
from ..verdict import Verdict, jsonable, table
from .linear_units import LinearUnitSets, check_mlp, linear_unit_sets
from .perturbable import PerturbableBasis
from .perturbation import KINDS, PerturbationSet
from .span_check import FeatureBound, SpanCheck, check_tolerances, feature_bound, perturbed_check
from .theorem2 import check_perturbation_set

__all__ = ["Theorem4Result", "hidden_features", "theorem4"]


def hidden_features(model: MLP, theta: object, X: object, layers: Sequence[int]) -> np.ndarray:
    """[h^(l)(x_i) for l in layers] side by side, shape (m, sum d_l); h^(0) = x. A column of
    ones is appended when the network has biases (the affine part every layer carries).
    ``layers`` are integers in 0..H."""
    model = check_mlp(model)
    dense = model.dense_layers()
    H = len(dense) - 1
    given = layers
    layers = (
        list(layers)
        if isinstance(layers, Iterable) and not isinstance(layers, (str, bytes))
        else None
    )
    if layers is None or any(
        isinstance(l, (bool, np.bool_)) or not isinstance(l, (int, np.integer)) or not 0 <= l <= H
        for l in layers
    ):
        shown = (
            "[" + ", ".join(show(l) for l in layers) + "]" if layers is not None else repr(given)
        )
        raise InvalidOptionError(
            f"layers must be hidden-layer indices in 0..H = 0..{H} (0 = the input x); got {shown}"
        )
    blocks = [model.node_values(theta, X, dense[l].input_node) for l in layers]
    if model.bias:
        blocks.append(np.ones((blocks[0].shape[0] if blocks else np.asarray(X).shape[0], 1)))
    return np.hstack(blocks)


@dataclass(frozen=True)
class Theorem4Result:
    """Theorem 4 at one point for a given t.

    ``lower``/``value`` certify the infimum over [h^(t), ..., h^(H)] (x) I plus the perturbable
    span, against L(theta). ``features`` is the bound over the hidden features alone and
    ``linear`` the bound over x (+ 1) alone, the global minimum of a deep linear network; each
    says whether L(theta) <= it. ``set_sizes`` are |J^(1)|, ..., |J^(H+1)|, and ``in_theta``
    whether theta is in Theta_{d_y,t}.
    """

    verdict: Verdict
    reason: str
    t: int
    loss_value: float
    lower: float
    value: float
    gap: float
    tol: float
    features: FeatureBound
    linear: FeatureBound
    set_sizes: tuple[int, ...]
    in_theta: bool
    gradient_norm: float
    relative_gradient: float
    residual: float  # scale-free residual of the features and the difference quotients
    dual_residual: float
    first_order_bound: float
    kink_margin: float
    min_eigenvalue: float
    dim_T: int
    dim_T_tilde: int
    num_directions: int
    eps: float
    converged: bool
    scope: str
    judged_by: str
    directions: dict
    seconds: dict = field(repr=False)
    sets: LinearUnitSets = field(repr=False)
    check: SpanCheck = field(repr=False)
    basis: PerturbableBasis = field(repr=False)

    def to_dict(self) -> dict:
        d = {
            k: v
            for k, v in vars(self).items()
            if k not in ("check", "basis", "features", "linear", "sets")
        }
        d["features"] = self.features.to_dict()
        d["linear"] = self.linear.to_dict()
        return jsonable(d)

    def __str__(self) -> str:
        skip = ("check", "basis", "seconds", "directions", "features", "linear", "sets")
        rows = [(k, v) for k, v in vars(self).items() if k not in skip]
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
    eps: float = 1e-2,
    S: PerturbationSet | None = None,
    kinds: Sequence[str] = KINDS,
    budget: int = 256,
    combinations: int = 16,
    margin: float = 1e-8,
    rtol: float = 1e-8,
    grad_tol: float = 1e-6,
    rank_tol: float | None = None,
    cuts: Sequence[float] = DEFAULT_CUTS,
    check_minimum: bool = True,
    curvature_tol: float = 1e-8,
    seed: int = 0,
    strategy: str = "dense",
) -> Theorem4Result:
    """Check Theorem 4 at theta for an :class:`MLP` and t in 0..H.

    Verdicts as :func:`gradbasis.theorem2`; "does not apply" also when theta is not in
    Theta_{d_y,t} (the sets of locally linear units, :func:`linear_unit_sets` with ``margin``,
    are too small; the numbers are still reported). tol = rtol * max(1, |L|).
    """
    obj = check_objective(obj)
    model = obj.model
    sets = linear_unit_sets(model, theta, obj.X, margin=margin)
    theta = as_theta(theta, model.num_params)
    S = check_perturbation_set(S)
    rtol, grad_tol, rank_tol, cuts, curvature_tol = check_tolerances(
        rtol, grad_tol, rank_tol, cuts, curvature_tol
    )
    seed = check_seed(seed)
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t <= sets.depth:
        raise InvalidOptionError(f"t must be an integer in 0..H = 0..{sets.depth}; got {t!r}")
    t = int(t)
    finite_value_and_gradient(obj, theta)  # before any work: no verdict on an overflowing loss
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
        eps=positive_step(eps if S is None else S.eps),
        S=S,
        direction_options=dict(
            kinds=kinds, budget=budget, combinations=combinations, margin=margin, seed=seed
        ),
        rtol=rtol,
        grad_tol=grad_tol,
        rank_tol=rank_tol,
        cuts=cuts,
        check_minimum=check_minimum,
        curvature_tol=curvature_tol,
        strategy=strategy,
        features=feats,
        feature_meaning=f"the hidden features h^({t}..{sets.depth})",
        precondition=precondition,
    )
    check, pb, verdict, reason, lam, seconds = (
        pc.check,
        pc.basis,
        pc.verdict,
        pc.reason,
        pc.min_eigenvalue,
        pc.seconds,
    )
    t0 = time.perf_counter()
    features = feature_bound(
        obj, theta, f"features: h^({t}..{sets.depth})", feats, check.loss_value, check.tol
    )
    linear = feature_bound(
        obj,
        theta,
        "linear: a x",
        hidden_features(model, theta, obj.X, [0]),
        check.loss_value,
        check.tol,
    )
    seconds["feature_bounds"] = time.perf_counter() - t0
    return Theorem4Result(
        verdict=verdict,
        reason=reason,
        t=t,
        loss_value=check.loss_value,
        lower=check.lower,
        value=check.value,
        gap=check.gap,
        tol=check.tol,
        features=features,
        linear=linear,
        set_sizes=sets.sizes(),
        in_theta=in_theta,
        gradient_norm=check.gradient_norm,
        relative_gradient=check.relative_gradient,
        residual=pc.residual,
        dual_residual=check.dual_residual,
        first_order_bound=check.first_order_bound,
        kink_margin=check.kink_margin,
        min_eigenvalue=lam,
        dim_T=pb.dim_T,
        dim_T_tilde=pb.dim_T_tilde,
        num_directions=pb.num_directions,
        eps=pc.eps,
        converged=check.converged,
        scope=check.scope,
        judged_by=pc.judged_by,
        directions=pc.S.to_dict(),
        seconds=seconds,
        sets=sets,
        check=check,
        basis=pb,
    )
