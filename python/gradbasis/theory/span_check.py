"""L(theta) against the infimum of the induced model over a span that contains f_X(theta).

Theorems 2, 3 and 4 all have this shape: some basis B (the perturbable basis, possibly with
hand-made features x, z(x; u), h^(l) appended) spans a space that contains f_X(theta), and at a
local minimum the theorem says L(theta) = inf_a Phi(B a). The certificate is the one of
Theorem 1: with u_i = lambda_i grad l(f(x_i; theta), y_i), weak duality gives the infimum
>= L(theta) exactly when B^T u = 0, and by convexity L(theta) - Phi(F) <= <u, f_X(theta) - F>
for every F. ``B^T u`` is the *dual residual*: for B = J it is grad L; for the difference
quotients (J(theta + eps S_j) - J(theta)) / eps it is Lemma 3's quantity; for feature columns it
is the first-order condition the theorem implies. Its scale-free form (what one column alone
could still gain, :func:`gradbasis.theory.certificate.column_drops`) is 0 at every local minimum.

The check Theorems 2, 3 and 4 build on these is in :mod:`gradbasis.theory._perturbed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .._numerics import safe_norm
from ..errors import NonFiniteError
from ..objective import Objective, finite_value_and_gradient
from ..solve.induced import DEFAULT_CUTS, InducedResult, induced_minimum
from ..verdict import Verdict
from .certificate import Evidence, Stationarity, judge, stationarity
from .critical_points import hessian_extremes

__all__ = [
    "FeatureBound",
    "SpanCheck",
    "check_span",
    "feature_bound",
    "judge_span",
    "kron_features",
    "saddle_reason",
]


@dataclass(frozen=True)
class SpanCheck:
    """The numbers behind a span check (see :func:`check_span`): the certified interval
    [lower, value] of the infimum over the numerical span of [basis, f_X(theta)] (``scope``)."""

    loss_value: float
    lower: float  # certified lower end of the infimum over the numerical span
    value: float  # upper end: Phi at the best point found
    gap: float  # L(theta) - lower
    tol: float
    gradient_norm: float  # ||grad L(theta)||
    relative_gradient: float  # scale-free criticality (gradbasis.theory.certificate.stationarity)
    dual_residual: float  # ||B^T u|| over the whole basis
    first_order_bound: float  # <u, f_X(theta) - F*>: L - Phi(F*) can never exceed it
    kink_margin: float
    rank: int  # rank of the judged (numerical) span
    num_columns: int
    attained: bool
    converged: bool
    scope: str
    profile: tuple = field(repr=False)
    full: InducedResult = field(repr=False)
    stationarity: Stationarity = field(repr=False)


def check_span(
    obj: Objective,
    theta: np.ndarray,
    basis: np.ndarray,
    *,
    rtol: float = 1e-8,
    rank_tol: float | None = None,
    cuts: Sequence[float] = DEFAULT_CUTS,
    point: Stationarity | None = None,
) -> SpanCheck:
    """Certified interval for inf over the numerical span of [basis, f_X(theta)].

    f_X(theta) is appended as a column so the span contains it whatever the basis (the
    theorems' spans all do, by Assumption 2), and the solve starts from it, so ``value`` never
    exceeds L(theta). The span is judged whole, at the rank cut ``rank_tol`` (default
    max(n, p) eps), never at a cut chosen from the gradient. ``point`` is theta's
    :class:`Stationarity` when the caller has it. ``theta`` and ``basis`` are checked float64
    arrays (theta as :func:`gradbasis._validation.as_theta` returns it, basis (m d_y, k)). Where
    L(theta) or its gradient overflow float64 no numbers are given: NonFiniteError says so.
    """
    model = obj.model
    L, grad, gnorm = finite_value_and_gradient(obj, theta)
    f = model.forward(theta, obj.X)
    u = (obj.weights[:, None] * obj.loss.gradient(f, obj.Y)).ravel()
    B = np.hstack([basis, f.reshape(-1, 1)])
    with np.errstate(over="ignore", invalid="ignore"):
        residual = safe_norm(basis.T @ u) if basis.shape[1] else 0.0
    if np.isnan(residual):
        raise NonFiniteError("the dual residual B^T u overflows float64; rescale the data or theta")
    tol = rtol * max(1.0, abs(L))
    full = induced_minimum(
        B,
        obj.loss,
        obj.Y,
        obj.weights,
        rank_tol=rank_tol,
        cuts=cuts,
        start=f,
        n_threads=obj.n_threads or None,
    )
    point = stationarity(obj, theta, grad, L) if point is None else point
    return SpanCheck(
        loss_value=float(L),
        lower=full.lower,
        value=full.value,
        gap=float(L - full.lower),
        tol=tol,
        gradient_norm=gnorm,
        relative_gradient=point.relative,
        dual_residual=residual,
        first_order_bound=max(
            float(u @ (f.ravel() - np.asarray(full.fitted).ravel())), 0.0
        ),  # >= 0 but for rounding
        kink_margin=model.kink_margin(theta, obj.X),
        rank=full.rank,
        num_columns=int(B.shape[1]),
        attained=full.attained,
        converged=full.converged,
        scope=full.scope or "the numerical span of the basis",
        profile=full.profile,
        full=full,
        stationarity=point,
    )


def judge_span(
    c: SpanCheck,
    *,
    grad_tol: float,
    precondition: str | None = None,
    residual: float | None = None,
    residual_meaning: str = "dual residual",
    resolved: bool = True,
    unresolved_note: str = "",
) -> tuple[Verdict, str]:
    """The verdict of :func:`gradbasis.theory.certificate.judge` on a span check: ``residual`` is the
    scale-free residual of the columns the theorem adds (0 at every local minimum)."""
    return judge(
        Evidence(
            loss_value=c.loss_value,
            tol=c.tol,
            lower=c.lower,
            value=c.value,
            converged=c.converged,
            resolved=resolved,
            scope=c.scope,
            first_order_bound=c.first_order_bound,
            kink_margin=c.kink_margin,
            stationarity=c.stationarity,
            grad_tol=grad_tol,
            precondition=precondition,
            residual=residual,
            residual_meaning=residual_meaning,
            unresolved_note=unresolved_note,
        )
    )


def saddle_reason(
    obj: Objective,
    theta: np.ndarray,
    point: Stationarity,
    grad_tol: float,
    tol: float,
    curvature_tol: float,
) -> tuple[str | None, float]:
    """A reason string when theta is a critical point with negative curvature (no local
    minimum, so Theorems 2-4 do not apply), and lambda_min of the Hessian (nan if not computed)."""
    if not point.critical(grad_tol, tol):
        return None, float("nan")
    lo, hi, method = hessian_extremes(obj, theta)
    if np.isnan(lo):  # Lanczos found no Ritz value: no claim about curvature either way
        return (
            f"whether theta is a local minimum is unknown: lambda_min(Hessian) was not found ({method} did not converge)",
            lo,
        )
    if lo < -curvature_tol * max(1.0, abs(hi)):
        return (
            f"theta is a saddle, not a local minimum: lambda_min(Hessian) = {lo:.3g} ({method})",
            lo,
        )
    return None, lo


@dataclass(frozen=True)
class FeatureBound:
    """inf over linear models on hand-made features (e.g. Shamir's alpha x) against L(theta).

    ``value``/``lower`` are the certified interval of inf_a sum_i lambda_i l(a phi(x_i), y_i);
    ``meets`` is L(theta) <= lower + tol: certified that L is no worse than the best such model.
    """

    name: str
    value: float
    lower: float
    num_features: int
    rank: int
    meets: bool
    excess: float  # L(theta) - value: how much worse than the feature model L is (> 0 fails)
    residual: float  # ||Phi_features^T u||: 0 at every local minimum where the theorem applies
    scope: str = ""  # the span [value, lower] cover: the features' numerical span and its cut

    def to_dict(self) -> dict:
        return dict(vars(self))


def kron_features(F: np.ndarray, d_y: int) -> np.ndarray:
    """Features (m, p) as a basis in Jacobian row order: column (q, k) is F[:, q] on output k."""
    return np.kron(F, np.eye(d_y))


def feature_bound(
    obj: Objective, theta: np.ndarray, name: str, F: np.ndarray, L: float, tol: float
) -> FeatureBound:
    """The linear model on features F (m, p), every output its own coefficients (``theta``
    and ``F`` checked float64 arrays)."""
    B = kron_features(F, obj.model.output_dim)
    res = induced_minimum(B, obj.loss, obj.Y, obj.weights, n_threads=obj.n_threads or None)
    u = obj.residual_duals(theta).ravel()
    return FeatureBound(
        name=name,
        value=res.value,
        lower=res.lower,
        num_features=int(F.shape[1]),
        rank=res.rank,
        meets=bool(L <= res.lower + tol),
        excess=float(L - res.value),
        residual=safe_norm(B.T @ u),
        scope=res.scope,
    )
