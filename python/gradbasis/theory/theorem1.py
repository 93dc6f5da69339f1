"""Theorem 1: at a differentiable critical point, L(theta) equals the infimum of the
gradient basis model, inf_a sum_i lambda_i l((J(theta) a)_i, y_i)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import cast

import numpy as np

from .._memory import budget_bytes
from .._numerics import safe_norm
from .._options import Strategy, check_strategy, check_tolerances
from .._progress import progress_bar
from .._validation import as_float_array, as_theta, check_finite
from ..errors import ShapeError
from ..objective import Objective, check_objective, finite_value_and_gradient
from ..solve.induced import DEFAULT_CUTS, InducedResult, induced_minimum
from ..solve.resolved_span import resolved_span_minimum
from ..solve.strategies import choose_strategy, gradient_basis_minimum, memory_estimate
from ..verdict import Verdict, jsonable, table
from .certificate import Evidence, judge, stationarity

__all__ = ["Theorem1Result", "basis_consistency", "theorem1"]

#: Relative Lemma 2 / Assumption 2 residual above which a Jacobian does not match the model.
BASIS_TOL = 1e-8


@dataclass(frozen=True)
class Theorem1Result:
    """Theorem 1 at one point: L(theta) against the certified interval [lower, value] of the
    gradient basis model's infimum over the numerical span of J (``scope`` says exactly which
    span the interval covers), with the verdict of :func:`gradbasis.theory.certificate.judge`.

    ``tol`` is the absolute tolerance used (``rtol * max(1, |L|)``). ``relative_gradient`` is the
    scale-free criticality measure of :func:`gradbasis.theory.certificate.stationarity` (the most one
    parameter alone could still gain, relative to max(1, |L|)) compared with ``grad_tol``.
    ``first_order_bound`` is <u, f_X(theta) - F*> (<= ||grad L|| ||alpha* - g(theta)||): by
    convexity L(theta) - Phi(F*) can never exceed it. ``resolution`` and ``resolved_gap`` are a
    diagnostic of a gap above tol: singular values below ``resolution`` are directions a gradient
    of this size does not resolve, and ``resolved_gap`` is the part of the gap over the others.
    ``judged_by`` is the strategy whose span the verdict was judged on (``strategy`` ran first).
    ``lemma2_residual`` and ``assumption2_residual`` are checks of the Jacobian used (nan where
    no dense J was formed).
    """

    verdict: Verdict
    reason: str
    loss_value: float
    lower: float
    value: float
    gap: float  # L(theta) - lower
    gradient_norm: float
    relative_gradient: float  # scale-free: see gradbasis.theory.certificate.stationarity
    alpha_distance: float  # ||alpha* - g(theta)||
    first_order_bound: float
    kink_margin: float
    rank: int
    rank_tol: float
    num_params: int
    num_outputs: int  # m * d_y
    attained: bool
    converged: bool
    tol: float
    grad_tol: float
    resolution: float
    resolved_gap: float | None  # None where no gap above tol needed splitting
    scope: str
    full_rank: int  # rank of the span judged
    strategy: Strategy  # dense, gram or matrix_free (see gradbasis.strategies)
    judged_by: Strategy
    lemma2_residual: float
    assumption2_residual: float
    profile: tuple = field(repr=False)
    seconds: dict = field(repr=False)
    induced: InducedResult = field(repr=False)

    def to_dict(self) -> dict:
        d = {k: v for k, v in vars(self).items() if k not in ("induced", "profile")}
        d["profile"] = [vars(p) for p in self.profile]
        return cast(dict, jsonable(d))

    def save_report(self, directory: str | os.PathLike, *, point=None, setting=None) -> dict:
        """report.json, a one-page report.html and report.md with SVG charts in ``directory``
        (:func:`gradbasis.report.write_report`; ``point`` adds the Hessian extremes)."""
        from ..report import write_report

        return write_report(directory, self, point=point, setting=setting)

    def __str__(self) -> str:
        rows = [
            ("verdict", str(self.verdict)),
            ("reason", self.reason),
            ("L(theta)", self.loss_value),
            ("induced infimum >=", self.lower),
            ("induced infimum <=", self.value),
            ("gap L - lower", self.gap),
            ("tolerance", self.tol),
            ("over", self.scope),
            ("||grad L||", self.gradient_norm),
            ("largest one-parameter gain (relative)", self.relative_gradient),
            ("first-order bound", self.first_order_bound),
            ("kink margin", self.kink_margin),
            (
                "rank J (of m*d_y x dtheta)",
                f"{self.rank} of {self.num_outputs} x {self.num_params}",
            ),
            ("relative rank cut", self.rank_tol),
            ("solve converged", self.converged),
            ("infimum attained", self.attained),
            ("strategy (judged by)", f"{self.strategy} ({self.judged_by})"),
        ]
        if self.resolved_gap is not None:
            rows.insert(
                9,
                (
                    "gap over sigma > resolution",
                    f"{self.resolved_gap:.3g} (resolution sigma = {self.resolution:.3g})",
                ),
            )
        text = table("Theorem 1 (gradient basis model)", rows)
        prof = [f"  {'cut':>9}  {'rank':>6}  {'value':>20}  {'lower':>20}"]
        prof += [
            f"  {p.cut:9.1e}  {p.rank:6d}  {p.value:20.12g}  {p.lower:20.12g}" for p in self.profile
        ]
        return text + "\nprofile over the relative singular-value cut:\n" + "\n".join(prof)


def gradient_resolution(
    obj: Objective, theta: np.ndarray, gradient_norm: float, tol: float
) -> float:
    """Smallest singular value of J along which a gradient of this size bounds the drop by tol:
    a diagnostic that splits a gap above tol (``resolved_gap``), never the span a verdict uses.

    Along a unit output direction v_j with singular value sigma_j the residual dual u has
    component at most ||grad L|| / sigma_j, so moving there can lower Phi by up to about
    (||grad L|| / sigma_j)^2 / (2 h), h the typical curvature of Phi per output coordinate.
    Keeping that below tol needs sigma_j >= ||grad L|| / sqrt(2 h tol). At an exact critical
    point this is 0.
    """
    if gradient_norm == 0.0:
        return 0.0
    f = obj.model.forward(theta, obj.X)
    H = obj.loss.hessian(f, obj.Y)
    curvature = float(np.mean(obj.weights * np.trace(H, axis1=1, axis2=2) / H.shape[1]))
    curvature = max(curvature, np.finfo(float).tiny)
    return gradient_norm / np.sqrt(2.0 * curvature * tol)


#: A Jacobian up to this size is formed for the Gram strategy's products with J (GEMMs on it
#: are far cheaper than one sweep of the network per vector) and for stationarity.
SMALL_JACOBIAN_BYTES = 512 * 2**20


def _small_jacobian(obj: Objective, memory_budget: int | None) -> bool:
    size = 8 * obj.num_samples * obj.model.output_dim * obj.model.num_params
    limit = (
        SMALL_JACOBIAN_BYTES
        if memory_budget is None
        else min(SMALL_JACOBIAN_BYTES, memory_budget // 4)
    )
    return size <= limit


def _checked_jacobian(jacobian: object, obj: Objective) -> np.ndarray:
    """A precomputed J(theta): float64, (m*d_y, num_params), finite."""
    J = as_float_array(jacobian, "jacobian")
    shape = (obj.num_samples * obj.model.output_dim, obj.model.num_params)
    if J.shape != shape:
        raise ShapeError(
            f"jacobian has shape {J.shape}; J(theta) is (m*d_y, num_params) = {shape}, rows ordered "
            "i*d_y + k as model.jacobian gives them"
        )
    check_finite(J, "jacobian")
    return J


def basis_consistency(
    J: np.ndarray,
    grad: np.ndarray,
    u: np.ndarray,
    f: np.ndarray,
    g: np.ndarray,
    tol: float = BASIS_TOL,
) -> tuple[float, float, str | None]:
    """(Lemma 2 residual, Assumption 2 residual, what failed or None) of a Jacobian J against
    the model: ||J^T u - grad L|| / (||J||_F ||u||) and ||J g - f_X|| / (||J||_F ||g|| + ||f_X||).
    Both are rounding (about n eps) for a right J; ``tol`` (default 1e-8) leaves orders of
    magnitude for any float64 build while a J that misses any real part fails by far."""
    jn = safe_norm(J)
    with np.errstate(over="ignore", invalid="ignore"):
        r2 = safe_norm(J.T @ u - grad) / max(jn * safe_norm(u), np.finfo(float).tiny)
        a2 = safe_norm(J @ g - f) / max(jn * safe_norm(g) + safe_norm(f), np.finfo(float).tiny)
    failed = []
    if not r2 <= tol:
        failed.append(
            f"Lemma 2 fails on the Jacobian used: ||J^T u - grad L|| / (||J|| ||u||) = {r2:.3g} > {tol:g}"
        )
    if not a2 <= tol:
        failed.append(
            f"Assumption 2 fails on the Jacobian used: ||J g - f_X|| / (||J|| ||g|| + ||f_X||) = {a2:.3g} > {tol:g}"
        )
    return float(r2), float(a2), "; ".join(failed) or None


def _induced_by_strategy(
    obj: Objective,
    theta: np.ndarray,
    chosen: Strategy,
    J: np.ndarray | None,
    f: np.ndarray,
    memory_budget: int | None,
    rank_tol: float | None,
    cuts: Sequence[float],
    tol: float,
) -> tuple[InducedResult, bool, str, tuple[np.ndarray, np.ndarray] | None]:
    """The gradient basis model by the chosen strategy (checked inputs; J given for "dense"):
    the result, whether it covers the numerical span, why not, and the output basis (U, sigma)
    the Gram path found (None otherwise)."""
    model = obj.model
    if chosen == Strategy.DENSE:
        assert J is not None  # built (or given) by the caller for the dense strategy
        full = induced_minimum(
            J,
            obj.loss,
            obj.Y,
            obj.weights,
            rank_tol=rank_tol,
            cuts=cuts,
            start=f,
            n_threads=obj.n_threads or None,
        )
        return full, True, "", None
    if chosen == Strategy.GRAM:
        full, resolution = resolved_span_minimum(
            model,
            theta,
            obj.X,
            obj.loss,
            obj.Y,
            obj.weights,
            rank_tol=rank_tol,
            cuts=cuts,
            start=f,
            jacobian=J,
            memory_budget=memory_budget,
            n_threads=obj.n_threads or None,
        )
        unresolved = (
            f"the part of J left out of the span is bounded only by {resolution.left_out_bound:.2g} "
            f"sigma_max, above the rank cut {resolution.extension_cut:.2g} "
            f"({resolution.extension_rank} directions found beyond K's factor, the most allowed)"
        )
        if resolution.resolved and resolution.gain_along_jacobian > 0.01 * tol:
            unresolved = (
                f"the Gram-based span is tilted by K's rounding: the answer can still drop by "
                f"{resolution.gain_along_jacobian:.2g} along J's own directions (> tol / 100)"
            )
            return full, False, unresolved, None
        return full, resolution.resolved, unresolved, None
    full = gradient_basis_minimum(obj, theta, strategy="matrix_free", memory_budget=memory_budget)
    radius = full.details.get("radius", float("nan"))
    unresolved = (
        "the matrix-free bound covers only coefficients with ||alpha|| <= the radius of its optimum"
    )
    full = replace(full, scope=f"coefficients alpha with ||alpha|| <= {radius:.3g} (matrix-free)")
    return full, False, unresolved, None


def _dense_judgement(
    obj: Objective,
    theta: np.ndarray,
    f: np.ndarray,
    memory_budget: int | None,
    rank_tol: float | None,
    cuts: Sequence[float],
) -> tuple[np.ndarray, InducedResult]:
    """J and the induced model over its numerical span (checked inputs)."""
    J = obj.model.jacobian(
        theta, obj.X, memory_budget=memory_budget, n_threads=obj.n_threads or None
    )
    full = induced_minimum(
        J,
        obj.loss,
        obj.Y,
        obj.weights,
        rank_tol=rank_tol,
        cuts=cuts,
        start=f,
        n_threads=obj.n_threads or None,
    )
    return J, full


def _resolved_gap(
    obj: Objective,
    f: np.ndarray,
    J: np.ndarray | None,
    output_basis: tuple[np.ndarray, np.ndarray] | None,
    resolution: float,
    loss_value: float,
    gap: float,
) -> float | None:
    """L(theta) minus the lower end over the singular directions above ``resolution`` (the
    directions the gradient resolves) plus f_X(theta): how much of ``gap`` lies along them.
    ``gap`` itself when every direction is resolved, None when none is."""
    if output_basis is not None:
        U, s = output_basis
    elif J is not None:
        U, s = np.linalg.svd(J, full_matrices=False)[:2]
    else:
        return None  # judged without a spectrum (the Gram path): no split by singular value
    keep = s > resolution
    if keep.all():
        return gap
    if not keep.any():
        return None
    part = induced_minimum(
        np.hstack([U[:, keep] * s[keep], f.reshape(-1, 1)]),
        obj.loss,
        obj.Y,
        obj.weights,
        cuts=(),
        start=f,
        n_threads=obj.n_threads or None,
    )
    return loss_value - part.lower


def theorem1(
    obj: Objective,
    theta: object,
    *,
    rtol: float = 1e-8,
    grad_tol: float = 1e-6,
    rank_tol: float | None = None,
    cuts: Sequence[float] = DEFAULT_CUTS,
    jacobian: np.ndarray | None = None,
    strategy: str = "dense",
    memory_budget: int | None = None,
) -> Theorem1Result:
    """Check Theorem 1 at theta with two-sided certificates.

    The verdict is :func:`gradbasis.theory.certificate.judge`'s, on the gradient basis model over the
    *numerical span* of J (singular directions with sigma > ``rank_tol`` * sigma_max, default
    max(m d_y, num_params) * eps, as numpy's matrix_rank):

    * violated — the Jacobian used fails Lemma 2 or Assumption 2 (checked on a given
      ``jacobian`` and on the dense J), or the certified interval contradicts convexity;
    * does not apply — theta in Omega, or not a critical point by the scale-free test of
      :func:`gradbasis.theory.certificate.stationarity` (no parameter alone could lower L by more than
      ``grad_tol`` max(1, |L|));
    * holds — L(theta) - lower <= tol = rtol * max(1, |L|) over the numerical span, converged;
    * consistent — an approximate critical point whose gap over the numerical span exceeds tol
      (``resolved_gap`` says how much lies along directions the gradient resolves), or a
      strategy that could not resolve the numerical span.

    ``rtol`` in (0, 1); ``grad_tol`` > 0 (scale-free: the most one parameter alone could still
    gain, relative to max(1, |L|)); ``rank_tol`` and ``cuts`` relative cuts
    in [0, 1). ``jacobian`` may pass a precomputed J(theta) (m*d_y x num_params, finite): it is
    checked against the model (Lemma 2, Assumption 2) before use. Where L(theta) or its
    gradient overflow float64 no verdict is given: NonFiniteError says so.

    ``strategy`` (see :mod:`gradbasis.solve.strategies`): "dense" (J and its SVD), "gram" (J's
    numerical span without its SVD, :mod:`gradbasis.solve.resolved_span`: K's pivoted Cholesky
    for the rows K resolves, then the remaining rows projected off them from J v / J^T u
    products, certified below ``rank_tol`` sigma_max except with probability 1e-16; the
    result's ``induced.details["resolution"]`` says which cut each part was resolved to;
    ``alpha_distance`` is then measured on coefficients mapped back through K's factor, good to
    about sqrt(n eps)), "matrix_free" (J v and J^T u only; its lower bound covers a ball of
    coefficients), or "auto". Every strategy gives the same verdict as "dense" or a weaker one:
    where the span it resolved is not the numerical span (the Gram path's range finder hit its
    cap, or its answer can still drop by more than tol / 100 along J's own directions, i.e. K's
    rounding tilted the span) and its numbers would allow "holds", the judgement falls back to
    the dense SVD when that fits ``memory_budget`` (``judged_by`` says so), and otherwise the
    verdict is "consistent" with the reason.
    """
    obj = check_objective(obj)
    theta = as_theta(theta, obj.model.num_params)
    model = obj.model
    rtol, grad_tol, rank_tol, cuts, _ = check_tolerances(rtol, grad_tol, rank_tol, cuts)
    memory_budget = budget_bytes(memory_budget)
    chosen = check_strategy(strategy)
    if jacobian is not None:
        jacobian = _checked_jacobian(jacobian, obj)
    g_theta = model.homogeneity(theta)  # Assumption 2's g: a model without one cannot be judged
    seconds: dict[str, float] = {}
    bar = progress_bar(4, "Theorem 1 (objective, Jacobian, stationarity, induced solve)")
    t0 = time.perf_counter()
    loss_value, grad, gnorm = finite_value_and_gradient(obj, theta)
    margin = model.kink_margin(theta, obj.X)
    f = model.forward(theta, obj.X, n_threads=obj.n_threads or None)
    u = obj.residual_duals(theta)
    seconds["objective"] = time.perf_counter() - t0
    bar.update(1)
    if jacobian is not None:
        chosen = Strategy.DENSE
    elif chosen == Strategy.AUTO:
        chosen = Strategy(choose_strategy(obj, memory_budget)[0])
    tol = rtol * max(1.0, abs(loss_value))
    J = jacobian
    t0 = time.perf_counter()
    if J is None and (
        chosen == Strategy.DENSE
        or (chosen == Strategy.GRAM and _small_jacobian(obj, memory_budget))
    ):
        J = model.jacobian(
            theta, obj.X, memory_budget=memory_budget, n_threads=obj.n_threads or None
        )
    seconds["jacobian"] = time.perf_counter() - t0
    bar.update(1)
    t0 = time.perf_counter()
    point = stationarity(obj, theta, grad, loss_value, J=J)
    seconds["stationarity"] = time.perf_counter() - t0
    bar.update(1)
    t0 = time.perf_counter()
    full, resolved, unresolved, output_basis = _induced_by_strategy(
        obj, theta, chosen, J, f, memory_budget, rank_tol, cuts, tol
    )
    judged_by = chosen
    if not resolved and loss_value - full.value <= tol and jacobian is None:
        # The strategy found no drop beyond tol, so "holds" is possible, but its numbers do not
        # cover the numerical span: judge on the dense SVD where it fits, else say so. Where it
        # found a drop beyond tol, "holds" is out of reach for gram (its span is part of the
        # numerical span) and "consistent" is at worst weaker than dense for matrix_free.
        if memory_estimate(obj, memory_budget).fits("dense"):
            J, full = _dense_judgement(obj, theta, f, memory_budget, rank_tol, cuts)
            resolved, judged_by, output_basis = True, Strategy.DENSE, None
    seconds["induced"] = time.perf_counter() - t0
    bar.update(1)
    bar.close()
    l2_res = a2_res = float("nan")
    inconsistency = None
    if J is not None:
        l2_res, a2_res, inconsistency = basis_consistency(J, grad, u.ravel(), f.ravel(), g_theta)
        if jacobian is not None and inconsistency:
            inconsistency = "the given jacobian does not match the model: " + inconsistency
    dist = safe_norm(full.alpha - g_theta) if full.alpha.size == g_theta.size else float("nan")
    # <u, f_X - F*>: by convexity L - Phi(F*) can never exceed it, whatever theta is.
    bound = max(
        float(u.ravel() @ (f.ravel() - np.asarray(full.fitted).ravel())), 0.0
    )  # >= 0 but for rounding
    gap = loss_value - full.lower
    resolution, resolved_gap = 0.0, None
    if gap > tol and point.critical(grad_tol, tol) and resolved and gnorm > 0.0:
        resolution = gradient_resolution(obj, theta, gnorm, tol)
        resolved_gap = _resolved_gap(obj, f, J, output_basis, resolution, loss_value, gap)
    evidence = Evidence(
        loss_value=loss_value,
        tol=tol,
        lower=full.lower,
        value=full.value,
        converged=full.converged,
        resolved=resolved,
        scope=full.scope or "the numerical span of J",
        first_order_bound=bound,
        kink_margin=margin,
        stationarity=point,
        grad_tol=grad_tol,
        inconsistency=inconsistency,
        unresolved_note=unresolved,
        resolved_gap=float("nan") if resolved_gap is None else resolved_gap,
    )
    verdict, reason = judge(evidence)
    return Theorem1Result(
        verdict=verdict,
        reason=reason,
        loss_value=loss_value,
        lower=full.lower,
        value=full.value,
        gap=gap,
        gradient_norm=gnorm,
        relative_gradient=point.relative,
        alpha_distance=dist,
        first_order_bound=bound,
        kink_margin=margin,
        rank=full.rank,
        rank_tol=full.rank_tol,
        num_params=model.num_params,
        num_outputs=obj.num_samples * model.output_dim,
        attained=full.attained,
        converged=full.converged,
        tol=tol,
        grad_tol=grad_tol,
        resolution=resolution,
        resolved_gap=resolved_gap,
        scope=evidence.scope,
        full_rank=full.rank,
        strategy=chosen,
        judged_by=judged_by,
        lemma2_residual=l2_res,
        assumption2_residual=a2_res,
        profile=full.profile,
        seconds=seconds,
        induced=full,
    )
