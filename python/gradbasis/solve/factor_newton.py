"""Newton over the span of a large factor (non-squared losses), at the cost of a few products.

The span is range(L_k), L (n x r) a pivoted Cholesky factor of K, possibly extended by further
mutually orthogonal columns orthogonal to it (with small norms). One round of Cholesky QR of
L with its columns scaled to unit norm gives Q = L_k T^-1 (T upper triangular), orthonormal to
about eps cond^2 (a second round runs when that is not below 1e-6, i.e. cond above ~1e5):
only Level-3 BLAS, and the column scaling keeps small trailing columns from spoiling the
conditioning. Q's leading columns span L's leading ones, so the profile's cuts stay prefixes.
Newton runs in Q's coordinates: the Hessian Q^T H Q is formed (one single-precision SYRK of
S^T Q, H_i = S_i S_i^T per sample) only when the previous one stops being a good
preconditioner, and each Newton system is solved by conjugate gradients preconditioned with
the Cholesky factor of that matrix: each inner iteration reads Q twice. The dual point is
u = g - H Q z (the gradient predicted after the step), clipped to the conjugates' domain and
projected off the span until Q^T u is below Q's accuracy (so ``lower`` is a weak-duality
bound whatever the precision of the preconditioner).

Cross-entropy ignores a per-sample constant (Phi(F) = Phi(P F), P removing each sample's
mean). Only directions v of the span whose centred part P Q v is at the rounding of the basis
carry nothing but noise (the rule of :func:`gradbasis.induced_minimum`: sigma <= max(n, k) eps
||v / s|| or sigma <= gram_rounding ||v s_0^2 / s^2||, s the columns' scales, the second term
only over K's own Cholesky columns, not over an extension's); they are found
without an SVD of the whole span: the per-sample means M of Q (m x k) give ||P Q v||^2 =
1 - ||M v||^2, so only the right singular vectors of M with ||M v|| near 1 can qualify, and
the centred parts along those few are resolved by an SVD of P Q V_c (n x c, c <= m). Newton
runs on the complement of the dropped directions; the dual point keeps its per-sample sums
(it is projected off P Q, which spans the same centred space).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from scipy.linalg import blas, lapack

_EPS = float(np.finfo(np.float64).eps)
_RIDGE_FLOOR, _MU_START, _MU_MAX, _FLAT_STEP = 1e-13, 1e-10, 1e8, 1e-3
_MAX_LOGIT = 4096.0
_CANDIDATE = 0.99  # ||M v||^2 above this: centred part below 0.1, resolved explicitly


class Basis:
    """Q (n x k, rows in sample order, Fortran) with L_k = Q T in pivoted row order."""

    def __init__(self, L: np.ndarray, perm: np.ndarray):
        n, k = L.shape
        norms = np.sqrt(np.einsum("ij,ij->j", L, L)) if k else np.zeros(0)
        norms[norms == 0.0] = 1.0
        Q = np.empty((n, k), order="F")
        order = np.argsort(perm)  # sample order from pivoted order, a column at a time (fast)
        for j in range(k):
            np.multiply(L[:, j].take(order), 1.0 / norms[j], out=Q[:, j])
        T: np.ndarray | None = None  # L_k = Q T: the column norms, then Cholesky factors
        if k == 0:
            self.Q, self.T = Q, np.zeros((0, 0))
            return
        try:
            for round_ in range(2):
                G = blas.dsyrk(1.0, Q, trans=1, lower=0)
                if round_ == 1 and np.max(np.abs(np.triu(G) - np.eye(k))) > 0.5:
                    raise np.linalg.LinAlgError("first round too far from orthogonal")
                R = scipy.linalg.cholesky(G, lower=False, overwrite_a=True, check_finite=False)
                Q = blas.dtrsm(1.0, R, Q, side=1, lower=0, overwrite_b=1)
                T = R * norms if T is None else R @ T  # (a product only in round two)
                # Orthogonality left by one round: about eps cond(R)^2 (LAPACK's estimate).
                rcond = lapack.dtrcon(R, norm="1", uplo="U", diag="N")[0]
                if rcond > 0.0 and _EPS / rcond**2 < 1e-6:
                    break
        except np.linalg.LinAlgError:
            Lo = np.empty((n, k))
            Lo[perm] = L
            Q, T = scipy.linalg.qr(Lo, mode="economic", check_finite=False)
        self.Q = np.asfortranarray(Q)
        self.T = T if T is not None else np.zeros((0, 0))

    def coefficients(self, beta: np.ndarray) -> np.ndarray:
        """z with L[:, :k] z = Q[:, :k] beta (k = beta.size)."""
        k = beta.size
        return scipy.linalg.solve_triangular(self.T[:k, :k], beta, check_finite=False)


def gram_columns(L: np.ndarray) -> int:
    """The number of leading columns that are K's Cholesky columns (lower trapezoidal): further
    columns (an extension of the factor) are resolved without K's rounding."""
    k = L.shape[1]
    j = k
    while j > 1 and np.any(L[: j - 1, j - 1]):
        j -= 1
    return j


def _right_singular(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(s^2, V): M's squared singular values and right singular vectors, from the eigenvectors
    of the smaller Gram matrix (GEMM and a small symmetric eigensolver; accurate to about eps
    ||M||^2 in s^2, all the candidates' test and the oblique projection need)."""
    m, k = M.shape
    if k <= m:
        lam, V = scipy.linalg.eigh(M.T @ M, check_finite=False)
        return np.clip(lam, 0.0, None), V
    lam, U = scipy.linalg.eigh(M @ M.T, check_finite=False)
    lam = np.clip(lam, 0.0, None)
    keep = lam > 1e-24 * max(float(lam[-1]), 1e-300)
    V = (M.T @ U[:, keep]) / np.sqrt(lam[keep])
    return lam[keep], V


class Space:
    """The solve space at rank k: Q[:, :k] less, for cross-entropy, the directions whose
    centred part is rounding (``drop``, orthonormal k x q), and the oblique projection that
    makes a dual point orthogonal to the span."""

    def __init__(self, Q, k, d, centred, scale, n_gram, rounding):
        n = Q.shape[0]
        self.Qk = Q[:, :k]
        self.k, self.d, self.centred = k, d, centred
        inv = scale[0] / scale[:k] if k else np.zeros(0)
        gram_w = np.where(np.arange(k) < n_gram, inv**2, 0.0)
        base = max(64.0, 2.0 * np.sqrt(n)) * _EPS
        self.noise = base + rounding * gram_w
        self.drop = np.zeros((k, 0))
        self.fix = None
        if not centred or k == 0:
            return
        m = n // d
        M = self.Qk.reshape(m, d, k).sum(axis=1) / np.sqrt(d)  # A^T Q, A orthonormal constants
        sm2, Vm = _right_singular(M)
        cand = sm2 > _CANDIDATE
        Vc = Vm[:, cand]  # (k, c)
        other = ~cand & (sm2 > 1e-12)  # below: I - M^T M is 1 there to rounding
        Vo, so2 = Vm[:, other], sm2[other]
        if Vc.shape[1]:
            C = self.Qk @ Vc
            C -= np.repeat(C.reshape(m, d, -1).mean(axis=1), d, axis=0)
            # Householder QR then the SVD of the small triangle: C's singular values to
            # rounding (a Gram matrix would not resolve those below sqrt(eps)).
            Rc = scipy.linalg.qr(C, mode="r", check_finite=False)[0][: C.shape[1]]
            _, sc, WT = scipy.linalg.svd(Rc, check_finite=False)
            V = Vc @ WT.T  # directions in Q coordinates, by centred part sc
            svd_noise = max(n, k) * _EPS * np.linalg.norm(V * inv[:, None], axis=0)
            gram_noise = rounding * np.linalg.norm(V * gram_w[:, None], axis=0)
            dropped = (sc <= svd_noise) | (sc <= gram_noise)
            self.drop = V[:, dropped]
            kept, skept = V[:, ~dropped], sc[~dropped]
        else:
            kept, skept = np.zeros((k, 0)), np.zeros(0)
        # (Q^T P Q)^+ on the kept space: I - M^T M, inverted in M's singular directions.
        self.fix = (Vo, 1.0 / (1.0 - so2) - 1.0, Vc, kept, 1.0 / skept**2)

    def restrict(self, v: np.ndarray) -> np.ndarray:
        return v - self.drop @ (self.drop.T @ v) if self.drop.shape[1] else v

    def centre(self, x: np.ndarray) -> np.ndarray:
        if not self.centred:
            return x
        X = x.reshape(-1, self.d)
        return (X - X.mean(axis=1, keepdims=True)).ravel()

    def project_off(self, u: np.ndarray, t: np.ndarray) -> np.ndarray:
        """u less its component in the (centred) span, given t = restrict(Q^T u)."""
        if self.fix is not None:
            Vo, fo, Vc, kept, fk = self.fix
            x = t + Vo @ (fo * (Vo.T @ t)) - Vc @ (Vc.T @ t) + kept @ (fk * (kept.T @ t))
        else:
            x = t
        return u - self.centre(self.Qk @ x)


class Problem:
    """Phi and its derivatives at outputs F (n-vector, sample order)."""

    def __init__(self, loss, Y, w):
        self.loss, self.Y, self.w = loss, Y, w
        self.m, self.d = Y.shape

    def value(self, F):
        return float(self.w @ self.loss.value(F.reshape(self.m, self.d), self.Y))

    def gradient(self, F):
        return (self.w[:, None] * self.loss.gradient(F.reshape(self.m, self.d), self.Y)).ravel()

    def hessian(self, F):
        return self.w[:, None, None] * self.loss.hessian(F.reshape(self.m, self.d), self.Y)

    def hess_times(self, Hs, x):
        return np.einsum("iab,ib->ia", Hs, x.reshape(self.m, self.d)).ravel()

    def dual(self, u):
        conj = self.loss.conjugate(u.reshape(self.m, self.d) / self.w[:, None], self.Y)
        return float(-(self.w @ conj)) if np.all(np.isfinite(conj)) else -np.inf

    def clip(self, u):
        """u_i <- w_i clip(u_i / w_i) into the conjugate's domain (as the core solver does)."""
        S = u.reshape(self.m, self.d) / self.w[:, None]
        name = self.loss.name
        if name == "cross_entropy":
            P = S + self.Y
            neg = P < 0.0
            if neg.any():
                added = np.where(neg, -P, 0.0).sum(axis=1)
                S = np.where(neg, -self.Y, S)
                top = np.argmax(S + self.Y, axis=1)
                S[np.arange(self.m), top] -= added
        elif name == "smoothed_hinge":
            S = np.where(self.Y * S > 0.0, 0.0, S)
        return (self.w[:, None] * S).ravel()


def hessian_matrix(Q, prob: Problem, F, Hs, single: bool) -> np.ndarray:
    """Q^T H Q (upper triangle, float64) for H = blockdiag(Hs) = S S^T per sample: one SYRK of
    S^T Q, in single precision when ``single`` (it only preconditions: about three times
    faster). Cross-entropy's blocks are w M (diag(p) - p p^T) = S S^T with S = sqrt(w M)
    (diag(sqrt p) - p sqrt(p)^T), so S^T Q_i = sqrt(w M p) (Q_i - 1 p^T Q_i): two passes."""
    m, d = prob.m, prob.d
    k = Q.shape[1]
    W = np.empty((m * d, k), order="F", dtype=np.float32 if single else np.float64)
    Qv, Wv = Q.reshape(m, d, k), W.reshape(m, d, k)
    if prob.loss.name == "cross_entropy":
        Fm = F.reshape(m, d)
        P = np.exp(Fm - Fm.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        root = np.sqrt(P * (prob.w * prob.Y.sum(axis=1))[:, None])
        t = P[:, 0, None] * Qv[:, 0, :]
        for a in range(1, d):
            t += P[:, a, None] * Qv[:, a, :]
        for a in range(d):
            np.subtract(Qv[:, a, :], t, out=Wv[:, a, :], casting="same_kind")
            Wv[:, a, :] *= root[:, a, None].astype(W.dtype)
    else:
        lam, V = np.linalg.eigh(Hs)
        S = V * np.sqrt(np.clip(lam, 0.0, None))[:, None, :]  # H_i = S_i S_i^T
        for a in range(d):  # W_i = S_i^T Q_i, row a at a time
            row = S[:, 0, a, None] * Qv[:, 0, :]
            for b in range(1, d):
                row += S[:, b, a, None] * Qv[:, b, :]
            Wv[:, a, :] = row
    syrk = blas.ssyrk if single else blas.dsyrk
    return np.asarray(syrk(1.0, W, trans=1, lower=0), dtype=np.float64, order="F")


class Preconditioner:
    """Cholesky factor of Q^T H0 Q + ridge (+ h along the dropped directions) at a recent
    point (A: its upper triangle, overwritten)."""

    def __init__(self, A, space: Space):
        h = max(float(np.max(np.diagonal(A))), np.finfo(np.float64).tiny) if A.size else 1.0
        if space.drop.shape[1]:  # A is near-null along them (P Q v ~ 0): curvature h there
            Dd = space.drop
            A += h * (Dd @ Dd.T)
        self.diag = np.diagonal(A).copy()
        self.h = h
        self.A = A
        self.factor = None

    def refactor(self, ridge):
        A = self.A
        np.fill_diagonal(A, self.diag + ridge)
        self.factor = scipy.linalg.cho_factor(A, lower=False, check_finite=False)

    def __call__(self, v):
        return scipy.linalg.cho_solve(self.factor, v, check_finite=False)


def _factored(prob, space, F, Hs, mu, gradient_ridge, single=True):
    """The preconditioner at F with the ridge max(1e-13, mu) h + gradient_ridge: from the
    single-precision Hessian first, the double-precision one when that is not positive
    definite; None when neither is."""
    for one in (True, False) if single else (False,):
        pre = Preconditioner(hessian_matrix(space.Qk, prob, F, Hs, one), space)
        try:
            pre.refactor(max(_RIDGE_FLOOR, mu) * pre.h + gradient_ridge)
            return pre
        except np.linalg.LinAlgError:
            continue
    return None


def pcg(apply, b, precond, rtol, max_iter):
    """(x, iterations, converged): conjugate gradients on apply(x) = b."""
    x = np.zeros_like(b)
    r = b.copy()
    bn = float(np.linalg.norm(b))
    if bn == 0.0:
        return x, 0, True
    z = precond(r)
    p = z.copy()
    rz = float(r @ z)
    for it in range(1, max_iter + 1):
        Ap = apply(p)
        pAp = float(p @ Ap)
        if not pAp > 0.0:
            return x, it, False
        a = rz / pAp
        x += a * p
        r -= a * Ap
        if np.linalg.norm(r) <= rtol * bn:
            return x, it, True
        z = precond(r)
        rz_new = float(r @ z)
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x, max_iter, False


class Solve:
    """One cut's outcome (the fields of a profile entry) and its coordinates beta in Q."""

    def __init__(self, rank, beta, value, lower, iterations, converged, attained, grad_norm):
        self.rank, self.beta, self.value, self.lower = rank, beta, value, lower
        self.iterations, self.converged, self.attained = iterations, converged, attained
        self.gradient_norm = grad_norm


def newton(prob: Problem, space: Space, beta, tol, max_iter):
    """Damped, regularised Newton with Armijo backtracking on phi(beta) = Phi(Q beta) over the
    solve space, as the core solver runs it (ridge max(1e-13, mu) h + 1e3 ||g|| noise, the
    Levenberg-Marquardt factor mu, the logit cap and the attained test are the same), with
    each Newton system solved by preconditioned conjugate gradients."""
    Q, k = space.Qk, space.k
    n = Q.shape[0]
    capped = prob.loss.name == "cross_entropy"
    beta = space.restrict(beta)
    F = Q @ beta
    value = prob.value(F)
    trivial = prob.dual(np.zeros(n))
    mu, it, at_cap, converged = 0.0, 0, False, False
    pre, stale = None, True
    b0 = None
    z = np.zeros(k)
    b = np.zeros(k)
    lower = trivial

    def certify(u):
        for _ in range(64):
            u = prob.clip(u)
            t = space.restrict(Q.T @ u)
            if np.all(np.abs(t) <= space.noise * np.linalg.norm(u)):
                return max(prob.dual(u), trivial)
            u = space.project_off(u, t)
        return trivial

    def solve_newton(Hs, b, ridge, rtol):
        def apply(v):
            v = space.restrict(v)  # symmetric: Pi (Q^T H Q + diag(ridge)) Pi
            return space.restrict(Q.T @ prob.hess_times(Hs, Q @ v) + ridge * v)

        x, its, ok = pcg(apply, b, pre, rtol, 60)
        return space.restrict(x), its, ok

    while True:
        g = prob.gradient(F)
        if k == 0:
            lower = max(prob.dual(g), trivial)
            converged = value - lower <= tol * max(1.0, abs(value))
            break
        Hs = prob.hessian(F)
        b = space.restrict(Q.T @ g)
        bn = float(np.linalg.norm(b))
        b0 = bn if b0 is None else b0
        gradient_ridge = float(np.linalg.norm(g)) / _FLAT_STEP * space.noise
        if pre is None or stale:
            pre = _factored(prob, space, F, Hs, mu, gradient_ridge)
            while pre is None:  # not positive definite at working precision: a larger ridge
                if mu >= _MU_MAX:
                    raise np.linalg.LinAlgError("Newton system not positive definite")
                mu = max(100.0 * mu, _MU_START)
                pre = _factored(prob, space, F, Hs, mu, gradient_ridge, single=False)
        ridge = max(_RIDGE_FLOOR, mu) * pre.h + gradient_ridge
        rtol = max(min(1e-2, bn / b0), 1e-13)
        z, its, ok = solve_newton(Hs, b, ridge, rtol)
        stale = its > 15 or not ok
        step = Q @ z
        lower = certify(g - prob.hess_times(Hs, step))
        if value - lower <= tol * max(1.0, abs(value)):
            converged = True
            break
        if it >= max_iter:
            break
        accepted, accepted_t = False, 0.0
        while True:
            decrement = float(b @ z)
            at_cap = False
            t = 1.0
            for _ in range(60):
                if not decrement > 0.0:
                    break
                trial_F = F - t * step
                if capped and np.max(np.abs(space.centre(trial_F))) > _MAX_LOGIT:
                    at_cap = True
                    t *= 0.5
                    continue
                trial = prob.value(trial_F)
                if trial < value and trial <= value - 1e-4 * t * decrement:
                    beta = beta - t * z
                    F, value, accepted, accepted_t = trial_F, trial, True, t
                    break
                t *= 0.5
            hopeless = decrement <= 4.0 * _EPS * abs(value)
            if accepted or at_cap or hopeless or mu >= _MU_MAX:
                break
            mu = max(100.0 * mu, _MU_START)  # a shorter, more gradient-like step
            ridge = max(_RIDGE_FLOOR, mu) * pre.h + gradient_ridge
            pre.refactor(ridge)
            z, its, ok = solve_newton(Hs, b, ridge, rtol)
            step = Q @ z
        it += 1
        if not accepted:
            converged = not at_cap
            break
        if accepted_t == 1.0:
            mu = 0.1 * mu if mu > 10.0 * _RIDGE_FLOOR else 0.0
    F = Q @ beta
    value = prob.value(F)
    decrement = float(b @ z)
    step_size = float(np.max(np.abs(Q @ z))) if k else 0.0
    settles = not capped or (value > 0.0 and decrement <= 1e-6 * value and step_size <= 1e-2)
    attained = converged and settles and not at_cap
    return Solve(
        k, beta, value, min(lower, value), it, converged, attained, float(np.linalg.norm(b))
    )


def solve_cuts(factor, loss, Y, w, cuts, tol, max_iter, start, rounding):
    """Solves at every cut (largest first: each span contains the previous one, whose optimum
    warm-starts the next, as may ``start``). Returns the solves and the basis."""
    L = factor.L
    d = Y.shape[1]
    k_max = max(factor.rank_at(c) for c in cuts)
    basis = Basis(L[:, :k_max], factor.perm)
    n_gram = gram_columns(L[:, :k_max])
    prob = Problem(loss, Y, w)
    centred = loss.name == "cross_entropy"
    beta = np.zeros(0)
    solves = []
    for c in cuts:
        k = factor.rank_at(c)
        if solves and k == solves[-1].rank:  # the same span: the same answer
            prev = solves[-1]
            solves.append(
                Solve(
                    k,
                    prev.beta,
                    prev.value,
                    prev.lower,
                    0,
                    prev.converged,
                    prev.attained,
                    prev.gradient_norm,
                )
            )
            continue
        space = Space(basis.Q, k, d, centred, factor.scale, n_gram, rounding)
        Qk = space.Qk
        warm = np.zeros(k)
        warm[: min(k, beta.size)] = beta[:k]
        warm = space.restrict(warm)
        start_beta = None
        if start is not None and k:
            s = np.asarray(start, dtype=np.float64).reshape(-1)
            start_beta = Qk.T @ s
            start_beta += Qk.T @ (s - Qk @ start_beta)  # one refinement: Q is orthonormal to ~1e-6
            start_value = prob.value(Qk @ start_beta)
            candidate = space.restrict(start_beta)
            if prob.value(Qk @ candidate) < prob.value(Qk @ warm):
                warm = candidate
        solve = newton(prob, space, warm, tol, max_iter)
        if start_beta is not None and not solve.value <= start_value:
            solve.beta, solve.value = start_beta, start_value
            solve.lower = min(solve.lower, start_value)
        beta = solve.beta
        solves.append(solve)
    return solves, basis
