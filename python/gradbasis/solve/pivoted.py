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
ill-conditioned for Cholesky); the other losses run Newton on an orthonormal basis of the
factor (Cholesky QR, Householder QR as the fallback) with preconditioned conjugate gradients
for its systems (:mod:`gradbasis.solve.factor_newton`). Only Level-3 BLAS calls on large
blocks: they keep their speed on a busy machine, where multithreaded Householder QR can slow
down by an order of magnitude.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import scipy.linalg
from scipy.linalg import lapack

from . import factor_newton
from .induced import InducedResult, ProfileEntry
from .least_squares import squared_projection

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
        main, entries, z = squared_projection(factor, loss, Y, weights, D, cut, profile_cuts)
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
            **main.details,
        },
    )
    return main, z


def _newton_on_factor(
    factor: PivotedFactor, loss, Y, w, cut, profile_cuts, tol, max_iter, start=None, n_threads=None
):
    """Newton over the factor's span at every cut (:mod:`gradbasis.solve.factor_newton`): an
    orthonormal basis Q of the factor (Q T = L, so the cuts stay prefixes), preconditioned
    conjugate gradients for the Newton systems."""
    del n_threads  # the BLAS calls use the library's threads
    n = factor.L.shape[0]
    cuts = [*profile_cuts, cut]
    solves, basis = factor_newton.solve_cuts(
        factor, loss, Y, w, cuts, tol, max_iter, flat_start(start), gram_rounding(n)
    )
    entries = [
        ProfileEntry(c, s.rank, s.value, s.lower, s.iterations, s.attained)
        for c, s in zip(cuts[:-1], solves[:-1], strict=True)
    ]
    mp = solves[-1]
    k = mp.rank
    z = basis.coefficients(mp.beta) if k else np.zeros(0)
    F = (basis.Q[:, :k] @ mp.beta).reshape(Y.shape) if k else np.zeros(Y.shape)
    main = _result(
        mp.value,
        mp.lower,
        F,
        k,
        loss,
        mp.attained,
        mp.converged,
        mp.iterations,
        mp.gradient_norm,
    )
    return main, entries, z


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
