"""Theorem 2 (local minima and the perturbable gradient basis) with Lemmas 1 and 3.

At a local minimum theta outside Omega~, for small eps every finite S of V[theta, eps] gives
L(theta) = inf over span[J(theta), J(theta + eps S_1), ...] of Phi. Lemma 3 is the reason:
theta + eps v is again a local minimum with the same outputs, so
sum_i lambda_i dl(f(x_i; theta)) d_k f(x_i; theta + eps v) = grad L(theta + eps v) = 0.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ._numerics import safe_norm
from ._options import check_seed, open_unit_interval, positive_number, positive_step, relative_cut
from ._validation import as_float_array, as_samples, as_theta, check_finite
from .critical_points import hessian_extremes
from .errors import InvalidArgumentError, InvalidOptionError, ShapeError
from .induced import DEFAULT_CUTS
from .models.base import Model, check_model
from .objective import Objective, check_objective, finite_value_and_gradient
from .perturbable import PerturbableBasis, perturbable_basis
from .perturbation import KINDS, PerturbationSet, perturbation_directions
from .span_check import SpanCheck, check_span, check_tolerances, judge
from .verdict import Verdict, jsonable, table

__all__ = ["Lemma1Result", "Lemma3Result", "Theorem2Result", "lemma1", "lemma3", "theorem2", "saddle_reason"]


# ----------------------------------------------------------------------------- Lemma 3
@dataclass(frozen=True)
class Lemma3Result:
    """max_j || sum_i lambda_i dl(f(x_i; theta)) d f(x_i; theta + eps S_j) || against grad_tol.

    ``residuals[j]`` is that norm for direction j (with u taken at theta, as in the lemma);
    ``gradient_norm`` is the j-free term ||grad L(theta)||.
    """

    holds: bool
    max_residual: float
    gradient_norm: float
    grad_tol: float
    eps: float
    residuals: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        return jsonable({k: v for k, v in vars(self).items() if k != "residuals"})


def _directions(obj_model: Model, S: PerturbationSet | np.ndarray, eps: float | None) -> tuple[np.ndarray, float]:
    if isinstance(S, PerturbationSet):
        return S.directions, positive_step(S.eps if eps is None else eps)
    D = as_float_array(S, "S")
    if D.ndim != 2 or D.shape[1] != obj_model.num_params:
        raise InvalidOptionError(f"S must be (k, num_params = {obj_model.num_params}); got shape {D.shape}")
    check_finite(D, "S")
    if eps is None:
        raise InvalidOptionError("eps is required when S is a plain array")
    return D, positive_step(eps)


def check_perturbation_set(S: object) -> PerturbationSet | None:
    """``S`` itself when it is None or a PerturbationSet, else an InvalidArgumentError."""
    if S is not None and not isinstance(S, PerturbationSet):
        raise InvalidArgumentError(f"S must be a PerturbationSet from perturbation_directions; got {type(S).__name__}")
    return S


def lemma3(obj: Objective, theta: object, S: PerturbationSet | np.ndarray, eps: float | None = None, *, grad_tol: float = 1e-6) -> Lemma3Result:
    """Check Lemma 3 on the directions S: each residual is J(theta + eps S_j)^T u(theta), one
    reverse sweep per direction. It holds (within grad_tol) at every local minimum; a large
    residual proves theta is not one (or eps is beyond the lemma's eps_0). ``eps`` and
    ``grad_tol`` are finite and > 0."""
    obj = check_objective(obj)
    theta = as_theta(theta, obj.model.num_params)
    D, eps = _directions(obj.model, S, eps)
    grad_tol = positive_number(grad_tol, "grad_tol")
    U = obj.residual_duals(theta)
    res = np.array([safe_norm(obj.model.vjp(theta + eps * v, obj.X, U)) for v in D])
    gnorm = safe_norm(obj.model.vjp(theta, obj.X, U))
    worst = float(res.max()) if res.size else gnorm
    return Lemma3Result(bool(max(worst, gnorm) <= grad_tol), worst, gnorm, float(grad_tol), eps, res)


# ----------------------------------------------------------------------------- Lemma 1
@dataclass(frozen=True)
class Lemma1Result:
    """span from S u S' against span(from S) + span(from S'): equal dimensions and a largest
    principal-angle sine below ``tol`` mean the two model classes coincide (Lemma 1)."""

    holds: bool
    dim_union: int
    dim_sum: int
    max_sine: float
    tol: float

    def to_dict(self) -> dict:
        return dict(vars(self))


def _orthonormal(B: np.ndarray, rank_tol: float) -> np.ndarray:
    U, s, _ = np.linalg.svd(B, full_matrices=False)
    return U[:, s > rank_tol * s[0]] if s.size and s[0] > 0 else U[:, :0]


def _direction_array(D: object, name: str, num_params: int) -> np.ndarray:
    arr = as_float_array(D, name)
    if arr.ndim != 2 or arr.shape[1] != num_params:
        raise ShapeError(f"{name} must be (k, num_params = {num_params}); got shape {arr.shape}")
    check_finite(arr, name)
    return arr


def lemma1(
    model: Model,
    theta: object,
    X: object,
    S: np.ndarray,
    S2: np.ndarray,
    eps: float,
    *,
    rank_tol: float = 1e-10,
    tol: float = 1e-6,
) -> Lemma1Result:
    """Check Lemma 1: {f~(.; a, eps, S u S')} = {f~(.; a, eps, S) + f~(.; a', eps, S')}.

    Both sides are subspaces of R^{m d_y}; the check compares their dimensions at the relative
    cut ``rank_tol`` (in [0, 1)) and the sine of the largest principal angle between them
    against ``tol`` (in (0, 1))."""
    model = check_model(model)
    theta = as_theta(theta, model.num_params)
    X = as_samples(X, model.input_dim)
    S, S2 = (_direction_array(D, name, model.num_params) for D, name in ((S, "S"), (S2, "S2")))
    eps = positive_step(eps)
    rank_tol = relative_cut(rank_tol, "rank_tol")
    tol = open_unit_interval(tol, "tol")
    A = perturbable_basis(model, theta, X, np.vstack([S, S2]), eps, rank_tol=rank_tol)
    B1 = perturbable_basis(model, theta, X, S, eps, rank_tol=rank_tol)
    B2 = perturbable_basis(model, theta, X, S2, eps, rank_tol=rank_tol)
    Qa = _orthonormal(A.basis, rank_tol)
    Qb = _orthonormal(np.hstack([B1.basis, B2.basis]), rank_tol)
    if Qa.shape[1] != Qb.shape[1]:
        return Lemma1Result(False, Qa.shape[1], Qb.shape[1], 1.0, tol)
    sines = np.linalg.norm(Qb - Qa @ (Qa.T @ Qb), axis=0) if Qa.shape[1] else np.zeros(0)
    worst = float(sines.max()) if sines.size else 0.0
    return Lemma1Result(worst <= tol, Qa.shape[1], Qb.shape[1], worst, tol)


# ----------------------------------------------------------------------------- Theorem 2
def saddle_reason(obj: Objective, theta: np.ndarray, gradient_norm: float, grad_tol: float, curvature_tol: float) -> tuple[str | None, float]:
    """A reason string when theta is a critical point with negative curvature (no local
    minimum, so Theorems 2-4 do not apply), and lambda_min of the Hessian (nan if not computed)."""
    if gradient_norm > grad_tol:
        return None, float("nan")
    lo, hi, method = hessian_extremes(obj, theta)
    if np.isnan(lo):  # Lanczos found no Ritz value: no claim about curvature either way
        return f"whether theta is a local minimum is unknown: lambda_min(Hessian) was not found ({method} did not converge)", lo
    if lo < -curvature_tol * max(1.0, abs(hi)):
        return f"theta is a saddle, not a local minimum: lambda_min(Hessian) = {lo:.3g} ({method})", lo
    return None, lo


@dataclass(frozen=True)
class Theorem2Result:
    """Theorem 2 at one point: L(theta) against the certified interval [lower, value] of the
    perturbable gradient basis model's infimum, with dim T, dim T~, |S| and eps.

    ``gradient_basis_value`` is Theorem 1's infimum (over T alone), so users see what the
    perturbation added. ``lemma3_residual`` is max_j ||grad L(theta + eps S_j)|| (0 at a local
    minimum). ``min_eigenvalue`` is the Hessian's smallest eigenvalue (nan when not computed).
    """

    verdict: Verdict
    reason: str
    loss_value: float
    lower: float
    value: float
    gap: float
    tol: float
    gradient_basis_value: float
    gradient_basis_lower: float
    gradient_norm: float
    lemma3_residual: float
    dual_residual: float
    first_order_bound: float
    kink_margin: float
    min_eigenvalue: float
    dim_T: int
    dim_T_tilde: int
    num_directions: int
    eps: float
    rank: int
    resolution: float
    directions: dict
    seconds: dict = field(repr=False)
    check: SpanCheck = field(repr=False)
    basis: PerturbableBasis = field(repr=False)

    def to_dict(self) -> dict:
        d = {k: v for k, v in vars(self).items() if k not in ("check", "basis")}
        d["profile"] = [vars(p) for p in self.check.profile]
        d["growth"] = list(self.basis.growth)
        return jsonable(d)

    def __str__(self) -> str:
        rows = [(k, v) for k, v in vars(self).items() if k not in ("check", "basis", "seconds", "directions")]
        return table("Theorem 2 (perturbable gradient basis model)", rows) + f"\ndirections: {self.directions}"


def theorem2(
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
) -> Theorem2Result:
    """Check Theorem 2 at theta with two-sided certificates.

    S defaults to :func:`perturbation_directions` (``kinds``, ``budget``, ``combinations``,
    ``seed``) at step ``eps``. The verdicts are those of :func:`gradbasis.span_check.judge`:
    "holds" when L(theta) - lower <= tol = rtol * max(1, |L|) and value <= L + tol; "does not
    apply" at kinks, at saddles (``check_minimum`` computes lambda_min of the Hessian, exactly
    below 400 parameters, by Lanczos above) and at points Lemma 3 shows are no local minimum;
    "consistent" at approximate local minima; "violated" when the numbers contradict convexity.
    ``strategy`` ("dense" or "gram") is how the perturbable span is built (:func:`perturbable_basis`).
    Tolerances: ``rtol`` in (0, 1), ``grad_tol`` > 0, ``rank_tol`` and ``cuts`` in [0, 1),
    ``curvature_tol`` >= 0. Where L(theta) or its gradient overflow float64 no verdict is given:
    NonFiniteError says so.
    """
    obj = check_objective(obj)
    theta = as_theta(theta, obj.model.num_params)
    S = check_perturbation_set(S)
    rtol, grad_tol, rank_tol, cuts, curvature_tol = check_tolerances(rtol, grad_tol, rank_tol, cuts, curvature_tol)
    seed = check_seed(seed)
    finite_value_and_gradient(obj, theta)  # before any work: no verdict on an overflowing loss
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    if S is None:
        S = perturbation_directions(
            obj.model, theta, obj.X, eps=eps, kinds=kinds, budget=budget, combinations=combinations, seed=seed
        )
    seconds["directions"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pb = perturbable_basis(obj.model, theta, obj.X, S, rank_tol=rank_tol, strategy=strategy)
    seconds["basis"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    check = check_span(obj, theta, pb.basis, rtol=rtol, grad_tol=grad_tol, rank_tol=rank_tol, cuts=cuts)
    # Theorem 1's answer over T alone, judged the same way (resolved directions at approximate points).
    J_only = check_span(obj, theta, pb.jacobian_basis, rtol=rtol, grad_tol=grad_tol, rank_tol=rank_tol, cuts=())
    seconds["induced"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    l3 = lemma3(obj, theta, S, grad_tol=grad_tol)
    reason_saddle, lam = (
        saddle_reason(obj, theta, check.gradient_norm, grad_tol, curvature_tol) if check_minimum else (None, float("nan"))
    )
    seconds["minimum_checks"] = time.perf_counter() - t0
    verdict, reason = judge(
        check, grad_tol=grad_tol, precondition=reason_saddle, residual_meaning="Lemma 3 residual of the perturbed Jacobians"
    )
    return Theorem2Result(
        verdict=verdict,
        reason=reason,
        loss_value=check.loss_value,
        lower=check.lower,
        value=check.value,
        gap=check.gap,
        tol=check.tol,
        gradient_basis_value=J_only.value,
        gradient_basis_lower=J_only.lower,
        gradient_norm=check.gradient_norm,
        lemma3_residual=l3.max_residual,
        dual_residual=check.dual_residual,
        first_order_bound=check.first_order_bound,
        kink_margin=check.kink_margin,
        min_eigenvalue=lam,
        dim_T=pb.dim_T,
        dim_T_tilde=pb.dim_T_tilde,
        num_directions=pb.num_directions,
        eps=pb.eps,
        rank=check.rank,
        resolution=check.resolution,
        directions=S.to_dict(),
        seconds=seconds,
        check=check,
        basis=pb,
    )
