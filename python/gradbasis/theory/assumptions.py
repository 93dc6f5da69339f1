"""Assumptions 1 and 2 and Lemma 2 of the paper, checked numerically at a point."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from .._options import check_seed, nonnegative_int, positive_int, positive_number
from .._validation import as_samples, as_theta
from ..errors import InvalidArgumentError, MemoryBudgetError, NonFiniteError, ShapeError
from ..losses import Loss
from ..models.base import Model, check_model
from ..objective import Objective, check_objective
from ..verdict import Verdict, jsonable, table
from .perturbation import activation_region, kinked_sources, regions_equal

__all__ = [
    "Assumption1Result",
    "Assumption2Result",
    "Lemma2Result",
    "assumption1",
    "assumption2",
    "lemma2",
]


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
        return cast(dict, jsonable(dict(vars(self))))

    def __str__(self) -> str:
        return table("Assumption 1 (convex, differentiable loss)", vars(self).items())


def assumption1(
    loss: object,
    *,
    output_dim: int = 3,
    targets: object | None = None,
    probes: int = 200,
    seed: int = 0,
    tol: float = 1e-8,
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
    rng_seed = check_seed(seed)
    if isinstance(loss, Loss):
        return Assumption1Result(
            Verdict.HOLDS, f"{loss.name} is convex and differentiable by construction"
        )
    for attr in ("value", "gradient"):
        if not callable(getattr(loss, attr, None)):
            raise InvalidArgumentError(
                f"a user loss needs callable value(Q, Y) and gradient(Q, Y); {type(loss).__name__} lacks {attr}"
            )
    user: Any = loss  # any object with the methods checked above
    rng = np.random.default_rng(rng_seed)
    Y = (
        np.asarray(targets, dtype=float)
        if targets is not None
        else rng.normal(size=(probes, output_dim))
    )
    if Y.ndim == 1:
        Y = Y.reshape(-1, 1)
    Y = Y[rng.integers(0, Y.shape[0], size=probes)]
    d = Y.shape[1]
    A = 3 * rng.normal(size=(probes, d))
    B = 3 * rng.normal(size=(probes, d))

    def value(Q: np.ndarray) -> np.ndarray:
        return _finite_probe(user.value(Q, Y), "value", (probes,))

    la, lb, lm = value(A), value(B), value((A + B) / 2)
    scale = 1.0 + np.abs(np.r_[la, lb]).max()
    midpoint = float((lm - (la + lb) / 2).max() / scale)
    grad = _finite_probe(user.gradient(A, Y), "gradient", (probes, d))
    fd = np.empty_like(grad)
    for k in range(d):
        e = np.zeros(d)
        e[k] = 1e-6
        fd[:, k] = (value(A + e) - value(A - e)) / 2e-6
    grad_error = float(np.abs(grad - fd).max() / (1.0 + np.abs(fd).max()))
    min_eig = float("nan")
    if callable(getattr(user, "hessian", None)):
        H = _finite_probe(user.hessian(A, Y), "hessian", (probes, d, d))
        min_eig = float(
            np.linalg.eigvalsh((H + H.transpose(0, 2, 1)) / 2).min() / (1.0 + np.abs(H).max())
        )
    problems = []
    if midpoint > tol:
        problems.append(f"midpoint convexity fails by {midpoint:.3g} (relative)")
    if not np.isnan(min_eig) and min_eig < -tol:
        problems.append(f"a Hessian eigenvalue is {min_eig:.3g} (relative)")
    if grad_error > 1e-5:
        problems.append(f"gradient differs from finite differences by {grad_error:.3g}")
    if problems:
        verdict, reason = (
            Verdict.VIOLATED,
            "user loss is not convex/differentiable: " + "; ".join(problems),
        )
    else:
        verdict, reason = (
            Verdict.HOLDS,
            f"user loss probed at {probes} random points: no violation found",
        )
    return Assumption1Result(verdict, reason, probes, min_eig, midpoint, grad_error)


def _finite_probe(out: object, method: str, shape: tuple[int, ...]) -> np.ndarray:
    """What a user loss's ``method`` returned at the probes, as float64 of ``shape``; NaN or
    infinity would make every comparison of the probe meaningless."""
    arr = np.asarray(out, dtype=float)
    if arr.size != int(np.prod(shape)):
        raise ShapeError(
            f"the user loss's {method}(Q, Y) returned shape {arr.shape} at {shape[0]} probes; expected {shape}"
        )
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
    residual: float  # ||J g - f|| / max(||f||, tiny)
    tol: float
    g_source: str  # "model" (the model's own g) or "least squares"

    def to_dict(self) -> dict:
        return cast(dict, jsonable(dict(vars(self))))

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
    reason = (
        f"||J g - f|| / ||f|| = {residual:.3g} {'<=' if ok else '>'} {tol:g} (g from the {source})"
    )
    return Assumption2Result(
        Verdict.HOLDS if ok else Verdict.VIOLATED, reason, residual, tol, source
    )


@dataclass(frozen=True)
class Lemma2Result:
    """Lemma 2: sum_i lambda_i dl/dq (f(x_i)) d_k f(x_i) = d_k L(theta) for every k.

    J^T u (u_i = lambda_i grad l(f(x_i; theta)), one reverse sweep ``model.vjp``) is compared
    with paths that share no derivative code with it; every error is relative to ``scale`` =
    ||J||_F ||u||, the size of the terms summed (a rounding-level scale that does not vanish at
    a critical point, where J^T u itself is ~0):

    * ``relative_error``: against the objective's gradient (its own reverse sweep with the loss);
    * ``jacobian_error``: against the dense Jacobian transposed times u (``jacobian_path``
      "dense"), or, where J does not fit in memory, u^T (J z) by forward mode against
      (J^T u)^T z for the probe directions z ("jvp");
    * ``fd_error``: max over ``probes`` seeded random unit directions d of |D - g^T d| with D
      the Richardson extrapolation of central differences of L at steps h = ``fd_step`` and
      h / 2, and g both J^T u and the objective's gradient. ``fd_tol`` (same scale) is the
      largest allowance: 10 |D(h) - D(h/2)| (the truncation error of D(h/2), which bounds that
      of D) plus 300 eps_mach (|L| + depth sum_i |u_i|^T |f(x_i)|) / h (rounding of L, a hundred
      times, amplified 3 / h by the extrapolation). Directions along which theta +- h d leaves
      theta's activation region are skipped (``probes`` counts those used).

    ``gradient_norm`` is ||grad L||: how close the identity's common value is to 0.
    """

    verdict: Verdict
    reason: str
    relative_error: float  # ||J^T u - grad L|| / scale
    gradient_norm: float
    tol: float
    jacobian_error: float = float("nan")
    fd_error: float = float("nan")
    fd_tol: float = float("nan")
    scale: float = float("nan")
    probes: int = 0
    fd_step: float = float("nan")
    jacobian_path: str = "dense"

    def to_dict(self) -> dict:
        return cast(dict, jsonable(dict(vars(self))))

    def __str__(self) -> str:
        return table("Lemma 2 (J^T u = grad L)", vars(self).items())


def lemma2(
    obj: Objective, theta: object, *, tol: float = 1e-10, probes: int = 4, seed: int = 0
) -> Lemma2Result:
    """Lemma 2 at theta: J^T u (a VJP) against the objective's gradient, the dense Jacobian and
    central finite differences of L (see :class:`Lemma2Result`). "holds" when
    ``relative_error`` and ``jacobian_error`` are <= ``tol`` (> 0; the exact sums agree to about
    sqrt(m d_y) eps_mach scale, and at most m d_y eps_mach scale) and every probe's difference
    is within its allowance; "violated" otherwise: the model's derivatives, the objective's
    gradient or the loss are broken. ``probes`` (>= 0) seeded random unit directions
    (``seed``) are used for the finite differences."""
    obj = check_objective(obj)
    tol = positive_number(tol, "tol")
    probes = nonnegative_int(probes, "probes")
    rng_seed = check_seed(seed)
    model = obj.model
    theta = as_theta(theta, model.num_params)
    rng = np.random.default_rng(rng_seed)
    eps = float(np.finfo(float).eps)
    u = obj.residual_duals(theta)
    g = model.vjp(theta, obj.X, u)
    grad = obj.gradient(theta)
    u_norm = float(np.linalg.norm(u))
    dirs = rng.normal(size=(probes, model.num_params))
    dirs /= np.maximum(np.linalg.norm(dirs, axis=1, keepdims=True), np.finfo(float).tiny)
    try:
        J = model.jacobian(theta, obj.X)
    except MemoryBudgetError:
        J, path = None, "jvp"
    else:
        path = "dense"
    if J is not None:
        j_fro = float(np.linalg.norm(J))
        scale = max(j_fro * u_norm, np.finfo(float).tiny)
        jac_err = float(np.linalg.norm(g - J.T @ u.reshape(-1)) / scale)
    else:  # forward mode: u^T (J z) = (J^T u)^T z; E ||J z||^2 = ||J||_F^2 / P for unit z
        Jz = [model.jvp(theta, obj.X, z) for z in dirs]
        j_fro = (
            float(np.sqrt(model.num_params * np.mean([np.sum(a * a) for a in Jz]))) if Jz else 0.0
        )
        scale = max(j_fro * u_norm, np.finfo(float).tiny)
        jac_err = max(
            (
                abs(float(np.sum(u * a)) - float(g @ z)) / scale
                for a, z in zip(Jz, dirs, strict=False)
            ),
            default=0.0,
        )
    rel_err = float(np.linalg.norm(g - grad) / scale)

    # Central differences of L with Richardson extrapolation over h and h / 2.
    h = eps ** (1.0 / 3.0) * max(1.0, float(np.linalg.norm(theta)))
    L0 = obj.value(theta)
    f = model.forward(theta, obj.X)
    rounding = eps * (abs(L0) + model.depth * float(np.sum(np.abs(u) * np.abs(f))))
    region = _region_of(model, obj.X)
    region0 = region(theta)
    fd_err, fd_allow, used, fd_ok = 0.0, 0.0, 0, True
    for d in dirs:
        if region0 and not all(
            regions_equal(region0, region(theta + t * d)) for t in (h, -h, h / 2, -h / 2)
        ):
            continue
        D1 = (obj.value(theta + h * d) - obj.value(theta - h * d)) / (2 * h)
        D2 = (obj.value(theta + h / 2 * d) - obj.value(theta - h / 2 * d)) / h
        R = (4 * D2 - D1) / 3
        allow = 10 * abs(D1 - D2) + 300 * rounding / h
        miss = max(abs(R - float(g @ d)), abs(R - float(grad @ d)))
        fd_ok &= miss <= allow + tol * scale
        fd_err = max(fd_err, miss / scale)
        fd_allow = max(fd_allow, allow / scale + tol)
        used += 1
    problems = []
    if not rel_err <= tol:
        problems.append(f"J^T u differs from the objective's gradient by {rel_err:.3g} > {tol:g}")
    if not jac_err <= tol:
        problems.append(f"J^T u differs from the {path} Jacobian's by {jac_err:.3g} > {tol:g}")
    if not fd_ok:
        problems.append(
            f"finite differences of L differ from J^T u by {fd_err:.3g} > {fd_allow:.3g}"
        )
    gnorm = float(np.linalg.norm(grad))
    errors = (
        f"relative to ||J||_F ||u|| = {scale:.3g}: objective gradient {rel_err:.3g}, {path} Jacobian {jac_err:.3g}, "
        + (
            f"finite differences {fd_err:.3g} (allowed {fd_allow:.3g}, {used} directions)"
            if used
            else "finite differences not evaluated (no probe direction stays in theta's activation region)"
        )
    )
    if problems:
        verdict, reason = Verdict.VIOLATED, "Lemma 2 fails: " + "; ".join(problems) + f" ({errors})"
    else:
        verdict, reason = (
            Verdict.HOLDS,
            f"J^T u = grad L within tolerance; {errors}; ||grad L|| = {gnorm:.3g}",
        )
    return Lemma2Result(
        verdict,
        reason,
        rel_err,
        gnorm,
        tol,
        jacobian_error=jac_err,
        fd_error=fd_err if used else float("nan"),
        fd_tol=fd_allow if used else float("nan"),
        scale=scale,
        probes=used,
        fd_step=h,
        jacobian_path=path,
    )


def _region_of(model: Model, X: np.ndarray):
    """theta -> its activation region on X (an empty list for a model without kinks)."""
    if not model.runs_in_core:
        return lambda t: model.activation_pattern(t, X)  # type: ignore[attr-defined]
    sources = kinked_sources(model)
    return lambda t: activation_region(model, t, X, sources) if sources else []
