"""The gradient basis model's infimum by three strategies with one answer.

* ``dense`` — form J (m d_y x num_params) in C++ and solve over its SVD (:func:`induced_minimum`).
* ``gram`` — form K = J J^T (m d_y square) with the structured C++ kernel, never J, and
  factorise it by pivoted Cholesky (:func:`gradbasis.solve.gram.solve_gram_pivoted`): the
  squared loss is then a projection, the other losses run the same Newton solver on an
  orthonormal basis of the factor. The rank cut (``rank_tol``, at least (n eps)^(1/4) since K
  carries rounding of n eps lambda_max) bounds the part of J left out: each of its rows is
  within cut * the largest row norm of the kept span. Coefficients come back in theta
  coordinates by one reverse sweep (alpha = J^T beta, the representer form).
* ``matrix_free`` — only J v (forward mode) and J^T u (reverse mode): LSQR for the squared loss,
  trust-region Newton-CG for the others. Memory O(m sum_l d_l + num_params). The lower bound
  is weak duality at u = lambda grad l(J alpha), corrected for the dual residual rho = J^T u:
  Phi(J a) >= D(u) - ||rho|| ||a||, so ``lower`` bounds the infimum over coefficient vectors no
  longer than ``radius`` (reported), not over the whole span as the other two do. It counts
  as converged when the solver says so or when that certified gap is <= 1e-8 max(1, |value|)
  (trust-ncg may stop on rounding at a solved point).

``strategy="auto"`` estimates each strategy's memory and flops before allocating anything
(:func:`memory_estimate`) and runs, among those that fit the memory budget:

* on a small problem (every fitting factorisation under 1e9 flops, well under a second), dense
  when num_params <= 4 m d_y (J is not much wider than tall; the SVD gives the whole spectrum),
  else gram;
* otherwise the one with the fewest estimated flops, matrix_free's counted four times over: its
  iteration count is a guess (at most 500 LSQR steps; twenty times that for the losses solved
  by Newton-CG) and its lower bound covers a ball of coefficients, not the whole span.

An impossible request raises :class:`MemoryBudgetError` naming the sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.optimize
from scipy.sparse.linalg import LinearOperator, lsqr

from .._memory import available_memory, budget_bytes, format_bytes
from .._numerics import safe_norm
from .._options import (
    STRATEGIES,
    check_strategy,
    open_unit_interval,
    positive_int,
    relative_cut,
    relative_cuts,
)
from .._validation import as_theta
from ..errors import MemoryBudgetError
from ..objective import Objective, check_objective
from .gram import solve_gram_pivoted, solve_over_gram
from .induced import DEFAULT_CUTS, InducedResult, induced_minimum

__all__ = [
    "STRATEGIES",
    "MemoryEstimate",
    "memory_estimate",
    "choose_strategy",
    "gradient_basis_minimum",
]

_F = 8  # bytes per float64
SMALL_FLOPS = 1e9  # below this every factorisation is instant: choose by what it reports
MATRIX_FREE_PENALTY = 4.0  # matrix_free's flops are a guess and its bound is weaker
LSQR_STEPS = 500  # assumed LSQR iterations (at most min(m d_y, num_params))
NEWTON_CG_FACTOR = 20  # Newton-CG's Hessian-vector products per LSQR step, assumed
GAP_TOL = 1e-8  # matrix_free: a certified gap this small (relative) counts as converged


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak bytes (and estimated flops) each strategy needs for one gradient-basis solve,
    estimated before allocating."""

    dense: int
    gram: int
    matrix_free: int
    budget: int
    rows: int  # m * d_y
    params: int  # num_params
    flops: dict = field(default_factory=dict, compare=False)  # strategy -> estimated flops

    def fits(self, strategy: str) -> bool:
        return getattr(self, strategy) <= self.budget

    def describe(self) -> str:
        work = ", ".join(
            f"{s} ~{self.flops[s]:.2g}" for s in ("dense", "gram", "matrix_free") if s in self.flops
        )
        return (
            f"J is {self.rows} x {self.params}: dense needs {format_bytes(self.dense)}, gram "
            f"{format_bytes(self.gram)}, matrix_free {format_bytes(self.matrix_free)}; budget {format_bytes(self.budget)}"
            + (f" (estimated flops: {work})" if work else "")
        )


def memory_estimate(obj: Objective, memory_budget: int | None = None) -> MemoryEstimate:
    """Bytes for J and its factorisation (dense), K with room for an eigendecomposition (which
    Theorem 1's gram path computes; the pivoted Cholesky needs less) and the layer factors (gram), and the per-sample activations and a few vectors (matrix_free), with each
    strategy's estimated flops (``flops``; :func:`choose_strategy` says how they are used).
    ``memory_budget`` is a finite number of bytes (None: the memory available now)."""
    obj = check_objective(obj)
    memory_budget = budget_bytes(memory_budget)
    model = obj.model
    m, d = obj.num_samples, model.output_dim
    n = m * d
    P = model.num_params
    k = min(n, P)
    dense = _F * (2 * n * P + 3 * k * k + 4 * n)  # J, its QR/SVD copy, U/V factors
    gram = _F * (4 * n * n + model.gram_factor_floats(m) + 4 * n)  # K, eigh copy + vectors
    matrix_free = _F * (4 * model.activation_floats(m) + 12 * P + 12 * n)
    budget = available_memory() if memory_budget is None else memory_budget
    return MemoryEstimate(int(dense), int(gram), int(matrix_free), budget, n, P, _flops(obj, n, P))


def _flops(obj: Objective, n: int, P: int) -> dict:
    """Rough flop counts, rank taken as min(n, P) (an upper bound): J by one reverse sweep per
    output and its SVD (QR of the long side, then a k x k SVD); K by the structured kernel (one
    triangle) and its pivoted Cholesky, plus a projection (squared loss) or QR and ~10 Newton
    steps (other losses); LSQR steps of one J v and one J^T u each (~5 forward passes)."""
    m, d = obj.num_samples, obj.model.output_dim
    k = min(n, P)
    forward = obj.model.forward_flops(m)
    squared = obj.loss.name == "squared"
    newton = 0.0 if squared else 10.0 * (n * k * k + k**3 / 3.0)
    dense = 2.0 * d * forward + 4.0 * max(n, P) * k * k + 15.0 * k**3 + newton
    kernel = obj.model.gram_kernel_flops(m)
    factor = n * n * k - n * k * k + k**3 / 3.0
    gram = kernel + factor + (n * k * k if squared else 4.0 * n * k * k + newton)
    steps = min(k, LSQR_STEPS) * (1 if squared else NEWTON_CG_FACTOR)
    return {"dense": dense, "gram": gram, "matrix_free": 5.0 * forward * steps}


def choose_strategy(obj: Objective, memory_budget: int | None = None) -> tuple[str, MemoryEstimate]:
    """The strategy ``auto`` runs, and the estimate it was chosen from (rule in the module
    docstring)."""
    obj = check_objective(obj)
    est = memory_estimate(obj, memory_budget)
    fitting = [s for s in ("dense", "gram", "matrix_free") if est.fits(s)]
    if not fitting:
        raise MemoryBudgetError(
            f"no strategy fits: {est.describe()}. Use fewer samples per call, a larger memory_budget, or the "
            "distributed path (gradbasis.distributed) for data beyond one machine"
        )
    factorisations = [s for s in fitting if s != "matrix_free"]
    if factorisations and min(est.flops[s] for s in factorisations) <= SMALL_FLOPS:
        order = ["dense", "gram"] if est.params <= 4 * est.rows else ["gram", "dense"]
        return next(s for s in order if s in factorisations), est
    score = {
        s: est.flops[s] * (MATRIX_FREE_PENALTY if s == "matrix_free" else 1.0) for s in fitting
    }
    return min(fitting, key=lambda s: score[s]), est


def gradient_basis_minimum(
    obj: Objective,
    theta: object,
    *,
    strategy: str = "auto",
    memory_budget: int | None = None,
    rank_tol: float | None = None,
    cuts: Sequence[float] = DEFAULT_CUTS,
    tol: float = 1e-12,
    max_iter: int = 200,
) -> InducedResult:
    """inf_alpha sum_i lambda_i l((J(theta) alpha)_i, y_i) by the chosen strategy.

    Returns an :class:`InducedResult` whose ``alpha`` is in theta coordinates for every
    strategy, with ``strategy`` and ``details`` (iterations, residuals, the memory estimate)
    filled in. ``memory_budget`` (bytes, default the memory available now) bounds what a
    forced strategy may allocate too: an impossible request raises MemoryBudgetError.
    Every strategy checks the same options as :func:`induced_minimum`: ``rank_tol`` and
    ``cuts`` relative cuts in [0, 1), ``tol`` in (0, 1), ``max_iter`` a positive integer.
    The C++ kernels run on ``obj.n_threads`` threads (NumPy's and LAPACK's own threads are
    left as the environment sets them).
    """
    obj = check_objective(obj)
    theta = as_theta(theta, obj.model.num_params)
    check_strategy(strategy)
    rank_tol = None if rank_tol is None else relative_cut(rank_tol, "rank_tol")
    cuts = relative_cuts(cuts)
    tol = open_unit_interval(tol, "tol")
    max_iter = positive_int(max_iter, "max_iter")
    memory_budget = budget_bytes(memory_budget)
    if strategy == "auto":
        strategy, est = choose_strategy(obj, memory_budget)
    else:
        est = memory_estimate(obj, memory_budget)
        if not est.fits(strategy):
            raise MemoryBudgetError(f"strategy {strategy!r} does not fit: {est.describe()}")
    details = {
        "memory_estimate_bytes": getattr(est, strategy),
        "memory_budget_bytes": est.budget,
        "estimated_flops": est.flops[strategy],
    }
    threads = obj.n_threads or None
    if strategy == "dense":
        J = obj.model.jacobian(theta, obj.X, memory_budget=est.budget, n_threads=threads)
        res = induced_minimum(
            J,
            obj.loss,
            obj.Y,
            obj.weights,
            rank_tol=rank_tol,
            cuts=cuts,
            tol=tol,
            max_iter=max_iter,
            n_threads=obj.n_threads or None,
        )
    elif strategy == "gram":
        K = obj.model.gram(theta, obj.X, memory_budget=est.budget, n_threads=threads)
        res, beta = solve_gram_pivoted(
            K,
            obj.loss,
            obj.Y,
            obj.weights,
            rank_tol,
            cuts,
            tol,
            max_iter,
            n_threads=obj.n_threads or None,
        )
        del K
        res = replace(res, alpha=obj.model.vjp(theta, obj.X, beta, n_threads=threads))
        details.update(res.details)
    else:
        res, more = _matrix_free_solve(obj, theta, tol, max_iter)
        details.update(more)
    return replace(res, strategy=strategy, details=details)


# ----------------------------------------------------------------------------- gram
def gram_solve(
    obj: Objective,
    theta: np.ndarray,
    budget: int | None,
    rank_tol,
    cuts,
    tol: float,
    max_iter: int,
    *,
    with_output: bool = False,
):
    """The Gram strategy: (result with alpha in theta coordinates, U, sigma) where U diag(sigma)
    is the orthogonal output basis of the judged span. ``with_output`` adds f_X(theta) = J g(theta)
    as a column (exact, and in range(J) by Assumption 2) so that the span contains it even when
    the Gram cut leaves out directions it uses."""
    model, threads = obj.model, obj.n_threads or None
    K = model.gram(theta, obj.X, memory_budget=budget, n_threads=threads)
    f = model.forward(theta, obj.X, n_threads=threads).reshape(-1, 1) if with_output else None
    res, U, sigma, beta = solve_over_gram(
        K,
        obj.loss,
        obj.Y,
        obj.weights,
        rank_tol,
        cuts,
        tol,
        max_iter,
        extra=f,
        n_threads=obj.n_threads or None,
    )
    del K
    alpha = model.vjp(theta, obj.X, beta, n_threads=threads)  # J alpha = U diag(sigma) a
    if with_output:
        alpha = alpha + res.alpha[-1] * model.homogeneity(theta)
    return replace(res, alpha=alpha), U, sigma


# ----------------------------------------------------------------------------- matrix-free
def _matrix_free_solve(obj: Objective, theta: np.ndarray, tol: float, max_iter: int):
    model, X, Y, w = obj.model, obj.X, obj.Y, obj.weights
    m, d = Y.shape
    P = model.num_params
    sw = np.sqrt(w)[:, None]
    threads = obj.n_threads or None
    J = lambda v: model.jvp(theta, X, v, n_threads=threads)  # noqa: E731  (m, d)
    JT = lambda U: model.vjp(theta, X, U, n_threads=threads)  # noqa: E731  (P,)
    details: dict = {}
    if obj.loss.name == "squared":
        # min sum_i w_i ||(J a)_i - y_i||^2 = ||diag(sqrt w) (J a - y)||^2: least squares.
        A = LinearOperator(
            (m * d, P),
            matvec=lambda v: (sw * J(np.ravel(v))).ravel(),
            rmatvec=lambda u: JT(sw * np.reshape(u, (m, d))),
            dtype=np.float64,
        )
        out = lsqr(
            A,
            (sw * Y).ravel(),
            atol=1e-14,
            btol=1e-14,
            conlim=1e16,
            iter_lim=max(10 * max_iter, 2 * min(m * d, P)),
        )
        alpha = out[0]
        details.update(
            iterations=int(out[2]),
            lsqr_stop=int(out[1]),
            residual_norm=float(out[3]),
            normal_residual=float(out[7]),
        )
        converged = out[1] in (1, 2, 4, 5)
    else:

        def fun(a):
            F = J(a)
            return float(w @ obj.loss.value(F, Y)), JT(w[:, None] * obj.loss.gradient(F, Y))

        def hessp(a, v):
            H = obj.loss.hessian(J(a), Y)
            return JT(w[:, None] * np.einsum("ikl,il->ik", H, J(v)))

        out = scipy.optimize.minimize(
            fun,
            model.homogeneity(theta),
            jac=True,
            hessp=hessp,
            method="trust-ncg",
            options={"gtol": 1e-12, "maxiter": max_iter},
        )
        alpha = out.x
        details.update(iterations=int(out.nit), message=str(out.message))
        converged = bool(
            out.success
        )  # refined below: trust-ncg may stop on rounding at a solved point
    F = J(alpha)
    value = float(w @ obj.loss.value(F, Y))
    U = w[:, None] * obj.loss.gradient(F, Y)
    rho = JT(U)
    conj = obj.loss.conjugate(U / w[:, None], Y)
    dual = float(-(w @ conj)) if np.all(np.isfinite(conj)) else -np.inf
    radius = safe_norm(alpha)
    rho_norm = safe_norm(rho)
    lower = min(dual - rho_norm * radius, value) if radius > 0.0 else min(dual, value)
    # trust-ncg (and LSQR) may stop on rounding at a solved point; the certified gap decides then.
    converged = converged or value - lower <= GAP_TOL * max(1.0, abs(value))
    details.update(dual_residual=rho_norm, radius=radius, lower_scope="||alpha|| <= radius")
    attained = True  # squared and smoothed hinge terms reach their minimum at finite outputs
    if obj.loss.name == "cross_entropy":
        # The lower bound only covers ||alpha|| <= radius, so a closed interval alone does not
        # show the infimum is attained: along a separating direction Phi keeps falling as
        # ||alpha|| grows while the gradient shrinks with it. As in the dense solver, the
        # Newton decrement tells them apart: comparable to Phi itself on such a ray, negligible
        # next to it at an attained minimum.
        closes = converged and value - lower <= GAP_TOL * max(1.0, abs(value))
        H = obj.loss.hessian(F, Y)
        hess = lambda v: JT(w[:, None] * np.einsum("ikl,il->ik", H, J(v)))  # noqa: E731
        attained = closes and _newton_step_is_negligible(hess, rho, value, max_iter=min(P, 200))
    res = InducedResult(
        value=value,
        lower=lower,
        alpha=alpha,
        fitted=F,
        rank=-1,
        rank_tol=0.0,
        attained=attained,
        converged=converged,
        iterations=int(details["iterations"]),
        gradient_norm=rho_norm,
        singular_values=np.zeros(0),
        profile=(),
        loss=obj.loss.name,
    )
    return res, details


def _newton_step_is_negligible(hess, g: np.ndarray, value: float, *, max_iter: int) -> bool:
    """Whether the Newton decrement g^T H^+ g is <= 1e-6 * value (and value > 0), estimated by
    conjugate gradients on H z = g with a ridge of 1e-13 times the curvature along g.

    CG's estimates g^T z_k increase towards the decrement, so crossing the threshold decides
    "no" at once (on a separating ray the very first step does: the gradient points along a
    direction whose curvature is about Phi). Otherwise CG runs until its residual is 1e-6 of
    ||g|| (rounding stalls it not far below that when g itself is at rounding level) or for
    ``max_iter`` iterations, and the last estimate decides. A value of exactly 0 is underflow,
    not an attained minimum.
    """
    if not value > 0.0:
        return False
    threshold = 1e-6 * value
    gg = float(g @ g)
    if gg == 0.0:
        return True
    Hg = hess(g)
    ridge = 1e-13 * max(float(g @ Hg) / gg, 0.0)
    z = np.zeros_like(g)
    r = g.copy()
    p = g.copy()
    rr = gg
    Hp = Hg + ridge * p
    for _ in range(max_iter):
        pHp = float(p @ Hp)
        if not pHp > 0.0:  # no curvature along p: a direction of linear decrease
            return False
        step = rr / pHp
        z += step * p
        if float(g @ z) > threshold:
            return False
        r -= step * Hp
        rr_next = float(r @ r)
        if rr_next <= 1e-12 * gg:
            break
        p = r + (rr_next / rr) * p
        rr = rr_next
        Hp = hess(p) + ridge * p
    return float(g @ z) <= threshold
