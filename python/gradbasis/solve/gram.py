"""Induced models over range(J) from the Gram matrix K = J J^T alone.

Two factorisations, one per need:

* :func:`solve_gram_pivoted` (the Gram strategy of :func:`gradient_basis_minimum` and of the
  distributed path): K's diagonally pivoted Cholesky factor and the solve over its span
  (:mod:`gradbasis.solve.pivoted`).
* :func:`output_basis_from_gram` / :func:`solve_over_gram` (Theorem 1 and the perturbable
  basis, which need the singular values of J): the eigendecomposition of K, then the same
  Newton solver on U diag(sigma) without a second factorisation.

Coefficients come back in theta coordinates through the representer form alpha = J^T beta
(one reverse sweep), with beta returned shaped like Y.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg

from .. import _core
from .._validation import as_threads
from .induced import InducedResult, ProfileEntry, default_rank_tol
from .pivoted import flat_start, gram_rounding, pivoted_factor, solve_on_factor

__all__ = [
    "gram_floor",
    "output_basis_from_gram",
    "solve_over_gram",
    "solve_gram_pivoted",
]

_EPS = float(np.finfo(np.float64).eps)


def gram_floor(n: int) -> float:
    """(n eps)^(1/4): the smallest relative cut on sigma (or on row residual norms) at which a
    span computed from K (rounding about n eps lambda_max) is resolved to about sqrt(n eps)."""
    return (max(n, 1) * _EPS) ** 0.25


def _cut(n: int, rank_tol: float | None) -> float:
    return max(gram_floor(n), 0.0 if rank_tol is None else float(rank_tol))


def solve_gram_pivoted(
    K: np.ndarray,
    loss,
    Y: np.ndarray,
    weights: np.ndarray,
    rank_tol: float | None,
    cuts: Sequence[float],
    tol: float,
    max_iter: int,
    start: np.ndarray | None = None,
    *,
    n_threads: int | None = None,
) -> tuple[InducedResult, np.ndarray]:
    """(result, beta): the induced infimum over range(J) from K = J J^T (overwritten), with
    J alpha = the fitted outputs for alpha = J^T beta (beta shaped like Y).

    ``result.rank_tol`` is the cut used, the larger of ``rank_tol`` and :func:`gram_floor`,
    read as a bound on the left-out part of J (module docstring); ``singular_values`` is
    empty (no spectrum is computed) and ``details`` names the factorisation. ``start``
    (outputs in range(J), e.g. f_X(theta)) warm-starts the Newton solves as in
    :func:`gradbasis.induced_minimum`; the squared loss's exact projection needs none.
    ``n_threads`` (None: every available thread) runs the Newton solver's parallel products.
    """
    m, d = Y.shape
    n = m * d
    cut = _cut(n, rank_tol)
    # The squared loss folds the weights into K (sqrt(w) on rows and columns): its infimum is then
    # a plain projection. The other losses keep K as it is and the weights in their objective.
    squared = loss.name == "squared"
    D = np.repeat(np.sqrt(weights), d) if squared else np.ones(n)
    if squared:
        K *= D[:, None]
        K *= D[None, :]
    factor = pivoted_factor(K, cut)
    main, z = solve_on_factor(
        factor, loss, Y, weights, D, cut, cuts, tol, max_iter, start, n_threads=n_threads
    )
    beta = factor.coefficients(z, D).reshape(Y.shape)
    return main, beta


# ----------------------------------------------------------------------------- eigendecomposition
def output_basis_from_gram(
    K: np.ndarray, rank_tol: float | None
) -> tuple[np.ndarray, np.ndarray, float]:
    """(U, sigma, cut): the eigenvectors of K with sigma = sqrt(lambda) above the Gram floor and
    the relative sigma cut used (the larger of rank_tol and :func:`gram_floor`).

    K carries rounding of about n eps lambda_max, which tilts the eigenvectors of lambda by
    about n eps lambda_max / gap: only sigma >= (n eps)^(1/4) sigma_max keeps the span to
    about sqrt(n eps) in angle."""
    n = K.shape[0]
    lam, U = scipy.linalg.eigh(K, overwrite_a=False, check_finite=False, driver="evd")
    lam, U = lam[::-1], U[:, ::-1]
    lam_max = max(float(lam[0]), 0.0) if lam.size else 0.0
    cut = _cut(n, rank_tol)
    if lam_max <= 0.0:
        return U[:, :0], lam[:0], cut
    sigma = np.sqrt(np.clip(lam, 0.0, None))
    keep = sigma > cut * sigma[0]
    return U[:, keep], sigma[keep], cut


def solve_over_gram(
    K: np.ndarray,
    loss,
    Y: np.ndarray,
    weights: np.ndarray,
    rank_tol,
    cuts,
    tol: float,
    max_iter: int,
    extra: np.ndarray | None = None,
    start: np.ndarray | None = None,
    *,
    n_threads: int | None = None,
) -> tuple[InducedResult, np.ndarray, np.ndarray, np.ndarray]:
    """(result, U, sigma, beta) over the span of U diag(sigma) from the eigendecomposition of
    K, plus an ``extra`` output column known to lie in range(J) (such as f_X(theta)).

    ``result.alpha`` is in the coordinates of [U diag(sigma), extra]; J^T beta (beta shaped
    like Y) is the part of the theta coefficients that U diag(sigma) carries. The solver runs on
    the orthonormal [U, q], q the unit part of ``extra`` orthogonal to U, appended last with
    scale ||extra_perp|| when that is above rounding (max(n, k+1) eps relative), so no second
    factorisation is needed. ``start`` (outputs in the span, e.g. ``extra``) warm-starts the
    solve as in :func:`gradbasis.induced_minimum`; ``n_threads`` (None: every available
    thread) runs its parallel products."""
    n = K.shape[0]
    U, sigma, cut = output_basis_from_gram(K, rank_tol)
    k = sigma.size
    Qcols, scale = [U], [sigma]
    coef_f, q_norm = None, 0.0
    if extra is not None:
        f = np.asarray(extra, dtype=np.float64).reshape(-1)
        coef_f = U.T @ f
        perp = f - U @ coef_f
        fix = U.T @ perp  # twice is enough (Gram-Schmidt with reorthogonalisation)
        perp -= U @ fix
        coef_f += fix
        q_norm = float(np.linalg.norm(perp))
        top = max(float(sigma[0]) if k else 0.0, float(np.linalg.norm(f)))
        if q_norm > default_rank_tol((n, k + 1)) * top:
            Qcols.append((perp / q_norm)[:, None])
            scale.append(np.array([q_norm]))
        else:
            q_norm = 0.0
    Q, s = np.hstack(Qcols), np.concatenate(scale)
    if (
        Q.shape[1] == 0
    ):  # J = 0 and no extra column: the span is {0}; one zero column keeps the shapes
        Q, s = np.zeros((n, 1)), np.zeros(1)
    Q = np.asfortranarray(Q)
    # U diag(sigma) is already cut: the main solve keeps every column (cut 0).
    raw = _core.induced_minimum_orthonormal(
        Q,
        s,
        loss.core_loss,
        Y,
        weights,
        0.0,
        [c for c in cuts if c > cut],
        float(tol),
        int(max_iter),
        flat_start(start),
        gram_rounding=gram_rounding(n),
        n_threads=as_threads(n_threads),
    )
    gamma = np.asarray(raw.alpha)
    # back to [U diag(sigma), extra] coordinates: U gamma_U + q gamma_q = U sigma a + extra c_f
    c_f = gamma[k] / q_norm if q_norm > 0.0 else 0.0
    a = (gamma[:k] - (coef_f * c_f if coef_f is not None else 0.0)) / np.where(
        sigma > 0, sigma, 1.0
    )
    alpha = np.concatenate([a, [c_f]]) if extra is not None else a
    beta = (U @ np.where(sigma > 0, a / np.where(sigma > 0, sigma, 1.0), 0.0)).reshape(Y.shape)
    mp = raw.main
    entries = [ProfileEntry.from_core(p) for p in raw.profile if p.cut != 0.0]
    entries += [ProfileEntry.from_core(mp, cut=c) for c in cuts if c <= cut]
    res = InducedResult(
        value=mp.value,
        lower=mp.lower,
        alpha=alpha,
        fitted=np.asarray(raw.fitted),
        rank=int(mp.rank),
        rank_tol=cut,
        attained=bool(mp.attained),
        converged=bool(mp.converged),
        iterations=int(mp.iterations),
        gradient_norm=mp.gradient_norm,
        singular_values=sigma,
        profile=tuple(sorted(entries, key=lambda p: -p.cut)),
        loss=loss.name,
        details={"factorization": "eigh", "gram_cut": cut, "gram_rank": k},
    )
    return res, U, sigma, beta
