"""The squared loss over the span of a pivoted Cholesky factor: a least-squares projection.

Three ways to project b onto range(L_k), L_k the factor's leading k columns (every cut of the
profile is such a prefix), tried in this order:

* **triangular CG** (a plain Cholesky factor, whose top k x k block L11 is lower triangular):
  with y = L11 z and C = L21 L11^-1 the problem is min ||y - b1||^2 + ||C y - b2||^2, whose
  normal equations (I + C^T C) y = b1 + C^T b2 have every eigenvalue in [1, 1 + ||C||^2].
  Pivoting keeps C modest (where the left-out rows repeat kept ones, C^T C is about the
  number of repeats), so conjugate gradients converge in a few iterations, each two
  triangular solves and two products with L21: about 2 n k flops against n k^2 for the
  normal equations' Gram matrix. Given up (and the next method used) after ``CG_MAX_ITER``.
* **semi-normal equations** R^T R z = L_k^T b, R the Cholesky factor of L^T L (whose leading
  blocks serve every k), with one step of refinement; refused when L^T L is too
  ill-conditioned for Cholesky to keep half the digits.
* **Householder QR** of L: backward stable whatever the conditioning.

Every answer is checked (the residual must be orthogonal to range(L_k) to 1e-10 relative);
one that fails moves on to the next method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from scipy.linalg import blas

from .induced import InducedResult, ProfileEntry

__all__ = ["CG_MAX_ITER", "dual_bound", "squared_projection"]

#: Conjugate-gradient iterations before the triangular method gives way to the next one.
CG_MAX_ITER = 100
_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class _Projection:
    """Least squares on L's leading k columns: ``solve(k, b)`` gives (z, b - L_k z) and
    ``projected_norm(k, v)`` gives ||P_k v||, P_k the projector onto range(L_k)."""

    name: str
    solve: Callable[[int, np.ndarray], tuple[np.ndarray, np.ndarray]]
    projected_norm: Callable[[int, np.ndarray], float]


def _orthogonal(Lk: np.ndarray, res: np.ndarray, b: np.ndarray) -> bool:
    """Whether the residual is orthogonal to range(L_k) to 1e-10 relative to ||L_k|| ||b||
    (rounding leaves about sqrt(n) eps times the condition number of L_k). Relative to ||b||,
    not ||res||: where b lies in the span, res is rounding noise with no direction to check."""
    scale = float(np.linalg.norm(Lk)) * float(np.linalg.norm(b))
    return bool(np.linalg.norm(Lk.T @ res) <= 1e-10 * scale)


def _triangular_cg(L: np.ndarray) -> _Projection | None:
    """The triangular CG method (module docstring); None when L's top block is not triangular."""
    r = L.shape[1]
    if r == 0 or np.any(np.triu(L[:r, :r], 1)):
        return None

    blocks: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def split(k):
        """(L11, L21) for the prefix k, L11 copied once into Fortran order (triangular solves
        on a strided view would copy it on every call)."""
        if k not in blocks:
            blocks.clear()
            blocks[k] = (np.asfortranarray(L[:k, :k]), L[k:, :k])
        return blocks[k]

    def cg(k, rhs):
        L11, L21 = split(k)

        def apply(y):
            t = scipy.linalg.solve_triangular(L11, y, lower=True, check_finite=False)
            t = L21.T @ (L21 @ t)
            return y + scipy.linalg.solve_triangular(
                L11, t, lower=True, trans="T", check_finite=False
            )

        y = np.zeros(k)
        res = rhs.copy()
        p = res.copy()
        rr = float(res @ res)
        stop = (4.0 * _EPS) ** 2 * rr
        for _ in range(CG_MAX_ITER):
            if rr <= stop:
                return y
            q = apply(p)
            a = rr / float(p @ q)
            y += a * p
            res -= a * q
            rr_new = float(res @ res)
            p = res + (rr_new / rr) * p
            rr = rr_new
        return y if rr <= stop else None

    def once(k, b):
        L11, L21 = split(k)
        b1, b2 = b[:k], b[k:]
        c2 = scipy.linalg.solve_triangular(
            L11, L21.T @ b2, lower=True, trans="T", check_finite=False
        )
        y = cg(k, b1 + c2)
        if y is None:
            return None
        return scipy.linalg.solve_triangular(L11, y, lower=True, check_finite=False)

    def solve(k, b):
        Lk = L[:, :k]
        z = once(k, b)
        if z is None:
            raise _NotConverged
        res = b - Lk @ z
        dz = once(k, res)  # one step of refinement on the true residual
        if dz is None:
            raise _NotConverged
        z += dz
        return z, b - Lk @ z

    def projected_norm(k, v):
        z, res = solve(k, v)
        return float(np.linalg.norm(v - res))

    return _Projection("triangular_cg", solve, projected_norm)


class _NotConverged(Exception):
    """The triangular CG did not converge within CG_MAX_ITER iterations."""


def _semi_normal(L: np.ndarray) -> _Projection | None:
    """The semi-normal equations (module docstring); None when L^T L is too ill-conditioned
    (Cholesky fails, or loses more than half the digits)."""
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

    def projected_norm(k, v):  # ||Q_k^T v|| for the orthonormal Q_k = L_k R_k^-1
        t = scipy.linalg.solve_triangular(R[:k, :k], L[:, :k].T @ v, trans="T", check_finite=False)
        return float(np.linalg.norm(t))

    return _Projection("semi_normal", solve, projected_norm)


def _qr_projection(L: np.ndarray) -> _Projection:
    """Householder QR of L (Q_k R_k = L_k): backward stable whatever the conditioning."""
    Q, R = scipy.linalg.qr(L, mode="economic", check_finite=False)

    def solve(k, b):
        beta = Q[:, :k].T @ b
        res = b - Q[:, :k] @ beta
        return scipy.linalg.solve_triangular(R[:k, :k], beta, check_finite=False), res

    return _Projection("householder_qr", solve, lambda k, v: float(np.linalg.norm(Q[:, :k].T @ v)))


def _methods(L: np.ndarray):
    """The projections to try, in order, each built only when reached."""
    yield _triangular_cg
    yield _semi_normal
    yield _qr_projection


def _project(L: np.ndarray, k: int, b: np.ndarray, state: dict):
    """(z, residual, projection) by the first method whose answer passes the check; the method
    that worked is kept in ``state`` for the next cut."""
    methods = state.setdefault("methods", _methods(L))
    while True:
        proj = state.get("proj")
        if proj is None:
            proj = next(methods)(L)
            state["proj"] = proj
            if proj is None:
                continue
        try:
            z, res = proj.solve(k, b)
        except _NotConverged:
            z = None
        if z is not None and _orthogonal(L[:, :k], res, b):
            return z, res, proj
        if proj.name == "householder_qr":
            return z, res, proj  # backward stable: nothing better to fall back to
        state["proj"] = None


def dual_bound(loss, F, Y, w) -> float:
    """-sum_i w_i l*(u_i / w_i) at u = w grad l(F): the weak-duality bound when u is orthogonal
    to the span (it is, to rounding, at a least-squares projection); -inf outside the domain."""
    U = loss.gradient(F, Y)
    conj = loss.conjugate(U, Y)
    return float(-(w @ conj)) if np.all(np.isfinite(conj)) else -np.inf


def squared_projection(factor, loss, Y, w, D, cut, profile_cuts):
    """(main, profile entries, z): the projection of D y onto the span of the factor's leading
    columns at ``cut`` and at every profile cut; the fitted outputs (pivoted order, D-scaled)
    are L[:, :k] z. ``main.details["projection"]`` names the method that solved it."""
    L = factor.L
    n, r = L.shape
    b = (D * Y.ravel())[factor.perm]  # pivoted order
    state: dict = {}
    entries = []
    out = None
    for c in [*profile_cuts, cut]:
        k = factor.rank_at(c)
        proj = None
        if r and k:
            z, res, proj = _project(L, k, b, state)
        else:
            z, res = np.zeros(0), b.copy()
        F = np.empty(n)
        F[factor.perm] = b - res
        F = (F / D).reshape(Y.shape)
        value = float(w @ loss.value(F, Y))
        lower = min(dual_bound(loss, F, Y, w), value)
        entries.append(ProfileEntry(c, k, value, lower, 1 if k else 0, True))
        # Phi's gradient in the span: ||P_k D^-1 (w grad l(F))||
        g = ((w[:, None] * loss.gradient(F, Y)).ravel() / D)[factor.perm]
        gnorm = proj.projected_norm(k, g) if proj is not None else 0.0
        out = (k, value, lower, F, z, gnorm, proj)
    assert out is not None  # the loop ran at least for ``cut``
    k, value, lower, F, z, gnorm, proj = out
    main = InducedResult(
        value=value,
        lower=lower,
        alpha=np.zeros(0),
        fitted=F,
        rank=int(k),
        rank_tol=0.0,
        attained=True,
        converged=True,
        iterations=1 if k else 0,
        gradient_norm=gnorm,
        singular_values=np.zeros(0),
        profile=(),
        loss=loss.name,
        details={"projection": proj.name if proj is not None else "none"},
    )
    return main, entries[:-1], z
