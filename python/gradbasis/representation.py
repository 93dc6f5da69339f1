"""Example 3: the best linear model on the learned representations bounds L at critical points."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._numerics import safe_norm
from ._options import open_unit_interval, positive_number
from ._validation import as_theta
from .induced import InducedResult, induced_minimum
from .objective import Objective, check_objective, finite_value_and_gradient
from .verdict import Verdict, jsonable, table

__all__ = ["RepresentationBound", "representation_bound"]


@dataclass(frozen=True)
class RepresentationBound:
    """L(theta) against inf over linear models on the features feeding the output.

    For a ``SkipMLP`` the features are h^(l)(x) for every l in ``skip_from`` (the last hidden
    layer always included) plus the output bias; for an ``MLP`` the last hidden layer; for a
    ``ResNet`` the vector x + R z(x; u) feeding W. These are exactly the Jacobian columns of the
    output-layer parameters, so their span lies inside span(J) and Theorem 1 gives
    L(theta) <= this bound at every differentiable critical point (Example 3).
    """

    verdict: Verdict
    reason: str
    loss_value: float
    bound_value: float        # upper end of the certified interval of the linear-model infimum
    bound_lower: float
    num_features: int         # columns of the feature basis
    rank: int
    tol: float
    induced: InducedResult

    def to_dict(self) -> dict:
        return jsonable({k: v for k, v in vars(self).items() if k != "induced"})

    def __str__(self) -> str:
        return table("Example 3 (learned-representation bound)", [(k, v) for k, v in vars(self).items() if k != "induced"])


def output_block_mask(model) -> np.ndarray:
    """True on the parameters f is linear in (where g(theta) = theta): the output layer."""
    return model.homogeneity(np.ones(model.num_params)) != 0


def representation_bound(obj: Objective, theta: object, *, rtol: float = 1e-8, grad_tol: float = 1e-6) -> RepresentationBound:
    """Check L(theta) <= inf over linear models on the learned representations.

    The features are the Jacobian columns of the output-layer parameters. Verdicts, with
    tol = rtol * max(1, |L|):
      * holds — L(theta) <= bound_value + tol;
      * consistent — ||grad L|| <= grad_tol and the excess is within the first-order bound
        ||grad_out L|| * ||alpha* - theta_out|| (the output layer is only nearly optimal);
      * does not apply — not a critical point;
      * violated — a critical point whose excess no bound explains.

    ``rtol`` lies in (0, 1), ``grad_tol`` > 0. Where L(theta) or its gradient overflow float64
    no verdict is given: NonFiniteError says so.
    """
    obj = check_objective(obj)
    theta = as_theta(theta, obj.model.num_params)
    rtol = open_unit_interval(rtol, "rtol")
    grad_tol = positive_number(grad_tol, "grad_tol")
    mask = output_block_mask(obj.model)
    L, grad, gnorm = finite_value_and_gradient(obj, theta)
    basis = obj.model.jacobian(theta, obj.X)[:, mask]
    res = induced_minimum(basis, obj.loss, obj.Y, obj.weights)
    tol = rtol * max(1.0, abs(L))
    excess = L - res.value
    dist = safe_norm(res.alpha - theta[mask])
    first_order = safe_norm(grad[mask]) * dist if dist > 0.0 else 0.0
    if excess <= tol:
        verdict, reason = Verdict.HOLDS, f"L(theta) <= linear-model infimum (<= {res.value:.6g}) within {tol:.3g}"
    elif gnorm > grad_tol:
        verdict, reason = Verdict.DOES_NOT_APPLY, f"not a critical point (||grad L|| = {gnorm:.3g})"
    elif excess <= first_order + tol:
        verdict, reason = Verdict.CONSISTENT, (
            f"L(theta) exceeds the linear-model value by {excess:.3g}, within the first-order bound {first_order:.3g}"
        )
    else:
        verdict, reason = Verdict.VIOLATED, f"L(theta) exceeds the linear-model infimum by {excess:.3g} at a critical point"
    return RepresentationBound(verdict, reason, L, res.value, res.lower, basis.shape[1], res.rank, tol, res)
