"""The induced convex model: the best loss reachable in the span of a basis matrix.

For a basis B (m*d_y x p, rows ordered like a Jacobian: row i*d_y + k is output k of
sample i) the induced problem is

    inf_a Phi(B a),    Phi(F) = sum_i lambda_i l(F_i, y_i),

a convex problem over range(B). With B = J(theta) this is Theorem 1's gradient basis
model; any other basis (features h^(l), [x, z(x; u)], concatenations) works the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import _core
from .._options import relative_cut, relative_cuts
from .._validation import as_float_array, as_threads, as_weights, check_finite
from ..errors import InvalidOptionError, ShapeError
from ..losses import Loss, get_loss

__all__ = ["InducedResult", "ProfileEntry", "induced_minimum", "DEFAULT_CUTS"]

#: Relative singular-value cuts reported in every profile.
DEFAULT_CUTS = (1e-12, 1e-9, 1e-6, 1e-3)


@dataclass(frozen=True)
class ProfileEntry:
    """The infimum over the span of the singular directions with sigma > cut * sigma_max."""

    cut: float
    rank: int
    value: float
    lower: float
    iterations: int
    attained: bool

    @classmethod
    def from_core(cls, entry: _core.InducedSolve, cut: float | None = None) -> ProfileEntry:
        """The entry of a profile the C++ solver returned (at ``cut`` when given)."""
        return cls(
            entry.cut if cut is None else cut,
            int(entry.rank),
            entry.value,
            entry.lower,
            int(entry.iterations),
            bool(entry.attained),
        )


@dataclass(frozen=True)
class InducedResult:
    """Two-sided answer for inf_a Phi(B a) over the numerical span of B.

    ``lower <= inf <= value``: ``value`` is Phi at ``fitted`` (= B ``alpha``) and ``lower``
    is the weak-duality bound -sum_i lambda_i l*(u_i / lambda_i) at a dual point u orthogonal
    to the span (exactly, up to rounding). Both refer to the span at ``rank_tol`` (relative:
    directions with sigma <= rank_tol * sigma_max are left out), which ``scope`` states in
    words; ``profile`` repeats the solve at other cuts. ``attained`` is False when the
    infimum is only approached as ||alpha|| grows without bound (e.g. separable
    cross-entropy): then ``value`` is the best value reached and ``lower`` still holds (it
    may then be the trivial bound from u = 0). The dual point is checked against the
    conjugates' domains exactly, except the cross-entropy sum constraint (sum_k s_k = 0 for
    each sample), which no floating-point vector meets exactly and which is allowed a
    rounding-level slack of 16 d_y eps (sum_k y_k + sum_k |s_k|).

    Cross-entropy ignores a constant added to one sample's logits, so it is solved over the
    centred span P span(B) (P removes each sample's mean output) of the same ``rank``
    singular directions; only the directions P kills drop out (up to rounding: those along
    which P B moves by at most max(n, rank) eps sigma_max per unit of coefficients).
    ``fitted`` is then the smallest point of the span whose centred part is the centred
    optimum: it differs from it by a per-sample constant, which changes no loss value.
    """

    value: float
    lower: float
    alpha: np.ndarray = field(repr=False)
    fitted: np.ndarray = field(repr=False)
    rank: int
    rank_tol: float
    attained: bool
    converged: bool
    iterations: int
    gradient_norm: float
    singular_values: np.ndarray = field(repr=False)
    profile: tuple[ProfileEntry, ...]
    loss: str
    strategy: str = "dense"
    details: dict = field(default_factory=dict, repr=False)
    #: What ``lower`` and ``value`` cover, in words (the span, its cut and what was left out).
    scope: str = ""

    @property
    def gap(self) -> float:
        """value - lower: how far the interval is from pinning the infimum down."""
        return self.value - self.lower

    def to_dict(self) -> dict:
        return {
            "value": self.value,
            "lower": self.lower,
            "gap": self.gap,
            "rank": self.rank,
            "rank_tol": self.rank_tol,
            "attained": self.attained,
            "converged": self.converged,
            "iterations": self.iterations,
            "gradient_norm": self.gradient_norm,
            "loss": self.loss,
            "strategy": self.strategy,
            "details": dict(self.details),
            "scope": self.scope,
            "sigma_max": float(self.singular_values[0]) if self.singular_values.size else 0.0,
            "profile": [vars(p) for p in self.profile],
        }

    def __str__(self) -> str:
        lines = [
            f"induced minimum ({self.loss}): value {self.value:.12g}, lower {self.lower:.12g}, gap {self.gap:.3g}",
            f"  rank {self.rank} at relative cut {self.rank_tol:.3g}; attained {self.attained}; "
            f"{self.iterations} Newton iterations, |grad| {self.gradient_norm:.3g}",
            f"  {'cut':>9}  {'rank':>6}  {'value':>20}  {'lower':>20}",
        ]
        for p in self.profile:
            lines.append(f"  {p.cut:9.1e}  {p.rank:6d}  {p.value:20.12g}  {p.lower:20.12g}")
        return "\n".join(lines)


def default_rank_tol(shape: tuple[int, int]) -> float:
    """max(n, p) * machine epsilon: the usual numerical-rank cut (as numpy.linalg.matrix_rank)."""
    return max(shape) * float(np.finfo(np.float64).eps)


def induced_minimum(
    basis: object,
    loss: Loss | str,
    Y: object,
    weights: object | None = None,
    *,
    rank_tol: float | None = None,
    cuts: Sequence[float] = DEFAULT_CUTS,
    tol: float = 1e-12,
    max_iter: int = 200,
    start: object | None = None,
    n_threads: int | None = None,
) -> InducedResult:
    """Minimise sum_i lambda_i l((B a)_i, y_i) over a for a basis matrix B.

    An SVD of B gives an orthonormal basis of its range; the problem is solved by damped,
    regularised Newton with Armijo line search in those coordinates (exact in one step for
    the squared loss), stopping when the duality gap value - lower is <=
    ``tol * max(1, |value|)`` (or when no step decreases Phi at working precision, or after
    ``max_iter`` iterations per cut).

    Parameters
    ----------
    basis : (m*d_y, p) array; rows ordered like a Jacobian.
    loss : a loss object or name; ``Y`` (m, d_y) targets valid for it.
    weights : lambda_i > 0, default 1/m.
    rank_tol : relative singular-value cut of the main answer (default max(n, p) * eps).
    cuts : further relative cuts reported in ``profile``.
    start : optional outputs F0, shape (m, d_y) or (m*d_y,), finite, known to lie
        (numerically) in the span, typically f_X(theta). At every cut the solve starts from
        whichever of F0's projection onto the span and the previous cut's optimum has the
        lower Phi, and ``value`` never exceeds Phi at that projection.
    n_threads : threads of the solver's parallel products (None: every available thread);
        the result does not depend on it.
    """
    loss = get_loss(loss)
    B = as_float_array(basis, "basis")
    Y = loss.check_targets(Y)
    m, d = Y.shape
    if B.ndim != 2 or B.shape[0] != m * d:
        raise ShapeError(
            f"basis must be 2-D with m*d_y = {m * d} rows (rows ordered like J); got shape {B.shape}"
        )
    if B.shape[1] == 0:
        raise ShapeError("basis has no columns")
    check_finite(B, "basis")
    w = as_weights(weights, m)
    rank_tol = default_rank_tol(B.shape) if rank_tol is None else relative_cut(rank_tol, "rank_tol")
    cut_list = relative_cuts(cuts)
    if not (0.0 < tol < 1.0):
        raise InvalidOptionError(f"tol must lie in (0, 1); got {tol!r}")
    if int(max_iter) < 1:
        raise InvalidOptionError(f"max_iter must be positive; got {max_iter!r}")
    F0 = as_start(start, m, d)
    threads = as_threads(n_threads)
    raw = _core.induced_minimum(
        B,
        loss.core_loss,
        Y,
        w,
        rank_tol,
        cut_list,
        float(tol),
        int(max_iter),
        F0,
        n_threads=threads,
    )
    main = raw.main
    profile = tuple(ProfileEntry.from_core(p) for p in raw.profile)
    sigma = np.asarray(raw.singular_values)
    return InducedResult(
        value=main.value,
        lower=main.lower,
        alpha=np.asarray(raw.alpha),
        fitted=np.asarray(raw.fitted),
        rank=int(main.rank),
        rank_tol=rank_tol,
        attained=bool(main.attained),
        converged=bool(main.converged),
        iterations=int(main.iterations),
        gradient_norm=main.gradient_norm,
        singular_values=sigma,
        profile=profile,
        loss=loss.name,
        scope=span_scope(
            sigma, int(main.rank), B.shape[1], rank_tol, loss.name, int(main.solve_rank)
        ),
    )


def as_start(start: object | None, m: int, d: int) -> np.ndarray | None:
    """The warm start as a flat (m*d_y,) float64 vector (sample-major), or None."""
    if start is None:
        return None
    F0 = as_float_array(start, "start")
    if F0.shape not in ((m, d), (m * d,)):
        raise ShapeError(
            f"start must have shape ({m}, {d}) or ({m * d},), the outputs f_X; got shape {F0.shape}"
        )
    check_finite(F0, "start")
    return np.ascontiguousarray(F0.reshape(-1))


def span_scope(
    sigma: np.ndarray,
    rank: int,
    columns: int,
    cut: float,
    loss: str = "",
    solve_rank: int | None = None,
) -> str:
    """What an induced solve over the numerical span of a basis with singular values ``sigma``
    (descending) at relative cut ``cut`` covers, in words."""
    if sigma.size == 0 or not sigma[0] > 0.0:
        text = f"the span {{0}}: B (with {columns} column(s)) is zero"
    else:
        left = int(sigma.size) - rank
        text = (
            f"span of the {rank} singular direction(s) of B with sigma > {cut:.2g} * sigma_max "
            f"(numerical rank {rank} of {columns} columns; {left} direction(s) at or below the cut left out)"
        )
    if loss == "cross_entropy" and solve_rank is not None:
        text += (
            f"; cross-entropy ignores per-sample constant shifts, solved over the {solve_rank}-dimensional "
            "centred span"
        )
    return text
