"""Assumptions 1 and 2 and Lemma 2 of the paper, checked numerically at a point."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._options import check_seed, positive_int, positive_number
from ._validation import as_samples, as_theta
from .errors import InvalidArgumentError, NonFiniteError, ShapeError
from .losses import Loss
from .models.base import Model, check_model
from .objective import Objective, check_objective
from .verdict import Verdict, jsonable, table

__all__ = ["Assumption1Result", "Assumption2Result", "Lemma2Result", "assumption1", "assumption2", "lemma2"]


@dataclass(frozen=True)
class Assumption1Result:
    """Assumption 1: q -> l(q, y) is convex and differentiable for every y."""

    verdict: Verdict
    reason: str
    probes: int = 0
    min_hessian_eigenvalue: float = float("nan")
    max_midpoint_violation: float = float("nan")
    max_gradient_error: float = float("nan")

    def to_dict(self) -> dict:
        return jsonable(dict(vars(self)))

    def __str__(self) -> str:
        return table("Assumption 1 (convex, differentiable loss)", vars(self).items())


def assumption1(
    loss: object, *, output_dim: int = 3, targets: object | None = None, probes: int = 200, seed: int = 0, tol: float = 1e-8
) -> Assumption1Result:
    """Built-in losses hold by construction (squared, cross-entropy and smoothed hinge are convex and
    differentiable). Any other object with ``value(Q, Y)``, ``gradient(Q, Y)`` and optionally
    ``hessian(Q, Y)`` is probed at ``probes`` random points: Hessian eigenvalues >= -tol * scale,
    midpoint convexity l((a+b)/2) <= (l(a)+l(b))/2 + tol * scale, and the gradient against
    central differences (step 1e-6, relative error <= 1e-5). Probing can refute convexity, never
    prove it: a passing user loss gets ``holds`` with the reason saying it was probed.
    ``probes`` is a positive integer and ``tol`` (relative) a finite number > 0. A user loss
    that returns NaN or infinity at a probe raises NonFiniteError: nothing can be judged from it.
    """
    probes = positive_int(probes, "probes")
    tol = positive_number(tol, "tol")
    seed = check_seed(seed)
    if isinstance(loss, Loss):
        return Assumption1Result(Verdict.HOLDS, f"{loss.name} is convex and differentiable by construction")
    for attr in ("value", "gradient"):
        if not callable(getattr(loss, attr, None)):
            raise InvalidArgumentError(
                f"a user loss needs callable value(Q, Y) and gradient(Q, Y); {type(loss).__name__} lacks {attr}"
            )
    rng = np.random.default_rng(seed)
    Y = np.asarray(targets, dtype=float) if targets is not None else rng.normal(size=(probes, output_dim))
    if Y.ndim == 1:
        Y = Y.reshape(-1, 1)
    Y = Y[rng.integers(0, Y.shape[0], size=probes)]
    d = Y.shape[1]
    A = 3 * rng.normal(size=(probes, d))
    B = 3 * rng.normal(size=(probes, d))
    def value(Q: np.ndarray) -> np.ndarray:
        return _finite_probe(loss.value(Q, Y), "value", (probes,))

    la, lb, lm = value(A), value(B), value((A + B) / 2)
    scale = 1.0 + np.abs(np.r_[la, lb]).max()
    midpoint = float((lm - (la + lb) / 2).max() / scale)
    grad = _finite_probe(loss.gradient(A, Y), "gradient", (probes, d))
    fd = np.empty_like(grad)
    for k in range(d):
        e = np.zeros(d)
        e[k] = 1e-6
        fd[:, k] = (value(A + e) - value(A - e)) / 2e-6
    grad_error = float(np.abs(grad - fd).max() / (1.0 + np.abs(fd).max()))
    min_eig = float("nan")
    if callable(getattr(loss, "hessian", None)):
        H = _finite_probe(loss.hessian(A, Y), "hessian", (probes, d, d))
        min_eig = float(np.linalg.eigvalsh((H + H.transpose(0, 2, 1)) / 2).min() / (1.0 + np.abs(H).max()))
    problems = []
    if midpoint > tol:
        problems.append(f"midpoint convexity fails by {midpoint:.3g} (relative)")
    if not np.isnan(min_eig) and min_eig < -tol:
        problems.append(f"a Hessian eigenvalue is {min_eig:.3g} (relative)")
    if grad_error > 1e-5:
        problems.append(f"gradient differs from finite differences by {grad_error:.3g}")
    if problems:
        verdict, reason = Verdict.VIOLATED, "user loss is not convex/differentiable: " + "; ".join(problems)
    else:
        verdict, reason = Verdict.HOLDS, f"user loss probed at {probes} random points: no violation found"
    return Assumption1Result(verdict, reason, probes, min_eig, midpoint, grad_error)


def _finite_probe(out: object, method: str, shape: tuple[int, ...]) -> np.ndarray:
    """What a user loss's ``method`` returned at the probes, as float64 of ``shape``; NaN or
    infinity would make every comparison of the probe meaningless."""
    arr = np.asarray(out, dtype=float)
    if arr.size != int(np.prod(shape)):
        raise ShapeError(f"the user loss's {method}(Q, Y) returned shape {arr.shape} at {shape[0]} probes; expected {shape}")
    arr = arr.reshape(shape)
    if not np.isfinite(arr).all():
        count = int(np.sum(~np.isfinite(arr)))
        raise NonFiniteError(
            f"the user loss's {method}(Q, Y) returned {count} NaN/inf value(s) at the probes; "
            "a convexity check needs finite values"
        )
    return arr


@dataclass(frozen=True)
class Assumption2Result:
    """Assumption 2: f_X(theta) = J(theta) g(theta) for some g."""

    verdict: Verdict
    reason: str
    residual: float          # ||J g - f|| / max(||f||, tiny)
    tol: float
    g_source: str            # "model" (the model's own g) or "least squares"

    def to_dict(self) -> dict:
        return jsonable(dict(vars(self)))

    def __str__(self) -> str:
        return table("Assumption 2 (f_X = J g)", vars(self).items())


def assumption2(model: Model, theta: object, X: object, *, tol: float = 1e-10) -> Assumption2Result:
    """Check J g(theta) = f_X(theta) to relative ``tol`` with the model's g (the output-layer
    parameters); a model without one gets a least-squares g and the residual it leaves.
    ``tol`` is a finite number > 0."""
    model = check_model(model)
    tol = positive_number(tol, "tol")
    theta = as_theta(theta, model.num_params)
    X = as_samples(X, model.input_dim)
    f = model.forward(theta, X).ravel()
    J = model.jacobian(theta, X)
    try:
        g, source = model.homogeneity(theta), "model"
    except NotImplementedError:
        g, source = np.linalg.lstsq(J, f, rcond=None)[0], "least squares"
    residual = float(np.linalg.norm(J @ g - f) / max(np.linalg.norm(f), np.finfo(float).tiny))
    ok = residual <= tol
    reason = f"||J g - f|| / ||f|| = {residual:.3g} {'<=' if ok else '>'} {tol:g} (g from the {source})"
    return Assumption2Result(Verdict.HOLDS if ok else Verdict.VIOLATED, reason, residual, tol, source)


@dataclass(frozen=True)
class Lemma2Result:
    """Lemma 2: sum_i lambda_i dl/dq (f(x_i)) d_k f(x_i) = d_k L(theta) for every k."""

    verdict: Verdict
    reason: str
    relative_error: float     # ||J^T u - grad L|| / max(||grad L||, ||J^T|| ||u|| scale)
    gradient_norm: float      # ||grad L||: how close the identity's common value is to 0
    tol: float

    def to_dict(self) -> dict:
        return jsonable(dict(vars(self)))

    def __str__(self) -> str:
        return table("Lemma 2 (J^T u = grad L)", vars(self).items())


def lemma2(obj: Objective, theta: object, *, tol: float = 1e-10) -> Lemma2Result:
    """J^T u with u_i = lambda_i grad l(f(x_i)) (a VJP) against the objective's gradient (its own
    reverse sweep). Both are exact, so they agree to rounding: ``tol`` (> 0) relative to ||J^T u||."""
    obj = check_objective(obj)
    tol = positive_number(tol, "tol")
    theta = as_theta(theta, obj.model.num_params)
    u = obj.residual_duals(theta)
    lhs = obj.model.vjp(theta, obj.X, u)
    grad = obj.gradient(theta)
    scale = max(np.linalg.norm(lhs), np.linalg.norm(grad), np.abs(u).sum() * 1e-3, np.finfo(float).tiny)
    err = float(np.linalg.norm(lhs - grad) / scale)
    ok = err <= tol
    reason = f"relative difference {err:.3g} {'<=' if ok else '>'} {tol:g}; ||grad L|| = {np.linalg.norm(grad):.3g}"
    return Lemma2Result(Verdict.HOLDS if ok else Verdict.VIOLATED, reason, err, float(np.linalg.norm(grad)), tol)
