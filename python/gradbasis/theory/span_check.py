"""L(theta) against the infimum of the induced model over a span that contains f_X(theta).

Theorems 2, 3 and 4 all have this shape: some basis B (the perturbable basis, possibly with
hand-made features x, z(x; u), h^(l) appended) spans a space that contains f_X(theta), and at a
local minimum the theorem says L(theta) = inf_a Phi(B a). The certificate is the one of
Theorem 1: with u_i = lambda_i grad l(f(x_i; theta), y_i), weak duality gives the infimum
>= L(theta) exactly when B^T u = 0, and by convexity L(theta) - Phi(F) <= <u, f_X(theta) - F>
for every F. ``B^T u`` is the *dual residual*: for B = J it is grad L; for the difference
quotients (J(theta + eps S_j) - J(theta)) / eps it is Lemma 3's quantity; for feature columns it
is the first-order condition the theorem implies. Its scale-free form (what one column alone
could still gain, :func:`gradbasis.certificate.column_drops`) is 0 at every local minimum.

:func:`perturbed_check` is the set-up Theorems 2, 3 and 4 share: directions, the perturbable
basis, the span check, the saddle test, the Lemma 3 residual confirmed at smaller steps, and
the verdict of :func:`gradbasis.certificate.judge`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .._numerics import safe_norm
from .._options import (
    nonnegative_number,
    open_unit_interval,
    positive_number,
    relative_cut,
    relative_cuts,
)
from ..errors import MemoryBudgetError, NonFiniteError
from ..objective import Objective, finite_value_and_gradient
from ..solve.induced import DEFAULT_CUTS, InducedResult, induced_minimum
from ..verdict import Verdict
from .certificate import Evidence, Stationarity, column_drops, judge, loss_curvature, stationarity
from .critical_points import hessian_extremes
from .perturbable import PerturbableBasis, perturbable_basis
from .perturbation import PerturbationSet, perturbation_directions

__all__ = [
    "FeatureBound",
    "PerturbedCheck",
    "SpanCheck",
    "check_span",
    "check_tolerances",
    "feature_bound",
    "judge_span",
    "kron_features",
    "perturbed_check",
    "saddle_reason",
]

#: Steps tried, as fractions of eps, before "theta is not a local minimum" is concluded from a
#: Lemma 3 residual: the residual must persist as eps shrinks (Lemma 3 holds for eps < eps_0).
CONFIRM_STEPS = (1.0, 0.1, 0.01)


def check_tolerances(
    rtol: object, grad_tol: object, rank_tol: object, cuts: object, curvature_tol: object = 0.0
) -> tuple[float, float, float | None, list[float], float]:
    """The tolerances every theorem check takes: rtol in (0, 1), grad_tol > 0 (a scale-free
    scale-free gain, see :func:`gradbasis.certificate.stationarity`), rank_tol None or a relative cut in
    [0, 1), cuts relative cuts, curvature_tol >= 0 (all finite)."""
    return (
        open_unit_interval(rtol, "rtol"),
        positive_number(grad_tol, "grad_tol"),
        None if rank_tol is None else relative_cut(rank_tol, "rank_tol"),
        relative_cuts(cuts),
        nonnegative_number(curvature_tol, "curvature_tol"),
    )


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
    relative_gradient: float  # scale-free criticality (gradbasis.certificate.stationarity)
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
    :class:`Stationarity` when the caller has it. Where L(theta) or its gradient overflow
    float64 no numbers are given: NonFiniteError says so.
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
    full = induced_minimum(B, obj.loss, obj.Y, obj.weights, rank_tol=rank_tol, cuts=cuts, start=f)
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
    """The verdict of :func:`gradbasis.certificate.judge` on a span check: ``residual`` is the
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


# ----------------------------------------------------------------------------- Theorems 2-4
@dataclass(frozen=True)
class PerturbedCheck:
    """What :func:`perturbed_check` found: the directions and basis at the step used, the span
    check over [features, T~] and over T alone, and the verdict.

    ``residual`` is the scale-free residual that vanishes at every local minimum: the most a
    single column of the difference quotients (Lemma 3) or of the features could still gain,
    relative to max(1, |L|) (:func:`gradbasis.certificate.column_drops`).
    ``eps`` is the step the verdict was judged at and ``eps_note`` how it was chosen (a Lemma 3
    residual that vanished at a smaller step means the first step was beyond eps_0).
    """

    verdict: Verdict
    reason: str
    S: PerturbationSet
    basis: PerturbableBasis
    check: SpanCheck
    gradient_basis: SpanCheck
    lemma3_residual: float  # max_j ||grad L(theta + eps S_j)|| = max_j ||J(theta + eps S_j)^T u||
    lemma3_drop: float  # scale-free Lemma 3 residual of the difference quotients (relative drop)
    feature_drop: float  # scale-free residual of the features (nan without features)
    residual: float
    eps: float
    eps_note: str
    min_eigenvalue: float
    judged_by: str
    seconds: dict


def _directions_at(
    obj: Objective, theta: np.ndarray, S: PerturbationSet | None, eps: float, opts: dict
) -> PerturbationSet:
    """S at step eps: built and verified by :func:`perturbation_directions`, or the user's S
    re-verified at the new step (a direction that moves f_X there is dropped)."""
    if S is None:
        return perturbation_directions(obj.model, theta, obj.X, eps=eps, **opts)
    if eps == S.eps:
        return S
    model = obj.model
    f0 = model.forward(theta, obj.X)
    keep = [
        j
        for j, v in enumerate(S.directions)
        if float(np.abs(model.forward(theta + eps * v, obj.X) - f0).max()) <= S.tol
    ]
    return PerturbationSet(
        directions=S.directions[keep],
        kinds=tuple(S.kinds[j] for j in keep),
        changes=S.changes[keep],
        eps=eps,
        tol=S.tol,
        candidates=S.candidates,
        truncated=S.truncated,
        rejected=S.rejected,
    )


def perturbed_check(
    obj: Objective,
    theta: np.ndarray,
    *,
    eps: float,
    S: PerturbationSet | None,
    direction_options: dict,
    rtol: float,
    grad_tol: float,
    rank_tol: float | None,
    cuts: Sequence[float],
    check_minimum: bool,
    curvature_tol: float,
    strategy: str,
    features: np.ndarray | None = None,
    feature_meaning: str = "",
    precondition: str | None = None,
) -> PerturbedCheck:
    """The check Theorems 2-4 share: L(theta) against the infimum over the numerical span of
    [features (x) I, J, D_1, ..., D_k, f_X(theta)] with the verdict of the one judge.

    Before "theta is not a local minimum" is concluded from a Lemma 3 residual above
    ``grad_tol``, the basis is rebuilt at eps / 10 and eps / 100: if the residual vanishes there,
    eps was beyond Lemma 3's eps_0 and the verdict is judged at the smaller step instead.
    ``strategy="gram"`` builds T~ from Gram matrices, which resolve only the directions above
    the Gram floor: where its numbers would allow "holds", the dense basis is built instead when
    it fits in memory, else the verdict is "consistent".
    """
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    model, d_y = obj.model, obj.model.output_dim
    L, grad, _ = finite_value_and_gradient(obj, theta)
    tol = rtol * max(1.0, abs(L))
    point = stationarity(obj, theta, grad, L)
    u = obj.residual_duals(theta)
    feats = kron_features(features, d_y) if features is not None else np.zeros((u.size, 0))
    H = loss_curvature(obj, obj.model.forward(theta, obj.X))
    scale = max(1.0, abs(L))
    feature_cos = float(column_drops(feats, u, H).max() / scale) if feats.shape[1] else float("nan")
    lam = float("nan")
    if precondition is None and check_minimum:
        precondition, lam = saddle_reason(obj, theta, point, grad_tol, tol, curvature_tol)
    seconds["point"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    confirm = point.critical(grad_tol, tol) and precondition is None and point.global_gap > tol
    tried: list[tuple[float, float]] = []
    chosen = None
    for frac in CONFIRM_STEPS:
        step = eps * frac
        S_step = _directions_at(obj, theta, S, step, direction_options)
        pb = perturbable_basis(
            model, theta, obj.X, S_step, rank_tol=rank_tol, strategy=strategy, duals=u, curvature=H
        )
        cos = float(pb.lemma3_drop) / scale
        tried.append((step, cos))
        if chosen is None:
            chosen = (S_step, pb)
        if not (confirm and cos > grad_tol):
            if frac != 1.0:
                chosen = (S_step, pb)  # the residual vanished at this smaller step: judge here
            break
    S_used, pb = chosen
    first_cos = tried[0][1]
    if len(tried) == 1:
        eps_note = f"eps = {eps:g}"
    elif tried[-1][1] > grad_tol:
        eps_note = "Lemma 3 residual persists at eps = " + ", ".join(
            f"{s:g} ({c:.3g})" for s, c in tried
        )
    else:
        eps_note = (
            f"at eps = {eps:g} the Lemma 3 residual was {first_cos:.3g} but it vanished at eps = {S_used.eps:g} "
            f"({tried[-1][1]:.3g}): eps was beyond Lemma 3's eps_0, so the check is judged at eps = {S_used.eps:g}"
        )
    seconds["basis"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    check = check_span(
        obj,
        theta,
        np.hstack([feats, pb.basis]),
        rtol=rtol,
        rank_tol=rank_tol,
        cuts=cuts,
        point=point,
    )
    n = u.size
    resolved, judged_by, note = True, strategy, ""
    if strategy == "gram" and check.rank < n:
        resolved = False
        note = f"the Gram path resolves T~ only above the Gram floor {pb.rank_tol:.2g} sigma_max"
        if check.gap <= tol:
            try:
                pb = perturbable_basis(
                    model,
                    theta,
                    obj.X,
                    S_used,
                    rank_tol=rank_tol,
                    strategy="dense",
                    duals=u,
                    curvature=H,
                )
            except MemoryBudgetError:
                pass
            else:
                check = check_span(
                    obj,
                    theta,
                    np.hstack([feats, pb.basis]),
                    rtol=rtol,
                    rank_tol=rank_tol,
                    cuts=cuts,
                    point=point,
                )
                resolved, judged_by, note = True, "dense", ""
    J_only = check_span(
        obj, theta, pb.jacobian_basis, rtol=rtol, rank_tol=rank_tol, cuts=(), point=point
    )
    seconds["induced"] = time.perf_counter() - t0
    l3 = max(
        (safe_norm(model.vjp(theta + S_used.eps * v, obj.X, u)) for v in S_used.directions),
        default=point.gradient_norm,
    )
    lemma_cos = float(pb.lemma3_drop) / scale
    parts = [c for c in (lemma_cos, feature_cos) if np.isfinite(c)]
    residual = max(parts) if parts else None
    meaning = "Lemma 3 residual of the perturbed Jacobians" + (
        f" or the residual of {feature_meaning}" if features is not None else ""
    )
    verdict, reason = judge_span(
        check,
        grad_tol=grad_tol,
        precondition=precondition,
        residual=residual,
        residual_meaning=meaning,
        resolved=resolved,
        unresolved_note=note,
    )
    if len(tried) > 1:
        reason += f" [{eps_note}]"
    return PerturbedCheck(
        verdict=verdict,
        reason=reason,
        S=S_used,
        basis=pb,
        check=check,
        gradient_basis=J_only,
        lemma3_residual=float(l3),
        lemma3_drop=lemma_cos,
        feature_drop=feature_cos,
        residual=float(residual) if residual is not None else float("nan"),
        eps=float(S_used.eps),
        eps_note=eps_note,
        min_eigenvalue=lam,
        judged_by=judged_by,
        seconds=seconds,
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
        scope=res.scope,
    )
