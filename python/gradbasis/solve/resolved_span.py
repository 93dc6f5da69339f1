"""The gradient basis model over the numerical span of J, resolved at a rounding-level cut
without forming J.

K = J J^T alone cannot resolve J's numerical span: K squares the condition number, so
directions with sigma below about (n eps)^(1/4) sigma_max are lost in K's rounding (see
:func:`gradbasis.solve.gram.gram_floor`). This module resolves them in two parts:

1. **K's pivoted Cholesky** (LAPACK ``dpstrf``) at the Gram floor c_K keeps k rows P of J:
   every left-out row lies within c_K (largest row norm) of the kept rows' span, and range(L)
   = range(J J_P^T) is the part of range(J) those rows carry.
2. **The rest from J itself**: what J adds beyond range(L) is the range of the remaining rows
   projected off the kept rows, S = J_R (I - Pi_P) (then J = L Q_P^T + [0; S] with Q_P an
   orthonormal basis of the kept rows, so J's singular values are those of [L, [0; S]]).
   S is applied through J v and J^T u sweeps of the C++ core (never formed): Pi_P w =
   J_P^T K_PP^-1 J_P w, with K_PP = L11 L11^T, repeated until the correction is at rounding
   level (iterative refinement: the residual J_P w is computed from J, not from K, so each
   pass gains the digits K lost). An adaptive randomized range finder (Halko, Martinsson and
   Tropp 2011, Lemma 4.1) grows an orthonormal basis Q of range(S) from Gaussian probes until
   ``probes`` fresh probes all leave residuals below rank_tol sigma_max / (10 sqrt(2/pi)):
   then ||S - Q Q^T S|| <= rank_tol sigma_max except with probability <= 10^-probes. The SVD
   of Q^T S (dense, t x num_params) gives the directions of S above rank_tol sigma_max.

The span judged is range(L) plus those directions: every direction of J's numerical span at
``rank_tol`` is in it, and what is left out is certified below rank_tol sigma_max (the bound
and its failure probability are in the result). sigma_max is a Rayleigh-Ritz estimate of
K's largest eigenvalue, a lower bound on ||J||^2, so the cut can only be stricter than stated.

Cost: K, its pivoted Cholesky (about n^2 k - n k^2 + k^3/3 flops), and about 10 sweeps of the
network per probe (each a few forward passes); where S is numerically zero (every left-out row
a combination of kept ones, e.g. repeated inputs) one block of probes certifies it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import scipy.linalg

from ..losses import Loss
from ..models.base import Model
from .gram import gram_floor
from .induced import InducedResult, ProfileEntry, default_rank_tol
from .pivoted import PivotedFactor, pivoted_factor, solve_on_factor

__all__ = ["JacobianProducts", "SpanResolution", "resolved_span_minimum"]

_EPS = float(np.finfo(np.float64).eps)
#: Halko-Martinsson-Tropp's constant: ||A|| <= 10 sqrt(2/pi) max_i ||A w_i|| for r Gaussian
#: probes w_i, except with probability 10^-r.
HALKO_FACTOR = 10.0 * math.sqrt(2.0 / math.pi)
#: Refinement passes of the projection off the kept rows (each gains ~ -log10(cond(K_PP) n eps)
#: digits; two or three reach rounding level whenever the Cholesky cut is at the Gram floor).
MAX_PROJECTION_PASSES = 6


@dataclass(frozen=True)
class SpanResolution:
    """How the span was resolved, part by part (see the module docstring).

    ``cholesky_cut``: relative row-residual cut of K's pivoted Cholesky (the Gram floor or
    ``rank_tol`` if larger), which kept ``cholesky_rank`` rows. ``extension_rank`` directions
    of the remaining rows' projection S were added, each with sigma > ``extension_cut``
    sigma_max. ``left_out_bound`` bounds ||the part of S left out|| / sigma_max: it holds
    except with probability ``failure_probability`` (the random probes' test). ``resolved``
    is True when that bound is at or below ``extension_cut``: the span then contains J's
    numerical span at that cut. ``sigma_max`` is the (lower) estimate of ||J|| used.

    ``gain_along_jacobian`` checks the answer against J itself: the most Phi could still drop
    from the fitted outputs along J r, r = J^T u the gradient of a -> Phi(F + J a) at the dual
    point u (||r||^4 / (2 (J r)^T H (J r)), H the loss Hessian). Range(L) comes from K, whose
    rounding tilts it slightly; a gain above the caller's tolerance means the tilt matters and
    the answer is not a certificate for range(J).
    """

    cholesky_cut: float
    cholesky_rank: int
    remaining_rows: int
    extension_rank: int
    extension_cut: float
    probes: int
    left_out_bound: float
    failure_probability: float
    sigma_max: float
    gain_along_jacobian: float
    resolved: bool
    seconds: dict

    def describe(self) -> str:
        text = (
            f"range of K's pivoted Cholesky factor ({self.cholesky_rank} rows kept at relative row "
            f"residual > {self.cholesky_cut:.2g})"
        )
        if self.remaining_rows:
            text += (
                f", plus {self.extension_rank} direction(s) of the other {self.remaining_rows} rows "
                f"projected off them with sigma > {self.extension_cut:.2g} sigma_max (computed from "
                f"J v and J^T u; the part left out is <= {self.left_out_bound:.2g} sigma_max except "
                f"with probability {self.failure_probability:.0e})"
            )
        return text


def _largest_eigenvalue(K: np.ndarray, block: int = 8, passes: int = 2) -> float:
    """A lower bound on lambda_max(K) (Rayleigh-Ritz on K's largest-diagonal columns after
    ``passes`` block power steps): never above the true value, so cuts relative to it are
    never looser than stated."""
    n = K.shape[0]
    if n == 0:
        return 0.0
    idx = np.argsort(np.diagonal(K))[::-1][: min(block, n)]
    V = np.ascontiguousarray(K[:, idx])
    ritz = float(np.max(np.diagonal(K)))
    for _ in range(passes):
        V, _r = np.linalg.qr(V)
        W = K @ V
        ritz = max(ritz, float(np.linalg.eigvalsh(V.T @ W)[-1]))
        V = W
    return ritz


class JacobianProducts:
    """J W and J^T U on blocks of vectors (W: num_params x b, U: m d_y x b, rows in sample order
    i*d_y + k): through a dense J when one is at hand (one GEMM), else one sweep of the C++
    core per vector. The distributed path passes its own, computed chunk by chunk on workers."""

    def __init__(self, model: Model, theta, X, n_threads=None, J: np.ndarray | None = None):
        self.model, self.theta, self.X, self.threads, self.J = model, theta, X, n_threads, J

    def jv(self, W: np.ndarray) -> np.ndarray:
        if self.J is not None:
            return self.J @ W
        cols = [
            self.model.jvp(self.theta, self.X, W[:, j], n_threads=self.threads).ravel()
            for j in range(W.shape[1])
        ]
        return np.stack(cols, axis=1)

    def jtu(self, U: np.ndarray) -> np.ndarray:
        if self.J is not None:
            return self.J.T @ U
        d_y = self.model.output_dim
        cols = [
            self.model.vjp(self.theta, self.X, U[:, j].reshape(-1, d_y), n_threads=self.threads)
            for j in range(U.shape[1])
        ]
        return np.stack(cols, axis=1)


class _RemainingRows:
    """S = D_R J_R (I - Pi_P) and its transpose on blocks of vectors (D: row scaling, rows in
    sample order; P, R: kept and remaining rows, original indices)."""

    def __init__(self, products: JacobianProducts, D, factor: PivotedFactor, num_params: int):
        self.products, self.D, self.num_params = products, D, num_params
        k = factor.scale.size
        self.P, self.R = factor.perm[:k], factor.perm[k:]
        self.L11 = np.asfortranarray(factor.L[:k, :k])
        self.n = D.size
        self.sweeps = 0

    def _jv(self, W: np.ndarray) -> np.ndarray:
        """D J W: (n, b)."""
        self.sweeps += W.shape[1]
        return self.D[:, None] * self.products.jv(W)

    def _jtu(self, U: np.ndarray) -> np.ndarray:
        """J^T D U: (num_params, b)."""
        self.sweeps += U.shape[1]
        return self.products.jtu(self.D[:, None] * U)

    def project_off(self, W: np.ndarray) -> np.ndarray:
        """(I - Pi_P) W to rounding: passes of W -= J_P^T K_PP^-1 J_P W until every column's
        correction is below 4 eps times its norm."""
        if self.P.size == 0:
            return W
        W = W.copy()
        size = np.linalg.norm(W, axis=0)
        for _ in range(MAX_PROJECTION_PASSES):
            Y = self._jv(W)[self.P]
            C = scipy.linalg.solve_triangular(self.L11, Y, lower=True, check_finite=False)
            C = scipy.linalg.solve_triangular(
                self.L11, C, lower=True, trans="T", check_finite=False
            )
            U = np.zeros((self.n, W.shape[1]))
            U[self.P] = C
            step = self._jtu(U)
            W -= step
            if np.all(np.linalg.norm(step, axis=0) <= 4.0 * _EPS * size):
                break
        return W

    def apply(self, W: np.ndarray) -> np.ndarray:
        """S W: (remaining rows, b)."""
        return self._jv(self.project_off(W))[self.R]

    def apply_transpose(self, Q: np.ndarray) -> np.ndarray:
        """S^T Q: (num_params, b)."""
        U = np.zeros((self.n, Q.shape[1]))
        U[self.R] = Q
        return self.project_off(self._jtu(U))


def _orthogonalise(Q: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Y minus its part in range(Q) (orthonormal columns), twice (twice is enough)."""
    for _ in range(2):
        if Q.shape[1]:
            Y = Y - Q @ (Q.T @ Y)
    return Y


def _range_finder(S: _RemainingRows, threshold: float, probes: int, max_rank: int, rng):
    """(Q, probes used, largest residual of the last block): the adaptive randomized range
    finder, stopping when a block of ``probes`` Gaussian probes all leave residuals
    <= threshold, or when Q reaches ``max_rank`` columns (then its residuals are reported)."""
    p = S.num_params
    Q = np.zeros((S.R.size, 0))
    used = 0
    while True:
        Y = _orthogonalise(Q, S.apply(rng.standard_normal((p, probes))))
        used += probes
        last = float(np.max(np.linalg.norm(Y, axis=0)))
        if last <= threshold or Q.shape[1] >= max_rank:
            return Q, used, last
        for j in range(Y.shape[1]):  # add the block's new directions one by one
            y = _orthogonalise(Q, Y[:, j])
            size = float(np.linalg.norm(y))
            if size > threshold and Q.shape[1] < max_rank:
                Q = np.hstack([Q, (y / size)[:, None]])


def resolved_span_minimum(
    model: Model,
    theta: np.ndarray,
    X: np.ndarray,
    loss: Loss,
    Y: np.ndarray,
    weights: np.ndarray,
    *,
    rank_tol: float | None = None,
    cuts: Sequence[float] = (),
    tol: float = 1e-12,
    max_iter: int = 200,
    start: np.ndarray | None = None,
    probes: int = 16,
    max_extension: int = 512,
    seed: int = 0,
    jacobian: np.ndarray | None = None,
    gram: np.ndarray | None = None,
    products: JacobianProducts | None = None,
    memory_budget: int | None = None,
    n_threads: int | None = None,
) -> tuple[InducedResult, SpanResolution]:
    """(result, resolution): the induced infimum over J's numerical span at ``rank_tol``
    (default max(m d_y, num_params) eps, as the dense strategy) from K and J v / J^T u sweeps
    (module docstring). Checked inputs: theta, X, Y, weights as the Objective holds them.

    ``probes`` Gaussian probes per block (failure probability 10^-probes, seeded by ``seed``:
    the result is reproducible); ``max_extension`` caps the directions found beyond K's factor
    (each costs about 10 sweeps): past it ``resolution.resolved`` is False and the bound says
    how much is left out. ``start`` (outputs in range(J), e.g. f_X(theta)) warm-starts the
    Newton solve of losses other than the squared loss. ``jacobian`` (J(theta), checked, when
    at hand) turns the sweeps into two GEMMs per pass. ``gram`` (K(theta), computed elsewhere,
    e.g. gathered from workers) is used, and overwritten, instead of computing K here;
    ``products`` replaces the J W / J^T U products (the distributed path computes them on
    workers).
    """
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    m, d = Y.shape
    n, p = m * d, model.num_params
    rank_cut = default_rank_tol((n, p)) if rank_tol is None else float(rank_tol)
    K = (
        gram
        if gram is not None
        else model.gram(theta, X, memory_budget=memory_budget, n_threads=n_threads)
    )
    seconds["gram"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # The squared loss folds sqrt(weights) into the rows (its infimum is then a projection);
    # the row space of the kept rows, and so the span judged, is the same with or without it.
    squared = loss.name == "squared"
    D = np.repeat(np.sqrt(weights), d) if squared else np.ones(n)
    if squared:
        K *= D[:, None]
        K *= D[None, :]
    sigma_max = math.sqrt(max(_largest_eigenvalue(K), 0.0))
    cholesky_cut = max(gram_floor(n), rank_cut)
    factor = pivoted_factor(K, cholesky_cut)
    k = factor.scale.size
    seconds["cholesky"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if products is None:
        products = JacobianProducts(model, theta, X, n_threads, jacobian)
    rows = _RemainingRows(products, D, factor, p)
    threshold = rank_cut * sigma_max / HALKO_FACTOR
    extension = np.zeros((n, 0))
    scale_ext = np.zeros(0)
    ext_rows = np.zeros((0, p))
    used, bound = 0, 0.0
    if rows.R.size and sigma_max > 0.0:
        rng = np.random.default_rng(seed)
        Q, used, last = _range_finder(rows, threshold, probes, min(max_extension, rows.R.size), rng)
        bound = HALKO_FACTOR * last / sigma_max
        if Q.shape[1]:
            # Q^T S = (S^T Q)^T, dense t x num_params; its SVD ranks the directions found.
            B = rows.apply_transpose(Q).T
            Ub, sb, vt = scipy.linalg.svd(B, full_matrices=False, check_finite=False)
            keep = sb > rank_cut * sigma_max
            dropped = float(sb[~keep].max()) / sigma_max if (~keep).any() else 0.0
            bound = math.hypot(bound, dropped)
            directions = np.zeros((n, int(keep.sum())))
            directions[k:] = Q @ Ub[:, keep]  # pivoted row order: rows k.. are the remaining rows
            extension, scale_ext = directions, sb[keep]
            ext_rows = vt[keep]  # theta directions: D J (v_j / sigma_j) = the j-th direction
    seconds["remaining_rows"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    base, link = factor, None
    if extension.shape[1]:
        factor, link = _extended(factor, extension)
    result, z = _solve_with_profile(
        factor,
        k,
        scale_ext / sigma_max if sigma_max > 0.0 else scale_ext,
        cholesky_cut,
        loss,
        (Y, weights, D),
        rank_cut,
        cuts,
        (tol, max_iter, start, n_threads),
    )
    result = replace(result, alpha=_coefficients(rows, base, link, z, ext_rows, scale_ext))
    seconds["solve"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    gain = _gain_along_jacobian(products, loss, Y, weights, result.fitted)
    seconds["check"] = time.perf_counter() - t0
    resolution = SpanResolution(
        cholesky_cut=cholesky_cut,
        cholesky_rank=k,
        remaining_rows=int(rows.R.size),
        extension_rank=int(extension.shape[1]),
        extension_cut=rank_cut,
        probes=used,
        left_out_bound=bound,
        failure_probability=10.0**-probes if used else 0.0,
        sigma_max=sigma_max,
        gain_along_jacobian=gain,
        resolved=bound <= rank_cut,
        seconds=seconds,
    )
    details = dict(result.details)
    details.update(
        factorization="pivoted_cholesky+remaining_rows",
        resolution=vars(resolution),
        sweeps=rows.sweeps,
    )
    result = replace(result, rank_tol=rank_cut, details=details, scope=resolution.describe())
    return result, resolution


def _extended(factor: PivotedFactor, directions: np.ndarray):
    """The factor with the extra output directions appended, made orthogonal to range(L) and
    orthonormal (so the columns stay a nested basis) and scaled to L's smallest pivot, so that
    the factor's Gram matrix stays as well conditioned as L's. They were resolved from J, not
    from K, so the solver must not read them as K-rounding-limited: their ``scale`` entries
    are that smallest pivot too, and the cuts among them are taken by
    :func:`_solve_with_profile` from their singular values. Returns the factor and the link
    (M, R_e, size), directions = L M + Q_e R_e, that maps coefficients back."""
    L = factor.L
    k = L.shape[1]
    E = directions
    M = np.zeros((k, E.shape[1]))
    if k:
        c = scipy.linalg.cho_factor(L.T @ L, check_finite=False)
        for _ in range(2):  # twice is enough
            step = scipy.linalg.cho_solve(c, L.T @ E, check_finite=False)
            E = E - L @ step
            M += step
    Qe, Re = np.linalg.qr(E)
    size = float(factor.scale[-1]) if k else 1.0
    Lx = np.hstack([L, Qe * size])
    extended = PivotedFactor(
        Lx, factor.perm, np.concatenate([factor.scale, np.full(E.shape[1], size)])
    )
    return extended, (M, Re, size)


def _coefficients(rows: _RemainingRows, base: PivotedFactor, link, z, ext_rows, sigma):
    """theta coefficients alpha (in J's row space) with D J alpha = the fitted outputs L_x z:
    the extension's part of z maps to the directions' own theta vectors v_j / sigma_j, and the
    part of L it was made orthogonal to goes back to L's coefficients, which become
    J^T (D c) by :meth:`PivotedFactor.coefficients` (one reverse sweep)."""
    k = base.scale.size
    z = np.asarray(z, dtype=np.float64)
    zl = z[:k].copy()
    alpha = np.zeros(rows.num_params)
    if link is not None and z.size > k:
        M, Re, size = link
        y = scipy.linalg.solve_triangular(Re, size * z[k:], check_finite=False)
        zl -= M @ y
        alpha += ext_rows.T @ (y / sigma)
    if k:
        alpha += rows.products.jtu(base.coefficients(zl, rows.D)[:, None])[:, 0]
    return alpha


def _solve_with_profile(factor, k, rel_sigma, cholesky_cut, loss, data, rank_cut, cuts, solver):
    """The solve over every column (the span at ``rank_cut``) and the profile: a cut at or
    above the Cholesky cut keeps the factor's leading pivots (as the Gram strategy does), one
    below it all of L plus the extension directions with sigma > cut sigma_max (``rel_sigma``,
    non-increasing). Cuts keeping the main span's columns repeat its answer."""
    Y, weights, D = data
    tol, max_iter, start, n_threads = solver
    ncols = factor.L.shape[1]
    result, z = solve_on_factor(
        factor, loss, Y, weights, D, 0.0, (), tol, max_iter, start, n_threads=n_threads
    )
    profile = []
    for c in sorted({float(c) for c in cuts}, reverse=True):
        if c >= cholesky_cut:
            cols = int(np.sum(factor.scale[:k] > c * factor.scale[0])) if k else 0
        else:
            cols = k + int(np.sum(rel_sigma > c))
        if c <= rank_cut or cols == ncols:
            sub = result
        else:
            part = PivotedFactor(factor.L[:, :cols], factor.perm, factor.scale[:cols])
            sub, _ = solve_on_factor(
                part, loss, Y, weights, D, 0.0, (), tol, max_iter, None, n_threads=n_threads
            )
        profile.append(
            ProfileEntry(c, sub.rank, sub.value, sub.lower, sub.iterations, sub.attained)
        )
    return replace(result, profile=tuple(profile)), z


def _gain_along_jacobian(products: JacobianProducts, loss, Y, weights, fitted) -> float:
    """The most Phi can drop from ``fitted`` along the single direction J r, r = J^T u with
    u = w grad l(fitted) (SpanResolution.gain_along_jacobian): 0 when u is orthogonal to
    range(J), as it is in exact arithmetic at the optimum over range(J)."""
    F = np.asarray(fitted, dtype=np.float64).reshape(Y.shape)
    U = weights[:, None] * loss.gradient(F, Y)
    r = products.jtu(U.reshape(-1, 1))[:, 0]
    rr = float(r @ r)
    if rr == 0.0:
        return 0.0
    V = products.jv(r[:, None])[:, 0].reshape(Y.shape)
    H = loss.hessian(F, Y)
    curvature = float(np.einsum("i,ij,ijk,ik->", weights, V, H, V))
    return rr * rr / (2.0 * curvature) if curvature > 0.0 else math.inf
