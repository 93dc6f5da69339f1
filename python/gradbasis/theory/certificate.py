"""One definition of every verdict, one judge for every theorem.

Theorems 1-4, the representation bound and ``gradbasis certify`` all ask the same question:
is L(theta) the infimum of the induced convex model over a span that contains f_X(theta)?
:func:`judge` answers it from the numbers in an :class:`Evidence`, in this order:

* **violated** — the numbers contradict the theorem: the basis used fails Lemma 2
  (J^T u = grad L) or Assumption 2 (J g = f_X); the certified lower end of the infimum exceeds
  L(theta) (impossible: f_X(theta) is in the span); or L(theta) - value exceeds the convexity
  bound <u, f_X - F*> (impossible for a convex loss and a right Jacobian). Each says which.
* **does not apply** — theta in Omega (a kinked unit exactly at 0); a hypothesis of the theorem
  unmet (saddle, dimensions, Theta_{n,t}); not a critical point by the scale-free test of
  :func:`stationarity`; or, for Theorems 2-4, a residual that is 0 at every local minimum
  (Lemma 3, the features) and is not (theta is no local minimum).
* **holds** — L(theta) - lower <= tol where ``lower`` is a certified lower bound on the infimum
  over the *numerical span* (every singular direction above a rounding-level cut, default
  max(n, P) eps sigma_max as numpy's matrix_rank), from a solve that converged, by a strategy
  that resolved that span. Never over a span chosen from the gradient.
* **consistent** — everything else at an approximate critical point: the gap over the numerical
  span exceeds tol (it is always within the first-order bound, else "violated"), or the solve
  did not converge, or the strategy could not resolve the numerical span, or differentiability
  at theta is not established (the kink margin is NaN: a torch network uses an operation whose
  kinks gradbasis does not locate). The reason says which, and how much of the gap lies along
  directions the gradient does not resolve.

Criticality is judged scale-free: :func:`stationarity` measures, for each parameter, how much
the loss could still drop along that parameter's Jacobian column alone (a second-order model,
relative to max(1, |L|)): invariant under rescaling a feature, a parameter or a layer, never an
absolute ||grad L||. The residuals of Theorems 2-4 use the same measure on their columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np

from .._numerics import safe_norm
from ..objective import Objective
from ..verdict import Verdict, jsonable

__all__ = [
    "Evidence",
    "Stationarity",
    "column_drops",
    "judge",
    "loss_curvature",
    "stationarity",
    "trivial_lower",
]

#: Jacobian rows computed at once (bytes) when J is not at hand.
_CHUNK_BYTES = 64 * 2**20
_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class Stationarity:
    """How critical theta is, scale-free and in units of the loss.

    ``relative`` is max_k drop_k / max(1, |L|), drop_k = (d_k L)^2 / (2 J_k^T H J_k) the decrease
    of the second-order model of Phi along the single column J_k (H = blockdiag(lambda_i
    hess l(f(x_i))); exact for the squared loss): how much one parameter alone could still gain.
    It is unchanged when a feature, a parameter or a layer is rescaled (J_k and d_k L scale
    together), unlike ||grad L||, and columns that are tiny or noisy (saturated units) cannot
    inflate it. d_k L is first reduced by its rounding, 2 n eps sum_i |J_ik| |u_i|; a column
    within rounding of 0 (norm <= max(n, P) eps ||J||_F, the numerical-rank cut) counts as 0; a
    column with no curvature but a gradient above rounding counts as an infinite drop. ``worst_parameter``
    is the k attaining the maximum. ``global_gap`` is L(theta) - D(0), D(0) = sum_i lambda_i
    inf_q l(q, y_i) the trivial lower bound: when it is <= tol theta fits every sample to within
    tol and is a minimum of the whole problem.
    """

    gradient_norm: float
    relative: float
    worst_parameter: int
    dual_norm: float
    global_gap: float

    def critical(self, grad_tol: float, tol: float) -> bool:
        return self.relative <= grad_tol or self.global_gap <= tol

    def to_dict(self) -> dict:
        return cast(dict, jsonable(dict(vars(self))))


def trivial_lower(obj: Objective) -> float:
    """D(0) = -sum_i lambda_i l*(0; y_i) = sum_i lambda_i inf_q l(q, y_i): below every induced
    infimum (u = 0 is orthogonal to every span)."""
    conj = obj.loss.conjugate(np.zeros_like(obj.Y), obj.Y)
    return float(-(obj.weights @ conj)) if np.all(np.isfinite(conj)) else -np.inf


def loss_curvature(obj: Objective, f: np.ndarray) -> np.ndarray:
    """H_i = lambda_i hess l(f_i, y_i), shape (m, d_y, d_y): the Hessian of Phi at outputs f."""
    return obj.weights[:, None, None] * obj.loss.hessian(f, obj.Y)


def _column_terms(
    B: np.ndarray, u: np.ndarray, H: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B^T u, |B|^T |u|, diag(B^T H B)) for rows ordered like a Jacobian (sample-major)."""
    m, d = H.shape[0], H.shape[1]
    Bs = B.reshape(m, d, -1)
    HB = np.einsum("ikl,ilp->ikp", H, Bs)
    with np.errstate(over="ignore", invalid="ignore"):
        return B.T @ u, np.abs(B).T @ np.abs(u), np.einsum("ikp,ikp->p", Bs, HB)


def _isotropic(H: np.ndarray) -> np.ndarray | None:
    """c_i when every curvature block is c_i times the identity (the squared loss), else None:
    diag(B^T H B) then needs no block products."""
    d = H.shape[1]
    c = H[:, 0, 0]
    return c if np.array_equal(H, c[:, None, None] * np.eye(d)) else None


def _drops(r: np.ndarray, s: np.ndarray, q: np.ndarray, n: int) -> np.ndarray:
    """drop_k = (|r_k| - rounding_k)_+^2 / (2 q_k), rounding_k = 2 n eps s_k (see Stationarity)."""
    num = np.maximum(np.abs(r) - 2.0 * n * _EPS * s, 0.0)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        drop = np.where(
            q > 0.0, num * num / (2.0 * np.where(q > 0.0, q, 1.0)), np.where(num > 0.0, np.inf, 0.0)
        )
    return drop


def column_drops(B: np.ndarray, u: np.ndarray, H: np.ndarray) -> np.ndarray:
    """drop_k for every column of a basis B (n x p) at duals u and curvature blocks H (see
    :class:`Stationarity`): the loss one column alone can still gain, 0 when u is orthogonal to it."""
    u = np.asarray(u, dtype=np.float64).ravel()
    r, s, q = _column_terms(B, u, H)
    return _drops(r, s, q, B.shape[0])


def stationarity(
    obj: Objective,
    theta: np.ndarray,
    grad: np.ndarray,
    loss_value: float,
    *,
    J: np.ndarray | None = None,
) -> Stationarity:
    """The scale-free criticality measure of theta (see :class:`Stationarity`). ``grad`` is
    grad L(theta) = J^T u (Lemma 2), computed by the caller; ``J`` is used when at hand, else J
    is computed in sample chunks of at most 64 MiB (never whole)."""
    model, X = obj.model, obj.X
    f = model.forward(theta, X, n_threads=obj.n_threads or None)
    u = obj.residual_duals(theta)
    H = loss_curvature(obj, f)
    P, d = model.num_params, model.output_dim
    s, q, sq = np.zeros(P), np.zeros(P), np.zeros(P)
    absu = np.abs(u).reshape(X.shape[0], d)
    iso = _isotropic(H)
    # Chunks of rows keep every temporary small, whether J is given or computed here.
    rows = max(1, _CHUNK_BYTES // (8 * max(1, P) * d))
    for start in range(0, X.shape[0], rows):
        stop = min(start + rows, X.shape[0])
        block = (
            J[start * d : stop * d]
            if J is not None
            else model.jacobian(theta, X[start:stop], n_threads=obj.n_threads or None)
        )
        with np.errstate(over="ignore", invalid="ignore"):
            s += np.abs(block).T @ absu[start:stop].ravel()
            part = np.einsum("ij,ij->j", block, block)
            sq += part
            if iso is None:
                Bs = block.reshape(stop - start, d, P)
                q += np.einsum("ikp,ikp->p", Bs, np.matmul(H[start:stop], Bs))
            elif np.all(iso[start:stop] == iso[start]):
                q += iso[start] * part
            else:
                q += np.einsum("i,ij,ij->j", np.repeat(iso[start:stop], d), block, block)
    norms = np.sqrt(sq)
    n = X.shape[0] * d
    drop = _drops(np.asarray(grad, dtype=np.float64), s, q, n)
    # A column within rounding of 0 (below the numerical-rank cut max(n, P) eps ||J||_F, e.g. a
    # saturated unit) carries no derivative information: its gradient entry is rounding too.
    drop[norms <= max(n, P) * _EPS * float(np.sqrt(np.sum(norms**2)))] = 0.0
    scale = max(1.0, abs(loss_value))
    worst = int(np.argmax(drop)) if drop.size else -1
    return Stationarity(
        gradient_norm=safe_norm(grad),
        relative=float(drop[worst] / scale) if drop.size else 0.0,
        worst_parameter=worst,
        dual_norm=safe_norm(u),
        global_gap=float(loss_value - trivial_lower(obj)),
    )


@dataclass(frozen=True)
class Evidence:
    """The numbers a verdict is judged on (see the module docstring).

    ``lower``/``value`` bound the infimum over the span described by ``scope``; ``resolved`` says
    whether that span is the numerical span at the rounding-level cut (False when a strategy
    left directions out, e.g. below the Gram floor); ``converged`` is the solve's own flag.
    ``residual`` is the scale-free residual (relative gain) of the columns a theorem adds to J — 0 at
    every local minimum — with ``residual_meaning`` naming it; None where there are none.
    ``inconsistency`` names a failed Lemma 2 / Assumption 2 check of the basis, if any.
    ``resolved_gap`` is L - lower over the directions the gradient resolves (nan when not
    computed): the rest of the gap lies along directions it does not.
    """

    loss_value: float
    tol: float
    lower: float
    value: float
    converged: bool
    resolved: bool
    scope: str
    first_order_bound: float
    kink_margin: float
    stationarity: Stationarity
    grad_tol: float
    precondition: str | None = None
    residual: float | None = None
    residual_meaning: str = ""
    inconsistency: str | None = None
    unresolved_note: str = ""
    resolved_gap: float = float("nan")

    @property
    def gap(self) -> float:
        return self.loss_value - self.lower


def judge(e: Evidence) -> tuple[Verdict, str]:
    """The verdict and its reason from the evidence (order and meaning: module docstring)."""
    L, tol = e.loss_value, e.tol
    if e.inconsistency:
        return Verdict.VIOLATED, e.inconsistency
    if e.lower > L + tol:
        return Verdict.VIOLATED, (
            f"the certified infimum over {e.scope} exceeds L(theta) by {e.lower - L:.3g}, but f_X(theta) = J g(theta) "
            "lies in that span: Assumption 2 fails or g(theta) lies outside the numerical span"
        )
    bound = e.first_order_bound
    if L - e.value > bound + tol + 1e-12 * abs(bound):
        return Verdict.VIOLATED, (
            f"L(theta) - value = {L - e.value:.3g} exceeds the convexity bound <u, f_X - F*> = {bound:.3g}: the loss is "
            "not convex or the Jacobian is wrong"
        )
    if e.kink_margin == 0.0:
        return (
            Verdict.DOES_NOT_APPLY,
            "theta is in Omega: a kinked unit has a pre-activation exactly 0",
        )
    if e.precondition:
        return Verdict.DOES_NOT_APPLY, e.precondition
    s = e.stationarity
    if not s.critical(e.grad_tol, tol):
        return Verdict.DOES_NOT_APPLY, (
            f"not a critical point: moving parameter {s.worst_parameter} alone could lower L by {s.relative:.3g} "
            f"max(1, |L|) > grad_tol {e.grad_tol:g} (scale-free; ||grad L|| = {s.gradient_norm:.3g}); the infimum is "
            f"{L - e.value:.3g} below L"
        )
    if e.residual is not None and e.residual > e.grad_tol and s.global_gap > tol:
        return Verdict.DOES_NOT_APPLY, (
            f"theta is not a local minimum: the {e.residual_meaning} is {e.residual:.3g} > grad_tol {e.grad_tol:g} "
            f"(scale-free: what one of those columns alone could gain, relative), which is 0 at every local minimum; "
            f"the infimum is {L - e.value:.3g} below L"
        )
    gap = e.gap
    if gap <= tol and e.value <= L + tol and e.converged and e.resolved and np.isnan(e.kink_margin):
        return Verdict.CONSISTENT, (
            f"L(theta) - lower = {gap:.3g} <= tol {tol:.3g} over {e.scope}, but differentiability at theta is "
            "not established: the network uses an operation whose kinks are not located (kink margin unknown)"
        )
    if gap <= tol and e.value <= L + tol and e.converged and e.resolved:
        return Verdict.HOLDS, f"L(theta) - lower = {gap:.3g} <= tol {tol:.3g} over {e.scope}"
    if gap <= tol and not e.resolved:
        return Verdict.CONSISTENT, (
            f"L(theta) - lower = {gap:.3g} <= tol over {e.scope}, but that is not the numerical span: {e.unresolved_note}"
        )
    if gap <= tol:
        return (
            Verdict.CONSISTENT,
            f"L(theta) - lower = {gap:.3g} <= tol over {e.scope}, but the solve did not converge",
        )
    split = ""
    if np.isfinite(e.resolved_gap):
        resolved = max(e.resolved_gap, 0.0)
        split = f"; {max(gap - resolved, 0.0):.3g} of it lies along directions the gradient does not resolve"
    scope = e.scope if e.resolved else f"{e.scope} ({e.unresolved_note})"
    return Verdict.CONSISTENT, (
        f"approximate critical point: L(theta) - lower = {gap:.3g} > tol {tol:.3g} over {scope}, within the "
        f"first-order bound {bound:.3g}{split}"
    )
