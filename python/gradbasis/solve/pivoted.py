"""Induced models over the span of a pivoted Cholesky factor of K = J J^T.

Diagonally pivoted Cholesky (LAPACK ``dpstrf``), P K P^T = L L^T, stopped at the rank r where
the largest diagonal entry left in the Schur complement is <= cut^2 max_i K_ii. That diagonal
holds the squared distances of the left-out Jacobian rows from the span of the kept ones, so
the part of J left out, J (I - P_S) with P_S the projector onto the kept rows' span, has every
row of norm <= cut * the largest row norm of J. The kept span is range(K[:, S]) = range(P^T L),
nested in r, so every cut of the profile is a prefix of the same factor. It costs about
n^2 r - n r^2 + r^3 / 3 flops (n = m d_y) and needs no memory beyond K.

:func:`solve_on_factor` solves the induced model over a prefix of such a factor (or of one
extended by further columns, as :mod:`gradbasis.solve.resolved_span` does): the squared loss
is a least-squares projection, done by semi-normal equations with one step of refinement on
the r x r Gram matrix of the factor (Householder QR of the factor if that Gram matrix is too
ill-conditioned for Cholesky); the other losses run the Newton solver on an orthonormal basis
of the factor (CholeskyQR2, Householder QR as the fallback). Only Level-3 BLAS calls on large
blocks: they keep their speed on a busy machine, where multithreaded Householder QR can slow
down by an order of magnitude.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import scipy.linalg
from scipy.linalg import blas, lapack

from .. import _core
from .._validation import as_threads
from .induced import InducedResult, ProfileEntry

_EPS = float(np.finfo(np.float64).eps)

__all__ = [
    "PivotedFactor",
    "cuts_above",
    "flat_start",
    "gram_rounding",
    "pivoted_factor",
    "solve_on_factor",
]


@dataclass
class PivotedFactor:
    """K's leading r pivoted columns: K[perm[:r], perm[:r]] = L11 L11^T and, in pivoted row
    order, K[perm][:, perm[:r]] = L L11^T with L = ``L`` (n x r, lower trapezoidal)."""

    L: np.ndarray  # (n, r), rows in pivoted order, a view into the overwritten K
    perm: np.ndarray  # (n,) 0-based pivot order
    scale: np.ndarray  # (r,) |diag L|: the kept rows' residual norms when they were chosen

    def rank_at(self, cut: float) -> int:
        if self.scale.size == 0:
            return 0
        return int(np.sum(self.scale > cut * self.scale[0]))

    def coefficients(self, z: np.ndarray, d: np.ndarray) -> np.ndarray:
        """c (length n, original order) with D K D c = (pivoted rows) L[:, :k] z: so that the
        outputs L z are J alpha with alpha = J^T (D c)."""
        k = z.size
        c = np.zeros(self.perm.size)
        if k:
            c[self.perm[:k]] = scipy.linalg.solve_triangular(
                self.L[:k, :k], z, lower=True, trans="T", check_finite=False
            )
        return d * c


def pivoted_factor(K: np.ndarray, cut: float) -> PivotedFactor:
    """Pivoted Cholesky of the symmetric K (overwritten) to the rank where every remaining
    diagonal entry is <= cut^2 max diag(K)."""
    n = K.shape[0]
    top = float(np.max(np.diagonal(K))) if n else 0.0
    if not top > 0.0:
        return PivotedFactor(np.zeros((n, 0)), np.arange(n), np.zeros(0))
    # K is symmetric, so its transpose is the same matrix in the Fortran order LAPACK works in.
    c, piv, rank, info = lapack.dpstrf(K.T, tol=cut * cut * top, lower=1, overwrite_a=1)
    if info < 0:
        raise RuntimeError(f"dpstrf rejected argument {-info}")
    L = c[:, :rank]
    for j in range(1, rank):  # the strictly upper part of the leading block still holds K
        L[:j, j] = 0.0
    return PivotedFactor(
        L, np.asarray(piv, dtype=np.intp) - 1, np.abs(np.diagonal(L[:rank, :rank])).copy()
    )


def cuts_above(cut: float, cuts: Sequence[float]) -> list[float]:
    return sorted({float(c) for c in cuts if c > cut}, reverse=True)


def solve_on_factor(
    factor: PivotedFactor,
    loss,
    Y: np.ndarray,
    weights: np.ndarray,
    D: np.ndarray,
    cut: float,
    cuts: Sequence[float],
    tol: float,
    max_iter: int,
    start: np.ndarray | None = None,
    *,
    n_threads: int | None = None,
) -> tuple[InducedResult, np.ndarray]:
    """(result, z): the induced infimum over range(factor.L[:, :k]) (rows in pivoted order, k
    the rank at ``cut``), with the fitted outputs (pivoted order) L[:, :k] z.

    The squared loss expects the factor of D K D (``D`` = sqrt of the weights, repeated per
    output) and solves the projection; the other losses take D = 1 and the weights in their
    objective. ``cuts`` above ``cut`` are solved as prefixes of the same factor; those at or
    below it repeat the main answer."""
    squared = loss.name == "squared"
    r = factor.scale.size
    profile_cuts = cuts_above(cut, cuts)
    if squared:
        main, entries, z = _squared_projection(factor, loss, Y, weights, D, cut, profile_cuts)
    else:
        main, entries, z = _newton_on_factor(
            factor, loss, Y, weights, cut, profile_cuts, tol, max_iter, start, n_threads
        )
    entries += [
        ProfileEntry(c, main.rank, main.value, main.lower, main.iterations, main.attained)
        for c in cuts
        if c <= cut
    ]
    main = replace(
        main,
        rank_tol=cut,
        singular_values=np.zeros(0),
        profile=tuple(sorted(entries, key=lambda p: -p.cut)),
        details={
            "factorization": "pivoted_cholesky",
            "gram_cut": cut,
            "gram_rank": r,
            "weights_folded": squared,
        },
    )
    return main, z


def _squared_projection(factor: PivotedFactor, loss, Y, w, D, cut, profile_cuts):
    """Projection of D y onto the span of the factor's leading columns, at every cut."""
    L = factor.L
    n, r = L.shape
    b = (D * Y.ravel())[factor.perm]  # pivoted order
    proj = (_semi_normal(L) or _qr_projection(L)) if r else None  # k > 0 only when r > 0
    entries = []
    out = None
    for c in [*profile_cuts, cut]:
        k = factor.rank_at(c)
        z, res = proj.solve(k, b) if proj is not None and k else (np.zeros(0), b.copy())
        if proj is not None and k and not _orthogonal(L[:, :k], res, b):
            proj = _qr_projection(L)  # the semi-normal equations lost too much: QR
            z, res = proj.solve(k, b)
        F = np.empty(n)
        F[factor.perm] = b - res
        F = (F / D).reshape(Y.shape)
        value = float(w @ loss.value(F, Y))
        lower = min(_dual(loss, F, Y, w), value)
        entries.append(ProfileEntry(c, k, value, lower, 1 if k else 0, True))
        # Phi's gradient in orthonormal coordinates of the span: Q_k^T D^-1 (w grad l(F))
        g = ((w[:, None] * loss.gradient(F, Y)).ravel() / D)[factor.perm]
        grad = proj.coordinates(k, g) if proj is not None and k else np.zeros(0)
        out = (k, value, lower, F, z, grad)
    assert out is not None  # the loop ran at least for ``cut``
    k, value, lower, F, z, grad = out
    main = _result(value, lower, F, k, loss, True, True, 1 if k else 0, float(np.linalg.norm(grad)))
    return main, entries[:-1], z


def _orthogonal(Lk: np.ndarray, res: np.ndarray, b: np.ndarray) -> bool:
    """Whether the residual is orthogonal to range(L_k) to 1e-10 relative to ||L_k|| ||b||
    (rounding leaves about sqrt(n) eps times the condition number of L_k). Relative to ||b||,
    not ||res||: where b lies in the span, res is rounding noise with no direction to check."""
    scale = float(np.linalg.norm(Lk)) * float(np.linalg.norm(b))
    return bool(np.linalg.norm(Lk.T @ res) <= 1e-10 * scale)


@dataclass(frozen=True)
class _Projection:
    """Least squares on L's leading k columns: ``solve(k, b)`` gives (z, b - L_k z) and
    ``coordinates(k, v)`` gives Q_k^T v for an orthonormal basis Q_k of range(L_k)."""

    solve: Callable[[int, np.ndarray], tuple[np.ndarray, np.ndarray]]
    coordinates: Callable[[int, np.ndarray], np.ndarray]


def _semi_normal(L: np.ndarray) -> _Projection | None:
    """Least squares on L's leading k columns by the semi-normal equations R^T R z = L_k^T b
    (R the Cholesky factor of L^T L, whose leading blocks serve every k) with one refinement
    step. None when L^T L is too ill-conditioned for that (Cholesky fails or loses more than
    half the digits); the caller then uses QR."""
    G = blas.dsyrk(1.0, L, trans=1, lower=0)
    try:
        R = scipy.linalg.cholesky(G, lower=False, overwrite_a=True, check_finite=False)
    except np.linalg.LinAlgError:
        return None
    diag = np.abs(np.diagonal(R))
    if not (diag.min() > 1e-6 * diag.max()):  # cond(L^T L) beyond ~1e12: refinement cannot recover
        return None

    def rsolve(k, v):
        t = scipy.linalg.solve_triangular(R[:k, :k], v, trans="T", check_finite=False)
        return scipy.linalg.solve_triangular(R[:k, :k], t, check_finite=False), t

    def solve(k, b):
        Lk = L[:, :k]
        z, _ = rsolve(k, Lk.T @ b)
        res = b - Lk @ z
        dz, _ = rsolve(k, Lk.T @ res)
        z += dz
        return z, b - Lk @ z

    def coordinates(k, v):  # Q_k^T v for the orthonormal Q_k = L_k R_k^-1
        return scipy.linalg.solve_triangular(
            R[:k, :k], L[:, :k].T @ v, trans="T", check_finite=False
        )

    return _Projection(solve, coordinates)


def _qr_projection(L: np.ndarray) -> _Projection:
    """Least squares on L's leading k columns through Householder QR of L (Q_k R_k = L_k):
    backward stable whatever the conditioning, used when the semi-normal equations are not."""
    Q, R = scipy.linalg.qr(L, mode="economic", check_finite=False)

    def solve(k, b):
        beta = Q[:, :k].T @ b
        res = b - Q[:, :k] @ beta
        return scipy.linalg.solve_triangular(R[:k, :k], beta, check_finite=False), res

    return _Projection(solve, lambda k, v: Q[:, :k].T @ v)


def _orthonormal_factor(L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q R = L with orthonormal Q (Fortran order) and upper triangular R, so that Q's leading
    columns span L's. CholeskyQR2 (two rounds of Q <- Q chol(Q^T Q)^-1, all Level-3 BLAS; the
    second round restores orthogonality to rounding whenever the first left it within 1/2 of
    the identity, i.e. cond(L) up to ~1e7); Householder QR when that does not hold."""
    Q, R = L, np.eye(L.shape[1])
    try:
        for round_ in range(2):
            G = blas.dsyrk(1.0, Q, trans=1, lower=0)
            if round_ == 1 and np.max(np.abs(np.triu(G) - np.eye(G.shape[0]))) > 0.5:
                raise np.linalg.LinAlgError("first round too far from orthogonal")
            Rk = scipy.linalg.cholesky(G, lower=False, overwrite_a=True, check_finite=False)
            Q = blas.dtrsm(1.0, Rk, Q, side=1, lower=0)
            R = Rk @ R
    except np.linalg.LinAlgError:
        Q, R = scipy.linalg.qr(L, mode="economic", check_finite=False)
    return np.asfortranarray(Q), R


def _newton_on_factor(
    factor: PivotedFactor, loss, Y, w, cut, profile_cuts, tol, max_iter, start=None, n_threads=None
):
    """The Newton solver on an orthonormal basis Q of the factor (Q R = L): its leading
    columns span the factor's leading columns, so the cuts stay prefixes."""
    L = factor.L
    n, r = L.shape
    if r == 0:  # J = 0: the span is {0}; one zero column keeps the solver's shapes
        Q, R, scale = np.zeros((n, 1), order="F"), np.ones((1, 1)), np.zeros(1)
    else:
        (Q, R), scale = _orthonormal_factor(L), factor.scale
    # The solver reads rows in sample order: put Q's rows back in original order.
    Qo = np.empty_like(Q, order="F")
    Qo[factor.perm] = Q
    del Q
    raw = _core.induced_minimum_orthonormal(
        Qo,
        np.ascontiguousarray(scale),
        loss.core_loss,
        Y,
        w,
        cut,
        profile_cuts,
        float(tol),
        int(max_iter),
        flat_start(start),
        gram_rounding=gram_rounding(n),
        n_threads=as_threads(n_threads),
    )
    entries = [ProfileEntry.from_core(p) for p in raw.profile]
    mp = raw.main
    k = int(mp.rank)
    beta = np.asarray(raw.alpha)[:k]
    z = scipy.linalg.solve_triangular(R[:k, :k], beta, check_finite=False) if r else np.zeros(0)
    main = _result(
        mp.value,
        mp.lower,
        np.asarray(raw.fitted),
        k,
        loss,
        bool(mp.attained),
        bool(mp.converged),
        int(mp.iterations),
        mp.gradient_norm,
    )
    return main, [e for e in entries if e.cut != cut], z


def gram_rounding(n: int) -> float:
    """K's relative rounding as the Newton solver's cross-entropy centring reads it: a basis
    from K resolves direction j only to about this times (sigma_max / sigma_j)^2, so centred
    parts below that are rounding of the per-sample-constant directions (16 n eps: K's
    rounding, about n eps ||K||, with a margin)."""
    return 16.0 * max(n, 1) * _EPS


def flat_start(start: np.ndarray | None) -> np.ndarray | None:
    """A warm start as the flat float64 vector the core takes (None stays None)."""
    return (
        None
        if start is None
        else np.ascontiguousarray(np.asarray(start, dtype=np.float64).reshape(-1))
    )


def _dual(loss, F, Y, w) -> float:
    """-sum_i w_i l*(u_i / w_i) at u = w grad l(F): the weak-duality bound when u is orthogonal
    to the span (it is, to rounding, at a least-squares projection); -inf outside the domain."""
    U = loss.gradient(F, Y)
    conj = loss.conjugate(U, Y)
    return float(-(w @ conj)) if np.all(np.isfinite(conj)) else -np.inf


def _result(
    value, lower, F, rank, loss, attained, converged, iterations, gradient_norm
) -> InducedResult:
    return InducedResult(
        value=float(value),
        lower=float(lower),
        alpha=np.zeros(0),
        fitted=F,
        rank=int(rank),
        rank_tol=0.0,
        attained=attained,
        converged=converged,
        iterations=iterations,
        gradient_norm=float(gradient_norm),
        singular_values=np.zeros(0),
        profile=(),
        loss=loss.name,
    )
