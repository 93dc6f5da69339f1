"""The perturbable gradient basis: span[J(theta), J(theta + eps S_1), ..., J(theta + eps S_k)].

The span equals span[J(theta), D_1, ..., D_k] with the difference quotients
D_j = (J(theta + eps S_j) - J(theta)) / eps, which stay well scaled as eps shrinks (the
columns of J(theta + eps S_j) themselves differ from J's only by O(eps)). The basis is built as
T plus what the quotients add outside it: an orthonormal basis Q of T = range J (singular
values above ``rank_tol`` sigma_max(J)), then the parts (I - Q Q^T) D_j, kept compressed: after
every batch of directions the running matrix is replaced by U diag(sigma) from its thin SVD,
whose singular values are exactly those of the whole concatenation. Memory stays at
O(m d_y * (m d_y + batch * num_params)) however many directions S holds.

**The rank cut of the quotients.** J(theta + eps v) and J(theta) are each exact to rounding,
about eps_mach ||J||_2 per layer they pass through, and their difference divided by eps keeps
that absolute error: D_j carries rounding of about eps_mach ||J||_2 / eps, far above the usual
cut max(n, P) eps_mach sigma_max once eps is small (at eps = 1e-4 the rounding is 1e-12 relative
and would be counted as dozens of spurious directions). A direction of (I - Q Q^T)[D_1 ... D_k]
therefore enters T~ only above

    noise_cut = NOISE_FACTOR * sqrt(k) * depth * eps_mach * (||J||_2 / eps + max_j ||D_j||_F),

with k the number of directions (the spectral norm of k side-by-side rounding blocks is at
most sqrt(k) times the largest), depth the number of dense layers (each adds its rounding to
the chain rule), ||J||_2 + eps max_j ||D_j||_F a bound on every ||J(theta + eps S_j)||_2 (so a
zero J(theta) is no blind spot), and NOISE_FACTOR = 100 a margin: the largest rounding singular
value measured on deep linear nets (whose T~ is known exactly) is 0.7-4 eps_mach ||J||_2 / eps,
below 0.1 sqrt(k) depth eps_mach ||J||_2 / eps, so the cut sits three orders of magnitude above
it. A real direction that enters at second order in eps has sigma ~ eps ||d^2 J|| and stays far
above the cut for eps >> sqrt(NOISE_FACTOR sqrt(k) depth eps_mach) (about 1e-5); below that it is
indistinguishable from rounding. A direction that leaves J unchanged adds nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .._memory import budget_bytes, check_allocation
from .._options import Strategy, check_strategy, positive_step, relative_cut, show
from .._validation import as_directions, as_float_array, as_samples, as_theta, check_finite
from ..errors import GradbasisError, InvalidArgumentError, InvalidOptionError, ShapeError
from ..models.base import Model, check_model
from ..solve.induced import default_rank_tol
from .perturbation import PerturbationSet

__all__ = [
    "NOISE_FACTOR",
    "PerturbableBasis",
    "check_perturbation_set",
    "directions_and_step",
    "perturbable_basis",
    "perturbable_span",
    "quotient_noise",
]

NOISE_FACTOR = 100.0
_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class PerturbableBasis:
    """A basis of the perturbable gradient basis model's output space T~ (and of T).

    Dense strategy: ``basis`` (m d_y x dim T~) is [Q_T diag(sigma_T), U diag(sigma)] with
    Q_T diag(sigma_T) the part of J's SVD above ``rank_tol`` sigma_max(J) (``jacobian_basis``,
    dim T columns) and U diag(sigma) the directions of (I - Q_T Q_T^T)[D_1, ..., D_k] above
    ``cut``, sorted by singular value (``singular_values``). It is already truncated: an SVD of
    ``basis`` at a rounding-level cut gives dim T~ columns. ``cut`` = max(``rank_tol`` *
    sigma_max, ``noise_cut``) is the absolute singular-value cut of the quotients' directions
    (sigma_max of [J, (I - Q Q^T) D]), ``noise_cut`` the rounding floor of the quotients (module
    docstring) and ``noise_cut_relative`` = noise_cut / sigma_max. ``largest_discarded`` is the
    largest singular value of the quotients' part left out (rounding, when the noise cut
    decided): noise_cut / largest_discarded is the margin. ``growth[j]`` is dim T~ after the
    first j+1 batches, so a flat tail shows the span has saturated.

    With ``duals`` U (u_i = lambda_i grad l(f(x_i; theta))): ``lemma3_cosine`` = max over
    directions j and parameters k (columns with ||D_j[:, k]|| above the direction's noise level)
    of |D_j[:, k]^T u| / (||D_j[:, k]|| ||u||), the scale-free Lemma 3 residual (0 at a local
    minimum, since grad L(theta + eps S_j) = grad L(theta) = 0 there), and ``lemma3_residual`` =
    max_j ||D_j^T u||. With ``curvature`` H as well (H_i = lambda_i hess l(f(x_i)), shape
    (m, d_y, d_y)), ``lemma3_drop`` = max over the same columns of (|D_j[:, k]^T u| - rounding)_+^2
    / (2 D_j[:, k]^T H D_j[:, k]), the loss one such column alone could still gain (in loss units,
    invariant under rescaling a parameter), with rounding = the direction's noise level times
    ||u||. nan without duals (or curvature) or with the Gram strategy.

    Gram strategy: see :func:`perturbable_basis`; ``singular_values`` are those of the raw
    concatenation [J, J(theta + eps S_1), ...], and ``noise_cut`` the Gram floor in those units.
    """

    basis: np.ndarray = field(repr=False)
    jacobian_basis: np.ndarray = field(repr=False)  # Q_T diag(sigma_T): a basis of T
    singular_values: np.ndarray = field(repr=False)
    jacobian_singular_values: np.ndarray = field(repr=False)
    dim_T: int
    dim_T_tilde: int
    num_directions: int
    eps: float
    rank_tol: float
    growth: tuple[int, ...]
    noise_cut: float = 0.0
    noise_cut_relative: float = 0.0
    cut: float = 0.0
    largest_discarded: float = 0.0
    lemma3_cosine: float = float("nan")
    lemma3_residual: float = float("nan")
    lemma3_drop: float = float("nan")
    strategy: str = Strategy.DENSE

    def to_dict(self) -> dict:
        return {
            "dim_T": self.dim_T,
            "dim_T_tilde": self.dim_T_tilde,
            "num_directions": self.num_directions,
            "eps": self.eps,
            "rank_tol": self.rank_tol,
            "noise_cut": self.noise_cut,
            "noise_cut_relative": self.noise_cut_relative,
            "cut": self.cut,
            "largest_discarded": None
            if math.isnan(self.largest_discarded)
            else self.largest_discarded,
            "lemma3_cosine": None if math.isnan(self.lemma3_cosine) else self.lemma3_cosine,
            "lemma3_residual": None if math.isnan(self.lemma3_residual) else self.lemma3_residual,
            "lemma3_drop": None if math.isnan(self.lemma3_drop) else self.lemma3_drop,
            "strategy": str(self.strategy),
            "growth": list(self.growth),
        }


# ----------------------------------------------------------------------------- what S may be
def check_perturbation_set(S: object) -> PerturbationSet | None:
    """``S`` itself when it is None or a PerturbationSet (the S of Theorems 2-4, whose tolerance
    re-verifies it at smaller steps), else InvalidArgumentError."""
    if S is not None and not isinstance(S, PerturbationSet):
        raise InvalidArgumentError(
            f"S must be a PerturbationSet from perturbation_directions; got {type(S).__name__}"
        )
    return S


def directions_and_step(
    S: object,
    eps: object,
    num_params: int,
    shape_error: type[GradbasisError] = ShapeError,
) -> tuple[np.ndarray, float]:
    """The rows of S and the step they are taken at: a PerturbationSet's own (``eps``, when
    given, replaces its step), or a plain (k, num_params) array, which needs ``eps``.
    ``shape_error`` is the class raised for an array of the wrong shape."""
    if isinstance(S, PerturbationSet):
        return S.directions, positive_step(S.eps if eps is None else eps)
    directions = as_directions(S, num_params, "S", shape_error)
    if eps is None:
        raise InvalidOptionError("eps is required when S is a plain array")
    return directions, positive_step(eps)


# ----------------------------------------------------------------------------- the basis
def quotient_noise(
    jacobian_norm: float, eps: float, num_directions: int, depth: int, quotient_norm: float = 0.0
) -> float:
    """The absolute rounding floor of k difference quotients (J(theta + eps v) - J(theta)) / eps
    side by side: NOISE_FACTOR sqrt(k) depth eps_mach (||J||_2 / eps + max_j ||D_j||_F), see
    the module docstring. ``depth`` is the number of dense layers (at least 1)."""
    k = max(1, int(num_directions))
    return (
        NOISE_FACTOR
        * math.sqrt(k)
        * max(1, int(depth))
        * _EPS
        * (float(jacobian_norm) / float(eps) + float(quotient_norm))
    )


def model_depth(model: Model) -> int:
    """The number of dense layers (at least 1): the depth factor of :func:`quotient_noise`."""
    return model.depth


def _compress(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """U diag(s) and s of M's thin SVD, dropping exact zeros and directions at rounding level
    of the largest singular value (they carry no span information)."""
    if M.shape[1] == 0:
        return M, np.zeros(0)
    U, s, _ = np.linalg.svd(M, full_matrices=False)
    keep = s > (s[0] * _EPS if s.size else 0.0)
    return U[:, keep] * s[keep], s[keep]


def _curvature(curvature: object, m: int, d_y: int) -> np.ndarray | None:
    if curvature is None:
        return None
    H = as_float_array(curvature, "curvature")
    if H.shape != (m, d_y, d_y):
        raise ShapeError(
            f"curvature must be (m, d_y, d_y) = ({m}, {d_y}, {d_y}); got shape {H.shape}"
        )
    check_finite(H, "curvature")
    return H


def _max_drop(D: np.ndarray, r: np.ndarray, rounding: float, H: np.ndarray) -> float:
    """max_k (|r_k| - rounding)_+^2 / (2 q_k), q_k = D[:, k]^T blockdiag(H) D[:, k]: the loss a
    column alone could still gain under the second-order model (infinite for a gain above
    rounding along a column without curvature, 0 when the gain is within rounding)."""
    m, d = H.shape[0], H.shape[1]
    Ds = D.reshape(m, d, -1)
    q = np.einsum("ikp,ikl,ilp->p", Ds, H, Ds)
    num = np.maximum(np.abs(r) - rounding, 0.0)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        out = np.where(
            q > 0.0, num * num / (2.0 * np.where(q > 0.0, q, 1.0)), np.where(num > 0.0, np.inf, 0.0)
        )
    return float(out.max()) if out.size else 0.0


def _duals(duals: object, m: int, d_y: int) -> np.ndarray | None:
    if duals is None:
        return None
    U = as_float_array(duals, "duals")
    if U.shape != (m, d_y):
        raise ShapeError(f"duals must be (m, d_y) = ({m}, {d_y}); got shape {U.shape}")
    check_finite(U, "duals")
    return U.reshape(-1)


def perturbable_basis(
    model: Model,
    theta: object,
    X: object,
    S: PerturbationSet | np.ndarray,
    eps: float | None = None,
    *,
    rank_tol: float | None = None,
    batch: int = 8,
    memory_budget: int | None = None,
    strategy: str = "dense",
    duals: object | None = None,
    curvature: object | None = None,
) -> PerturbableBasis:
    """Build the perturbable basis from directions S (a :class:`PerturbationSet` or an
    array (k, num_params)) at step ``eps`` (default: the set's own eps).

    ``rank_tol`` is the relative singular-value cut for dim T (default max(m d_y, num_params) *
    machine eps, as for J alone); the directions the quotients add count towards dim T~ only
    above max(rank_tol * sigma_max, noise_cut) (module docstring). Directions are not
    re-verified here: pass a set from :func:`perturbation_directions` or check your own.
    ``duals`` (m, d_y), optional: u_i = lambda_i grad l(f(x_i; theta)) (e.g.
    ``Objective.residual_duals``), for the Lemma 3 residual of the quotients (``lemma3_cosine``,
    ``lemma3_residual``; dense strategy only). ``curvature`` (m, d_y, d_y), optional with duals:
    the loss Hessian blocks lambda_i hess l(f(x_i; theta)), for ``lemma3_drop``.

    ``strategy="gram"`` never forms a Jacobian: T~ is the range of K(theta) + sum_j K(theta + eps
    S_j) (a sum of positive semidefinite matrices has the sum of their ranges), built with the
    structured Gram kernel and eigendecomposed. Its floor: sigma = sqrt(lambda) below
    (n eps_mach)^(1/4) sigma_max of that sum is left out (eigenvector tilt from the Gram's
    rounding, see :mod:`gradbasis.strategies`), so directions that enter T~ only at second
    order in eps (sigma ~ eps^2 relative in the raw Jacobians) are missed below
    eps ~ (n eps_mach)^(1/8); ``rank_tol`` and ``noise_cut_relative`` report that relative floor
    (``noise_cut`` the absolute one, in the raw Jacobians' units), dim T is counted at the same
    relative floor of K(theta) alone, ``growth`` has one entry, and there is no Lemma 3 residual.
    """
    model = check_model(model)
    theta = as_theta(theta, model.num_params)
    X = as_samples(X, model.input_dim)
    directions, eps = directions_and_step(S, eps, model.num_params)
    strategy = check_strategy(strategy, (Strategy.DENSE, Strategy.GRAM), "perturbable_basis")
    if isinstance(batch, (bool, np.bool_)) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise InvalidOptionError(f"batch must be a positive integer; got {show(batch)}")
    if rank_tol is not None:
        rank_tol = relative_cut(rank_tol, "rank_tol")
    u = _duals(duals, X.shape[0], model.output_dim)
    H = _curvature(curvature, X.shape[0], model.output_dim) if u is not None else None
    return perturbable_span(
        model,
        theta,
        X,
        directions,
        eps,
        rank_tol=rank_tol,
        batch=int(batch),
        memory_budget=budget_bytes(memory_budget),
        strategy=strategy,
        duals=u,
        curvature=H,
    )


def perturbable_span(
    model: Model,
    theta: np.ndarray,
    X: np.ndarray,
    directions: np.ndarray,
    eps: float,
    *,
    rank_tol: float | None,
    strategy: str,
    batch: int = 8,
    memory_budget: int | None = None,
    duals: np.ndarray | None = None,
    curvature: np.ndarray | None = None,
) -> PerturbableBasis:
    """:func:`perturbable_basis` on checked inputs: theta, X and the directions (k, num_params)
    float64 arrays of the model's shapes, ``eps`` > 0, ``strategy`` "dense" or "gram", and the
    duals flattened to (m d_y,) with their curvature (m, d_y, d_y) (or None)."""
    n = X.shape[0] * model.output_dim
    P = model.num_params
    u, H = duals, curvature
    if strategy == Strategy.GRAM:
        return _gram_basis(model, theta, X, directions, eps, rank_tol, memory_budget)
    rank_tol = default_rank_tol((n, P)) if rank_tol is None else float(rank_tol)
    check_allocation(
        8 * n * (min(n, P) + (batch + 3) * P),
        f"the perturbable basis ({n} outputs, {P} parameters, batches of {batch} directions)",
        memory_budget,
        "use a smaller batch, fewer samples, or pass a memory_budget",
    )
    depth = model_depth(model)

    J = model.jacobian(theta, X)
    U_J, s_J, _ = np.linalg.svd(J, full_matrices=False)
    dim_T = int(np.sum(s_J > rank_tol * s_J[0])) if s_J.size and s_J[0] > 0 else 0
    Q = U_J[:, :dim_T]
    C_J, s_J = Q * s_J[:dim_T], s_J[:dim_T]
    j_norm = float(s_J[0]) if dim_T else 0.0
    u_norm = float(np.linalg.norm(u)) if u is not None else 0.0
    cosine, residual, drop = 0.0, 0.0, 0.0

    R, s_R = np.zeros((n, 0)), np.zeros(0)
    scratch = np.empty_like(J)
    growth = []
    d_norm, done = 0.0, 0

    def cut_at(k: int) -> tuple[float, float]:
        noise = quotient_noise(j_norm, eps, k, depth, d_norm) if k else 0.0
        top = max(j_norm, float(s_R[0]) if s_R.size else 0.0)
        return max(rank_tol * top, noise), noise

    for start in range(0, directions.shape[0], batch):
        block = [R]
        for v in directions[start : start + batch]:
            model.jacobian(theta + eps * v, X, out=scratch)
            D = (scratch - J) / eps
            fro = float(np.linalg.norm(D))
            d_norm = max(d_norm, fro)
            if u is not None:
                proj = D.T @ u
                residual = max(residual, float(np.linalg.norm(proj)))
                cols = np.linalg.norm(D, axis=0)
                level = quotient_noise(j_norm, eps, 1, depth, fro)
                live = cols > level
                if u_norm > 0 and live.any():
                    cosine = max(cosine, float(np.max(np.abs(proj[live]) / (cols[live] * u_norm))))
                    if H is not None:
                        drop = max(drop, _max_drop(D[:, live], proj[live], level * u_norm, H))
            block.append(D - Q @ (Q.T @ D) if dim_T else D)
        done += len(block) - 1
        R, s_R = _compress(np.hstack(block))
        growth.append(dim_T + int(np.sum(s_R > cut_at(done)[0])))
    cut, noise = cut_at(done)
    keep = s_R > cut
    largest_discarded = float(s_R[~keep].max()) if (~keep).any() else 0.0
    basis = np.hstack([C_J, R[:, keep]])
    sigma = np.concatenate([s_J, s_R[keep]])
    order = np.argsort(-sigma, kind="stable")
    top = max(j_norm, float(s_R[0]) if s_R.size else 0.0)
    return PerturbableBasis(
        basis=basis[:, order],
        jacobian_basis=C_J,
        singular_values=sigma[order],
        jacobian_singular_values=s_J,
        dim_T=dim_T,
        dim_T_tilde=int(basis.shape[1]),
        num_directions=int(directions.shape[0]),
        eps=eps,
        rank_tol=rank_tol,
        growth=tuple(growth),
        noise_cut=noise,
        noise_cut_relative=noise / top if top > 0 else 0.0,
        cut=cut,
        largest_discarded=largest_discarded,
        lemma3_cosine=cosine if u is not None else float("nan"),
        lemma3_residual=residual if u is not None else float("nan"),
        lemma3_drop=drop if H is not None else float("nan"),
        strategy=Strategy.DENSE,
    )


def _gram_basis(model, theta, X, directions, eps, rank_tol, memory_budget) -> PerturbableBasis:
    """T and T~ from Gram sums; every number reported at the Gram floor (see
    :func:`perturbable_basis`): ``rank_tol`` = ``noise_cut_relative`` = the relative sigma cut
    used for both, ``noise_cut`` = ``cut`` = that cut times sigma_max of the sum, and
    ``largest_discarded`` nan (the floor, far above rounding, decides)."""
    from ..solve.gram import output_basis_from_gram

    K = model.gram(theta, X, memory_budget=memory_budget)
    U_T, s_T, _ = output_basis_from_gram(K, rank_tol)
    for v in directions:
        K += model.gram(theta + eps * v, X, memory_budget=memory_budget)
    U, s, cut = output_basis_from_gram(K, rank_tol)
    top = float(s[0]) if s.size else 0.0
    return PerturbableBasis(
        basis=U * s,
        jacobian_basis=U_T * s_T,
        singular_values=s,
        jacobian_singular_values=s_T,
        dim_T=int(s_T.size),
        dim_T_tilde=int(s.size),
        num_directions=int(directions.shape[0]),
        eps=eps,
        rank_tol=cut,
        growth=(int(s.size),),
        noise_cut=cut * top,
        noise_cut_relative=cut,
        cut=cut * top,
        largest_discarded=float("nan"),
        strategy=Strategy.GRAM,
    )
