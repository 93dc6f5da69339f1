"""L(theta) against the infimum of the induced model over a span that contains f_X(theta).

Theorems 2, 3 and 4 all have this shape: some basis B (the perturbable basis, possibly with
hand-made features x, z(x; u), h^(l) appended) spans a space that contains f_X(theta), and at a
local minimum the theorem says L(theta) = inf_a Phi(B a). The certificate is the one of
Theorem 1: with u_i = lambda_i grad l(f(x_i; theta), y_i), weak duality gives the infimum
>= L(theta) exactly when B^T u = 0, and by convexity L(theta) - Phi(F) <= <u, f_X(theta) - F>
for every F. ``B^T u`` is the *dual residual*: for B = J it is grad L; for the columns
(J(theta + eps S_j) - J(theta)) / eps it is (grad L(theta + eps S_j) - grad L(theta)) / eps,
Lemma 3's quantity; for feature columns it is the first-order condition the theorem implies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ._numerics import safe_norm
from ._options import nonnegative_number, open_unit_interval, positive_number, relative_cut, relative_cuts
from .errors import NonFiniteError
from .induced import DEFAULT_CUTS, InducedResult, induced_minimum
from .objective import Objective, finite_value_and_gradient
from .theorem1 import _responsible_directions
from .verdict import Verdict

__all__ = ["FeatureBound", "SpanCheck", "check_span", "check_tolerances", "feature_bound", "judge", "kron_features"]


def check_tolerances(
    rtol: object, grad_tol: object, rank_tol: object, cuts: object, curvature_tol: object = 0.0
) -> tuple[float, float, float | None, list[float], float]:
    """The tolerances every theorem check takes: rtol in (0, 1), grad_tol > 0, rank_tol None or
    a relative cut in [0, 1), cuts relative cuts, curvature_tol >= 0 (all finite)."""
    return (
        open_unit_interval(rtol, "rtol"),
        positive_number(grad_tol, "grad_tol"),
        None if rank_tol is None else relative_cut(rank_tol, "rank_tol"),
        relative_cuts(cuts),
        nonnegative_number(curvature_tol, "curvature_tol"),
    )


@dataclass(frozen=True)
class SpanCheck:
    """The numbers behind a span check (see :func:`check_span`)."""

    loss_value: float
    lower: float                 # certified lower end of the judged infimum
    value: float                 # upper end: Phi at the best point found
    gap: float                   # L(theta) - lower
    tol: float
    gradient_norm: float         # ||grad L(theta)||
    dual_residual: float         # ||B^T u|| over the whole basis
    first_order_bound: float     # <u, f_X(theta) - F*>: L - Phi(F*) can never exceed it
    kink_margin: float
    resolution: float            # singular values of B below this are not judged
    rank: int                    # rank of the judged span
    full_rank: int               # rank of B at rank_tol
    num_columns: int
    attained: bool
    profile: tuple = field(repr=False)
    full: InducedResult = field(repr=False)
    judged: InducedResult = field(repr=False)


def _resolution(obj: Objective, f: np.ndarray, residual: float, tol: float) -> float:
    """Smallest singular value of B a dual residual of this size lets us judge: along a unit
    output direction with singular value sigma, u has a component up to residual / sigma, which
    can lower Phi by about (residual / sigma)^2 / (2 h) (h the mean curvature of Phi per output);
    keeping that below tol needs sigma >= residual / sqrt(2 h tol)."""
    if residual == 0.0:
        return 0.0
    H = obj.loss.hessian(f, obj.Y)
    curvature = float(np.mean(obj.weights * np.trace(H, axis1=1, axis2=2) / H.shape[1]))
    return residual / np.sqrt(2.0 * max(curvature, np.finfo(float).tiny) * tol)


def check_span(
    obj: Objective,
    theta: np.ndarray,
    basis: np.ndarray,
    *,
    rtol: float = 1e-8,
    grad_tol: float = 1e-6,
    rank_tol: float | None = None,
    cuts: Sequence[float] = DEFAULT_CUTS,
) -> SpanCheck:
    """Certified interval for inf over span([basis, f_X(theta)]) and the bounds that explain a gap.

    f_X(theta) is appended as a column so the span contains it whatever the basis (the
    theorems' spans all do, by Assumption 2). At an approximate critical point (dual residual
    <= grad_tol) directions whose singular value is below the resolution of the residual are
    not judged, as in :func:`gradbasis.theorem1`; ``full`` keeps the answer over the whole span.
    Where L(theta) or its gradient overflow float64 no numbers are given: NonFiniteError says so.
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
    full = induced_minimum(B, obj.loss, obj.Y, obj.weights, rank_tol=rank_tol, cuts=cuts)
    resolution = _resolution(obj, f, residual, tol) if residual <= grad_tol else 0.0
    judged = full
    s = full.singular_values
    if resolution > 0.0 and s.size and resolution > full.rank_tol * s[0]:
        U, sv, _ = np.linalg.svd(basis, full_matrices=False)
        keep = sv > resolution
        judged = induced_minimum(np.hstack([U[:, keep] * sv[keep], f.reshape(-1, 1)]), obj.loss, obj.Y, obj.weights, cuts=())
    bound = float(u @ (f.ravel() - full.fitted.ravel()))
    return SpanCheck(
        loss_value=float(L),
        lower=judged.lower,
        value=judged.value,
        gap=float(L - judged.lower),
        tol=tol,
        gradient_norm=gnorm,
        dual_residual=residual,
        first_order_bound=bound,
        kink_margin=model.kink_margin(theta, obj.X),
        resolution=float(resolution),
        rank=judged.rank,
        full_rank=full.rank,
        num_columns=int(B.shape[1]),
        attained=judged.attained,
        profile=full.profile,
        full=full,
        judged=judged,
    )


def judge(
    c: SpanCheck, *, grad_tol: float, precondition: str | None = None, residual_meaning: str = "dual residual"
) -> tuple[Verdict, str]:
    """The four verdicts for "L(theta) equals the infimum over the span", in this order:

    * violated — the certified lower end exceeds L (impossible: f_X(theta) is in the span) or
      L - value exceeds the convexity bound <u, f - F*>: a bug or a broken assumption;
    * does not apply — theta in Omega, or ``precondition`` (a reason) names a failed hypothesis;
    * holds — L - lower <= tol and value <= L + tol;
    * does not apply — ||grad L|| > grad_tol (not a critical point), or the dual residual
      exceeds grad_tol at a critical point: then theta is no local minimum (at one, the theorem
      makes the residual 0), and the reason says so with ``residual_meaning``;
    * consistent — an approximate local minimum whose gap lies within the first-order bound.
    """
    L, tol = c.loss_value, c.tol
    if c.full.lower > L + tol:
        return Verdict.VIOLATED, (
            f"the certified infimum exceeds L(theta) by {c.full.lower - L:.3g}, but f_X(theta) is in the span"
        )
    if L - c.full.value > c.first_order_bound + tol + 1e-12 * abs(c.first_order_bound):
        return Verdict.VIOLATED, (
            f"L(theta) - value = {L - c.full.value:.3g} exceeds the convexity bound {c.first_order_bound:.3g}: "
            "the loss is not convex or a Jacobian is wrong"
        )
    if c.kink_margin == 0.0:
        return Verdict.DOES_NOT_APPLY, "theta is in Omega: a kinked unit has a pre-activation exactly 0"
    if precondition:
        return Verdict.DOES_NOT_APPLY, precondition
    if c.gap <= tol and c.value <= L + tol:
        return Verdict.HOLDS, f"L(theta) - lower = {c.gap:.3g} <= tol {tol:.3g}"
    if c.gradient_norm > grad_tol:
        return Verdict.DOES_NOT_APPLY, (
            f"not a critical point: ||grad L|| = {c.gradient_norm:.3g} > grad_tol {grad_tol:g} "
            f"(the infimum is {L - c.value:.3g} below L)"
        )
    if c.dual_residual > grad_tol:
        return Verdict.DOES_NOT_APPLY, (
            f"theta is not a local minimum: the {residual_meaning} is {c.dual_residual:.3g} > grad_tol {grad_tol:g}, "
            f"which is 0 at every local minimum, and the infimum is {L - c.value:.3g} below L"
        )
    band = _responsible_directions(c.profile, L, tol)
    return Verdict.CONSISTENT, (
        f"approximate local minimum: L - value = {L - c.value:.3g} within the first-order bound "
        f"{c.first_order_bound:.3g} (certified interval [{c.lower:.6g}, {c.value:.6g}]); {band}"
    )


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
    excess: float          # L(theta) - value: how much worse than the feature model L is (> 0 fails)
    residual: float        # ||Phi_features^T u||: 0 at every local minimum where the theorem applies

    def to_dict(self) -> dict:
        return dict(vars(self))


def kron_features(F: np.ndarray, d_y: int) -> np.ndarray:
    """Features (m, p) as a basis in Jacobian row order: column (q, k) is F[:, q] on output k."""
    return np.kron(F, np.eye(d_y))


def feature_bound(obj: Objective, theta: np.ndarray, name: str, F: np.ndarray, L: float, tol: float) -> FeatureBound:
    """The linear model on features F (m, p), every output its own coefficients."""
    B = kron_features(F, obj.model.output_dim)
    res = induced_minimum(B, obj.loss, obj.Y, obj.weights)
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
    )
