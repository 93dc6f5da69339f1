"""Theorem 3: ResNets f(x) = W (x + R z(x; u)) of eq. 4.1, and Shamir's bound (Proposition 1).

At a local minimum theta outside Omega~ with d_y <= min(d_x, d_z), for small eps > 0,

    L(theta) = inf over alpha_w x + alpha_r z(x; u) + f~_theta(x; alpha, eps, S),

so in particular L(theta) <= inf_W sum_i lambda_i l(W x_i, y_i) (Shamir 2018, who proved it
for d_y = 1 only) and L(theta) <= the best linear model on [x, z(x; u)]. The proof puts those
features in the perturbable span through R += eps a b^T with W a = 0 when rank W < d_y (the
``output_null`` directions of :mod:`gradbasis.perturbation`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .._options import check_seed, positive_step
from .._validation import as_theta
from ..errors import InvalidArgumentError
from ..models.resnet import ResNet
from ..objective import Objective, check_objective, finite_value_and_gradient
from ..solve.induced import DEFAULT_CUTS
from ..verdict import Verdict, jsonable, table
from .perturbable import PerturbableBasis
from .perturbation import KINDS, PerturbationSet
from .span_check import FeatureBound, SpanCheck, check_tolerances, feature_bound, perturbed_check
from .theorem2 import check_perturbation_set

__all__ = ["Theorem3Result", "residual_features", "theorem3"]


def residual_features(model: ResNet, theta: object, X: object) -> np.ndarray:
    """z(x_i; u) for every sample, shape (m, d_z): the input of the R layer."""
    if not isinstance(model, ResNet):
        raise InvalidArgumentError(
            f"Theorem 3 is about the ResNet of eq. 4.1 (gradbasis.ResNet); got {type(model).__name__}"
        )
    R = next(l for l in model.dense_layers() if l.weight.name == "R")
    return model.node_values(theta, X, R.input_node)


@dataclass(frozen=True)
class Theorem3Result:
    """Theorem 3 at one point.

    ``lower``/``value`` certify inf over [x, z(x; u)] (x) I_{d_y} plus the perturbable span;
    the verdict says whether L(theta) equals it. ``shamir`` is Proposition 1's bound inf_W over
    W x and ``features`` the bound over [x, z]; each records whether L(theta) <= it (certified)
    and its residual (0 at a local minimum). ``dims_ok`` is d_y <= min(d_x, d_z).
    """

    verdict: Verdict
    reason: str
    loss_value: float
    lower: float
    value: float
    gap: float
    tol: float
    shamir: FeatureBound
    features: FeatureBound
    gradient_norm: float
    relative_gradient: float
    residual: float  # scale-free residual of [x, z] and the difference quotients
    dual_residual: float
    first_order_bound: float
    kink_margin: float
    min_eigenvalue: float
    rank_W: int
    d_x: int
    d_y: int
    d_z: int
    dims_ok: bool
    dim_T: int
    dim_T_tilde: int
    num_directions: int
    eps: float
    converged: bool
    scope: str
    judged_by: str
    directions: dict
    seconds: dict = field(repr=False)
    check: SpanCheck = field(repr=False)
    basis: PerturbableBasis = field(repr=False)

    def to_dict(self) -> dict:
        d = {
            k: v for k, v in vars(self).items() if k not in ("check", "basis", "shamir", "features")
        }
        d["shamir"] = self.shamir.to_dict()
        d["features"] = self.features.to_dict()
        return jsonable(d)

    def __str__(self) -> str:
        skip = ("check", "basis", "seconds", "directions", "shamir", "features")
        rows = [(k, v) for k, v in vars(self).items() if k not in skip]
        rows += [
            ("Shamir bound inf_W (value)", self.shamir.value),
            ("L <= Shamir bound", self.shamir.meets),
            ("[x, z] bound (value)", self.features.value),
            ("L <= [x, z] bound", self.features.meets),
        ]
        return table("Theorem 3 (ResNet, eq. 4.1)", rows)


def theorem3(
    obj: Objective,
    theta: object,
    *,
    eps: float = 1e-2,
    S: PerturbationSet | None = None,
    kinds: Sequence[str] = KINDS,
    budget: int = 256,
    combinations: int = 16,
    rtol: float = 1e-8,
    grad_tol: float = 1e-6,
    rank_tol: float | None = None,
    cuts: Sequence[float] = DEFAULT_CUTS,
    check_minimum: bool = True,
    curvature_tol: float = 1e-8,
    seed: int = 0,
    strategy: str = "dense",
) -> Theorem3Result:
    """Check Theorem 3 (and Proposition 1's bound) at theta for a :class:`ResNet`.

    Verdicts as :func:`gradbasis.theorem2`, for the equality with the infimum over
    [x, z] (x) I plus the perturbable span; "does not apply" also when d_y > min(d_x, d_z) (the
    theorem's hypothesis; the numbers are still reported). tol = rtol * max(1, |L|).
    """
    obj = check_objective(obj)
    model = obj.model
    z = residual_features(model, theta, obj.X)
    theta = as_theta(theta, model.num_params)
    S = check_perturbation_set(S)
    rtol, grad_tol, rank_tol, cuts, curvature_tol = check_tolerances(
        rtol, grad_tol, rank_tol, cuts, curvature_tol
    )
    seed = check_seed(seed)
    finite_value_and_gradient(obj, theta)  # before any work: no verdict on an overflowing loss
    d_x, d_y, d_z = model.input_dim, model.output_dim, z.shape[1]
    feats = np.hstack([obj.X, z])
    dims_ok = d_y <= min(d_x, d_z)
    precondition = (
        None
        if dims_ok
        else f"Theorem 3 needs d_y <= min(d_x, d_z); here d_y = {d_y}, d_x = {d_x}, d_z = {d_z}"
    )
    pc = perturbed_check(
        obj,
        theta,
        eps=positive_step(eps if S is None else S.eps),
        S=S,
        direction_options=dict(kinds=kinds, budget=budget, combinations=combinations, seed=seed),
        rtol=rtol,
        grad_tol=grad_tol,
        rank_tol=rank_tol,
        cuts=cuts,
        check_minimum=check_minimum,
        curvature_tol=curvature_tol,
        strategy=strategy,
        features=feats,
        feature_meaning="the features [x, z(x; u)]",
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
    shamir = feature_bound(obj, theta, "shamir: W x", obj.X, check.loss_value, check.tol)
    features = feature_bound(
        obj, theta, "features: [x, z(x; u)]", feats, check.loss_value, check.tol
    )
    seconds["feature_bounds"] = time.perf_counter() - t0
    W = model.unflatten(theta)["W"]
    return Theorem3Result(
        verdict=verdict,
        reason=reason,
        loss_value=check.loss_value,
        lower=check.lower,
        value=check.value,
        gap=check.gap,
        tol=check.tol,
        shamir=shamir,
        features=features,
        gradient_norm=check.gradient_norm,
        relative_gradient=check.relative_gradient,
        residual=pc.residual,
        dual_residual=check.dual_residual,
        first_order_bound=check.first_order_bound,
        kink_margin=check.kink_margin,
        min_eigenvalue=lam,
        rank_W=int(np.linalg.matrix_rank(W)),
        d_x=d_x,
        d_y=d_y,
        d_z=d_z,
        dims_ok=dims_ok,
        dim_T=pb.dim_T,
        dim_T_tilde=pb.dim_T_tilde,
        num_directions=pb.num_directions,
        eps=pc.eps,
        converged=check.converged,
        scope=check.scope,
        judged_by=pc.judged_by,
        directions=pc.S.to_dict(),
        seconds=seconds,
        check=check,
        basis=pb,
    )
