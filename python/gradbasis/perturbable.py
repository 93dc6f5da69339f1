"""The perturbable gradient basis: span[J(theta), J(theta + eps S_1), ..., J(theta + eps S_k)].

The span equals span[J(theta), D_1, ..., D_k] with the difference quotients
D_j = (J(theta + eps S_j) - J(theta)) / eps, which stay well scaled as eps shrinks (the
columns of J(theta + eps S_j) themselves differ from J's only by O(eps)). Only the range in
R^{m d_y} matters, so the concatenation is kept compressed: after every batch of directions
the running matrix [C, D_j, ...] is replaced by U diag(sigma) from its thin SVD, whose
singular values are exactly those of the whole concatenation. Memory stays at
O(m d_y * (m d_y + batch * num_params)) however many directions S holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._memory import budget_bytes, check_allocation
from ._options import positive_step, relative_cut, show
from ._validation import as_float_array, as_samples, as_theta, check_finite
from .errors import InvalidOptionError, ShapeError, UnknownNameError
from .induced import default_rank_tol
from .models.base import Model, check_model
from .perturbation import PerturbationSet

__all__ = ["PerturbableBasis", "perturbable_basis"]


@dataclass(frozen=True)
class PerturbableBasis:
    """A basis of the perturbable gradient basis model's output space T~ (and of T).

    ``basis`` (m d_y x r) is U diag(sigma) of the concatenation [J, D_1, ..., D_k]; its singular
    values are ``singular_values``. ``dim_T`` = rank J and ``dim_T_tilde`` = rank of the
    concatenation, both at the relative cut ``rank_tol``. ``growth[j]`` is dim T~ after the
    first j+1 batches, so a flat tail shows the span has saturated.
    """

    basis: np.ndarray = field(repr=False)
    jacobian_basis: np.ndarray = field(repr=False)   # U diag(sigma) of J alone: a basis of T
    singular_values: np.ndarray = field(repr=False)
    jacobian_singular_values: np.ndarray = field(repr=False)
    dim_T: int
    dim_T_tilde: int
    num_directions: int
    eps: float
    rank_tol: float
    growth: tuple[int, ...]

    def to_dict(self) -> dict:
        return {
            "dim_T": self.dim_T,
            "dim_T_tilde": self.dim_T_tilde,
            "num_directions": self.num_directions,
            "eps": self.eps,
            "rank_tol": self.rank_tol,
            "growth": list(self.growth),
        }


def _rank(s: np.ndarray, rank_tol: float) -> int:
    return int(np.sum(s > rank_tol * s[0])) if s.size and s[0] > 0 else 0


def _compress(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """U diag(s) and s of M's thin SVD, dropping exact zeros and directions at rounding level
    of the largest singular value (they carry no span information)."""
    U, s, _ = np.linalg.svd(M, full_matrices=False)
    keep = s > (s[0] * np.finfo(np.float64).eps if s.size else 0.0)
    return U[:, keep] * s[keep], s[keep]


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
) -> PerturbableBasis:
    """Build the perturbable basis from directions S (a :class:`PerturbationSet` or an
    array (k, num_params)) at step ``eps`` (default: the set's own eps).

    ``rank_tol`` is the relative singular-value cut for dim T and dim T~ (default
    max(m d_y, num_params) * machine eps, as for J alone). Directions are not re-verified here:
    pass a set from :func:`perturbation_directions` or check your own.

    ``strategy="gram"`` never forms a Jacobian: T~ is the range of K(theta) + sum_j K(theta + eps
    S_j) (a sum of positive semidefinite matrices has the sum of their ranges), built with the
    structured Gram kernel and eigendecomposed. Directions with sigma below the Gram floor
    (n eps)^(1/4) sigma_max are left out (see :mod:`gradbasis.strategies`), so directions that
    enter T~ only at second order in eps may be missed; ``growth`` then has one entry.
    """
    model = check_model(model)
    theta = as_theta(theta, model.num_params)
    X = as_samples(X, model.input_dim)
    if isinstance(S, PerturbationSet):
        directions = S.directions
        eps = S.eps if eps is None else eps
    else:
        directions = as_float_array(S, "S")
        if directions.ndim != 2 or directions.shape[1] != model.num_params:
            raise ShapeError(f"S must be (k, num_params = {model.num_params}); got shape {directions.shape}")
        check_finite(directions, "S")
        if eps is None:
            raise InvalidOptionError("eps is required when S is a plain array")
    eps = positive_step(eps)
    if strategy not in ("dense", "gram"):
        raise UnknownNameError(f"perturbable_basis strategy must be 'dense' or 'gram'; got {strategy!r}")
    if isinstance(batch, (bool, np.bool_)) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise InvalidOptionError(f"batch must be a positive integer; got {show(batch)}")
    n = X.shape[0] * model.output_dim
    P = model.num_params
    if rank_tol is not None:
        rank_tol = relative_cut(rank_tol, "rank_tol")
    memory_budget = budget_bytes(memory_budget)
    if strategy == "gram":
        return _gram_basis(model, theta, X, directions, eps, rank_tol, memory_budget)
    rank_tol = default_rank_tol((n, P)) if rank_tol is None else float(rank_tol)
    check_allocation(
        8 * n * (min(n, P) + (int(batch) + 2) * P),
        f"the perturbable basis ({n} outputs, {P} parameters, batches of {batch} directions)",
        memory_budget,
        "use a smaller batch, fewer samples, or pass a memory_budget",
    )

    J = model.jacobian(theta, X)
    C, s_J = _compress(J)
    C_J = C
    scratch = np.empty_like(J)
    growth = []
    s = s_J
    for start in range(0, directions.shape[0], int(batch)):
        block = [C]
        for v in directions[start : start + int(batch)]:
            model.jacobian(theta + eps * v, X, out=scratch)
            block.append((scratch - J) / eps)
        C, s = _compress(np.hstack(block))
        growth.append(_rank(s, rank_tol))
    return PerturbableBasis(
        basis=C,
        jacobian_basis=C_J,
        singular_values=s,
        jacobian_singular_values=s_J,
        dim_T=_rank(s_J, rank_tol),
        dim_T_tilde=_rank(s, rank_tol),
        num_directions=int(directions.shape[0]),
        eps=eps,
        rank_tol=rank_tol,
        growth=tuple(growth),
    )


def _gram_basis(model, theta, X, directions, eps, rank_tol, memory_budget) -> PerturbableBasis:
    from .gram_solver import output_basis_from_gram

    K = model.gram(theta, X, memory_budget=memory_budget)
    U_T, s_T, cut = output_basis_from_gram(K, rank_tol)
    for v in directions:
        K += model.gram(theta + eps * v, X, memory_budget=memory_budget)
    U, s, _ = output_basis_from_gram(K, rank_tol)
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
    )
