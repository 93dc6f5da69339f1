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
from dataclasses import dataclass
from typing import cast

import numpy as np

from .._validation import as_theta
from ..errors import InvalidArgumentError
from ..models.resnet import ResNet
from ..objective import Objective, check_objective
from ..verdict import jsonable, table
from ._perturbed import PerturbedOptions, PerturbedResult, listed_after, perturbed_check
from .perturbation import PerturbationSet
from .span_check import FeatureBound, feature_bound

__all__ = ["Theorem3Result", "check_resnet", "residual_features", "theorem3"]


def check_resnet(model: object) -> ResNet:
    """``model`` itself when it is the ResNet of eq. 4.1, else InvalidArgumentError."""
    if not isinstance(model, ResNet):
        raise InvalidArgumentError(
            f"Theorem 3 is about the ResNet of eq. 4.1 (gradbasis.ResNet); got {type(model).__name__}"
        )
    return model


def residual_features(model: ResNet, theta: object, X: object) -> np.ndarray:
    """z(x_i; u) for every sample, shape (m, d_z): the input of the R layer."""
    R = next(l for l in check_resnet(model).dense_layers() if l.weight.name == "R")
    return model.node_values(theta, X, R.input_node)


@dataclass(frozen=True, repr=False)
class Theorem3Result(PerturbedResult):
    """Theorem 3 at one point (the fields every theorem of the perturbable basis reports:
    :class:`PerturbedResult`).

    ``lower``/``value`` certify inf over [x, z(x; u)] (x) I_{d_y} plus the perturbable span;
    the verdict says whether L(theta) equals it. ``shamir`` is Proposition 1's bound inf_W over
    W x and ``features`` the bound over [x, z]; each records whether L(theta) <= it (certified)
    and its residual (0 at a local minimum). ``residual`` is the scale-free residual of [x, z]
    and the difference quotients. ``dims_ok`` is d_y <= min(d_x, d_z).
    """

    shamir: FeatureBound = listed_after("tol")
    features: FeatureBound = listed_after("tol")
    residual: float = listed_after("relative_gradient")
    rank_W: int = listed_after("min_eigenvalue")
    d_x: int = listed_after("min_eigenvalue")
    d_y: int = listed_after("min_eigenvalue")
    d_z: int = listed_after("min_eigenvalue")
    dims_ok: bool = listed_after("min_eigenvalue")

    def to_dict(self) -> dict:
        d = self.listed("check", "basis", "shamir", "features")
        d["shamir"] = self.shamir.to_dict()
        d["features"] = self.features.to_dict()
        return cast(dict, jsonable(d))

    def __str__(self) -> str:
        skip = ("check", "basis", "seconds", "directions", "shamir", "features")
        rows = list(self.listed(*skip).items())
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
    eps: float = PerturbedOptions.eps,
    S: PerturbationSet | None = PerturbedOptions.S,
    kinds: Sequence[str] = PerturbedOptions.kinds,
    budget: int = PerturbedOptions.budget,
    combinations: int = PerturbedOptions.combinations,
    rtol: float = PerturbedOptions.rtol,
    grad_tol: float = PerturbedOptions.grad_tol,
    rank_tol: float | None = PerturbedOptions.rank_tol,
    cuts: Sequence[float] = PerturbedOptions.cuts,
    check_minimum: bool = PerturbedOptions.check_minimum,
    curvature_tol: float = PerturbedOptions.curvature_tol,
    seed: int = PerturbedOptions.seed,
    strategy: str = PerturbedOptions.strategy,
) -> Theorem3Result:
    """Check Theorem 3 (and Proposition 1's bound) at theta for a :class:`ResNet`.

    Verdicts as :func:`gradbasis.theorem2`, for the equality with the infimum over
    [x, z] (x) I plus the perturbable span; "does not apply" also when d_y > min(d_x, d_z) (the
    theorem's hypothesis; the numbers are still reported). tol = rtol * max(1, |L|).
    """
    obj = check_objective(obj)
    model = check_resnet(obj.model)
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
    )
    z = residual_features(model, theta, obj.X)
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
        options,
        features=feats,
        feature_meaning="the features [x, z(x; u)]",
        precondition=precondition,
    )
    L, tol = pc.check.loss_value, pc.check.tol
    t0 = time.perf_counter()
    shamir = feature_bound(obj, theta, "shamir: W x", obj.X, L, tol)
    features = feature_bound(obj, theta, "features: [x, z(x; u)]", feats, L, tol)
    pc.seconds["feature_bounds"] = time.perf_counter() - t0
    return Theorem3Result(
        **pc.result_fields(),
        shamir=shamir,
        features=features,
        residual=pc.residual,
        rank_W=int(np.linalg.matrix_rank(model.unflatten(theta)["W"])),
        d_x=d_x,
        d_y=d_y,
        d_z=d_z,
        dims_ok=dims_ok,
    )
