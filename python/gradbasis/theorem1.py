"""Theorem 1: at a differentiable critical point, L(theta) equals the infimum of the
gradient basis model, inf_a sum_i lambda_i l((J(theta) a)_i, y_i)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ._memory import budget_bytes
from ._numerics import safe_norm
from ._options import open_unit_interval, positive_number, relative_cut, relative_cuts
from ._validation import as_float_array, as_theta, check_finite
from .errors import ShapeError, UnknownNameError
from .induced import DEFAULT_CUTS, InducedResult, induced_minimum
from .objective import Objective, check_objective, finite_value_and_gradient
from .strategies import STRATEGIES, choose_strategy, gradient_basis_minimum, gram_solve
from .verdict import Verdict, jsonable, table

__all__ = ["Theorem1Result", "theorem1"]


@dataclass(frozen=True)
class Theorem1Result:
    """Theorem 1 at one point: L(theta) against the certified interval [lower, value] of the
    gradient basis model's infimum, with the first-order bound that explains any gap.

    ``lower``/``value`` bound the infimum over the judged span (see :func:`theorem1`); ``tol`` is
    the absolute tolerance used (``rtol * max(1, |L|)``). ``first_order_bound`` is
    ||grad L|| * ||alpha* - g(theta)||: by convexity L(theta) - Phi(J alpha*) can never exceed
    it, whatever theta is.
    """

    verdict: Verdict
    reason: str
    loss_value: float
    lower: float
    value: float
    gap: float                      # L(theta) - lower
    gradient_norm: float
    alpha_distance: float           # ||alpha* - g(theta)||
    first_order_bound: float
    kink_margin: float
    rank: int
    rank_tol: float
    num_params: int
    num_outputs: int                # m * d_y
    attained: bool
    tol: float
    grad_tol: float
    resolution: float               # singular values below this are not judged (see theorem1)
    full_rank: int                  # rank of J at rank_tol
    strategy: str                   # dense, gram or matrix_free (see gradbasis.strategies)
    profile: tuple = field(repr=False)
    seconds: dict = field(repr=False)
    induced: InducedResult = field(repr=False)

    def to_dict(self) -> dict:
        d = {k: v for k, v in vars(self).items() if k not in ("induced", "profile")}
        d["profile"] = [vars(p) for p in self.profile]
        return jsonable(d)

    def __str__(self) -> str:
        rows = [
            ("verdict", str(self.verdict)),
            ("reason", self.reason),
            ("L(theta)", self.loss_value),
            ("induced infimum >=", self.lower),
            ("induced infimum <=", self.value),
            ("gap L - lower", self.gap),
            ("tolerance", self.tol),
            ("||grad L||", self.gradient_norm),
            ("||alpha* - g||", self.alpha_distance),
            ("first-order bound", self.first_order_bound),
            ("kink margin", self.kink_margin),
            ("rank J judged (of m*d_y x dtheta)", f"{self.rank} of {self.num_outputs} x {self.num_params}"),
            ("relative rank cut", self.rank_tol),
            ("gradient resolution (sigma)", self.resolution),
            ("rank J at the relative cut", self.full_rank),
            ("infimum attained", self.attained),
            ("strategy", self.strategy),
        ]
        text = table("Theorem 1 (gradient basis model)", rows)
        prof = [f"  {'cut':>9}  {'rank':>6}  {'value':>20}  {'lower':>20}"]
        prof += [f"  {p.cut:9.1e}  {p.rank:6d}  {p.value:20.12g}  {p.lower:20.12g}" for p in self.profile]
        return text + "\nprofile over the relative singular-value cut:\n" + "\n".join(prof)


def _responsible_directions(profile: Sequence, loss_value: float, tol: float) -> str:
    """The singular-value band whose directions pull the infimum below L(theta)."""
    ordered = sorted(profile, key=lambda p: -p.cut)  # smallest span first
    for prev, cur in zip(ordered, ordered[1:]):
        if prev.value >= loss_value - tol > cur.value:
            return f"directions with sigma/sigma_max in ({cur.cut:.0e}, {prev.cut:.0e}] (rank {prev.rank} -> {cur.rank})"
    if ordered and ordered[0].value < loss_value - tol:
        return f"directions with sigma/sigma_max > {ordered[0].cut:.0e}"
    return "no single band"


def gradient_resolution(obj: Objective, theta: np.ndarray, gradient_norm: float, tol: float) -> float:
    """Smallest singular value of J that a gradient of this size lets us judge.

    Along a unit output direction v_j with singular value sigma_j the residual dual u has
    component at most ||grad L|| / sigma_j, so moving there can lower Phi by up to about
    (||grad L|| / sigma_j)^2 / (2 h), h the typical curvature of Phi per output coordinate.
    Keeping that below tol needs sigma_j >= ||grad L|| / sqrt(2 h tol). At an exact critical
    point this is 0 and the whole span is judged.
    """
    if gradient_norm == 0.0:
        return 0.0
    f = obj.model.forward(theta, obj.X)
    H = obj.loss.hessian(f, obj.Y)
    curvature = float(np.mean(obj.weights * np.trace(H, axis1=1, axis2=2) / H.shape[1]))
    curvature = max(curvature, np.finfo(float).tiny)
    return gradient_norm / np.sqrt(2.0 * curvature * tol)


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

    Verdicts, in this order:
      * violated — lower > L + tol (impossible: alpha = g(theta) reaches L) or
        L - value > first-order bound + tol (impossible by convexity): a bug or a broken
        assumption (Assumption 2, or a loss that is not convex);
      * does not apply — theta in Omega (a kinked unit exactly at 0);
      * holds — lower >= L - tol and value <= L + tol: L(theta) equals the infimum within tol;
      * does not apply — ||grad L|| > grad_tol and the gap is not closed: not a critical point;
      * consistent — an approximate critical point whose gap is within the first-order bound;
        the singular-value band responsible is named.

    tol = rtol * max(1, |L(theta)|) with ``rtol`` in (0, 1); ``grad_tol`` > 0 is absolute;
    ``rank_tol`` and ``cuts`` are relative singular-value cuts in [0, 1). ``jacobian`` may pass a
    precomputed J(theta) (m*d_y x num_params, finite). Where L(theta) or its gradient overflow
    float64 no verdict is given: NonFiniteError says so.

    ``strategy`` picks how the span is handled (see :mod:`gradbasis.strategies`): "dense" (J
    and its SVD), "gram" (K = J J^T and its eigendecomposition, never J; directions below
    (n eps)^(1/4) sigma_max are left out), "matrix_free" (J v and J^T u only; no singular values,
    so the whole span is judged and ``lower`` holds over coefficients no longer than the
    optimum found), or "auto" (from the memory and flop estimates, within ``memory_budget`` bytes).
    """
    obj = check_objective(obj)
    theta = as_theta(theta, obj.model.num_params)
    model = obj.model
    rtol = open_unit_interval(rtol, "rtol")
    grad_tol = positive_number(grad_tol, "grad_tol")
    rank_tol = None if rank_tol is None else relative_cut(rank_tol, "rank_tol")
    cuts = relative_cuts(cuts)
    memory_budget = budget_bytes(memory_budget)
    if strategy not in STRATEGIES:
        raise UnknownNameError(f"unknown strategy {strategy!r}; choose from {STRATEGIES}")
    if jacobian is not None:
        jacobian = _checked_jacobian(jacobian, obj)
    g_theta = model.homogeneity(theta)  # Assumption 2's g: a model without one cannot be judged
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    loss_value, grad, gnorm = finite_value_and_gradient(obj, theta)
    margin = model.kink_margin(theta, obj.X)
    seconds["objective"] = time.perf_counter() - t0
    if jacobian is not None:
        strategy = "dense"
    elif strategy == "auto":
        strategy = choose_strategy(obj, memory_budget)[0]
    t0 = time.perf_counter()
    tol = rtol * max(1.0, abs(loss_value))
    if strategy == "dense":
        J = model.jacobian(theta, obj.X, memory_budget=memory_budget) if jacobian is None else jacobian
        seconds["jacobian"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        full = induced_minimum(J, obj.loss, obj.Y, obj.weights, rank_tol=rank_tol, cuts=cuts)
        output_basis = lambda: np.linalg.svd(J, full_matrices=False)[:2]  # noqa: E731
    elif strategy == "gram":
        full, U_gram, s_gram = gram_solve(obj, theta, memory_budget, rank_tol, cuts, 1e-12, 200, with_output=True)
        output_basis = lambda: (U_gram, s_gram)  # noqa: E731
    else:
        full = gradient_basis_minimum(obj, theta, strategy="matrix_free", memory_budget=memory_budget)
        output_basis = None
    resolution = gradient_resolution(obj, theta, gnorm, tol) if gnorm <= grad_tol else 0.0
    res = full
    if (
        output_basis is not None
        and resolution > 0.0
        and full.singular_values.size
        and resolution > full.rank_tol * full.singular_values[0]
    ):
        # Judge the resolved directions plus f_X(theta) itself (= J g, so inf <= L still holds).
        U, s = output_basis()
        keep = s > resolution
        basis = np.hstack([U[:, keep] * s[keep], model.forward(theta, obj.X).reshape(-1, 1)])
        res = induced_minimum(basis, obj.loss, obj.Y, obj.weights, cuts=())
    seconds["induced"] = time.perf_counter() - t0
    dist = safe_norm(full.alpha - g_theta)
    bound = gnorm * dist if dist > 0.0 else 0.0  # an overflowing ||grad L|| (inf) times 0 is 0
    gap = loss_value - res.lower

    if full.lower > loss_value + tol:
        verdict, reason = Verdict.VIOLATED, (
            f"the certified infimum exceeds L(theta) by {full.lower - loss_value:.3g}, but alpha = g(theta) reaches "
            "L(theta): Assumption 2 (f = J g) fails or g lies outside the numerical span"
        )
    elif loss_value - full.value > bound + tol + 1e-12 * bound:
        verdict, reason = Verdict.VIOLATED, (
            f"L(theta) - value = {loss_value - full.value:.3g} exceeds the convexity bound {bound:.3g}: the loss is "
            "not convex or the Jacobian is wrong"
        )
    elif margin == 0.0:
        verdict, reason = Verdict.DOES_NOT_APPLY, "theta is in Omega: a kinked unit has a pre-activation exactly 0"
    elif gap <= tol and res.value <= loss_value + tol:
        verdict, reason = Verdict.HOLDS, f"L(theta) - lower = {gap:.3g} <= tol {tol:.3g}"
    elif gnorm > grad_tol:
        verdict, reason = Verdict.DOES_NOT_APPLY, (
            f"not a critical point: ||grad L|| = {gnorm:.3g} > grad_tol {grad_tol:g} (the infimum is "
            f"{loss_value - res.value:.3g} below L)"
        )
    else:
        band = _responsible_directions(full.profile, loss_value, tol)
        verdict, reason = Verdict.CONSISTENT, (
            f"approximate critical point: L - value = {loss_value - res.value:.3g} within the first-order bound "
            f"{bound:.3g} (certified interval [{res.lower:.6g}, {res.value:.6g}]); {band}"
        )
    return Theorem1Result(
        verdict=verdict,
        reason=reason,
        loss_value=loss_value,
        lower=res.lower,
        value=res.value,
        gap=gap,
        gradient_norm=gnorm,
        alpha_distance=dist,
        first_order_bound=bound,
        kink_margin=margin,
        rank=res.rank,
        rank_tol=full.rank_tol,
        num_params=model.num_params,
        num_outputs=obj.num_samples * model.output_dim,
        attained=res.attained,
        tol=tol,
        grad_tol=grad_tol,
        resolution=resolution,
        full_rank=full.rank,
        strategy=strategy,
        profile=full.profile,
        seconds=seconds,
        induced=res,
    )
