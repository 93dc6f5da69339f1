"""What Theorems 2, 3 and 4 share: their options, the check at theta and the numbers reported.

All three ask whether L(theta) equals the infimum over a span that holds the perturbable
gradient basis (plus, for Theorems 3 and 4, hand-made features), with the same options
(:class:`PerturbedOptions`), by the same check (:func:`perturbed_check`: directions, the
perturbable basis, the span check, the saddle test, the Lemma 3 residual confirmed at smaller
steps and the verdict of :func:`gradbasis.theory.certificate.judge`), and report the same numbers
(:class:`PerturbedResult`), to which each theorem adds its own.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from .._numerics import safe_norm
from .._options import (
    Strategy,
    check_seed,
    check_strategy,
    check_tolerances,
    finite_nonnegative,
    nonnegative_whole,
    positive_step,
)
from ..errors import MemoryBudgetError
from ..objective import Objective, finite_value_and_gradient
from ..solve.induced import DEFAULT_CUTS
from ..verdict import Verdict
from .certificate import column_drops, loss_curvature, stationarity
from .perturbable import PerturbableBasis, check_perturbation_set, perturbable_span
from .perturbation import KINDS, PerturbationSet, check_kinds, verified_directions
from .span_check import SpanCheck, check_span, judge_span, kron_features, saddle_reason

__all__ = [
    "CONFIRM_STEPS",
    "PerturbedCheck",
    "PerturbedOptions",
    "PerturbedResult",
    "listed_after",
    "perturbed_check",
]

#: Steps tried, as fractions of eps, before "theta is not a local minimum" is concluded from a
#: Lemma 3 residual: the residual must persist as eps shrinks (Lemma 3 holds for eps < eps_0).
CONFIRM_STEPS = (1.0, 0.1, 0.01)


# ----------------------------------------------------------------------------- options
@dataclass(frozen=True)
class PerturbedOptions:
    """The options of Theorems 2-4, checked when made: each field holds its value as checked
    (a bad one raises the error the theorems have always raised for it). The theorems' keyword
    arguments take their defaults from here.

    ``S`` None means the directions are built by :func:`perturbation_directions` with
    ``kinds``, ``budget``, ``combinations``, ``margin`` and ``seed`` at step ``eps``; only then
    are kinds, budget and combinations read (and checked). A given S sets ``eps`` to its own
    step. ``margin`` is Theorem 4's (Theorems 2 and 3 keep the default). ``strategy`` ("dense"
    or "gram") builds the perturbable span; it is held as a :class:`Strategy`.
    """

    eps: float = 1e-2
    S: PerturbationSet | None = None
    kinds: Sequence[str] = KINDS
    budget: int = 256
    combinations: int = 16
    rtol: float = 1e-8
    grad_tol: float = 1e-6
    rank_tol: float | None = None
    cuts: Sequence[float] = DEFAULT_CUTS
    check_minimum: bool = True
    curvature_tol: float = 1e-8
    seed: int = 0
    strategy: str = "dense"
    margin: float = 1e-8

    def __post_init__(self) -> None:
        def keep(name: str, value: object) -> None:
            object.__setattr__(self, name, value)  # frozen: each value is set once, here

        S = check_perturbation_set(self.S)
        tolerances = check_tolerances(
            self.rtol, self.grad_tol, self.rank_tol, self.cuts, self.curvature_tol
        )
        for name, value in zip(
            ("rtol", "grad_tol", "rank_tol", "cuts", "curvature_tol"), tolerances, strict=True
        ):
            keep(name, value)
        keep("seed", check_seed(self.seed))
        keep("eps", positive_step(self.eps if S is None else S.eps))
        keep("margin", finite_nonnegative(self.margin, "margin"))
        if S is None:  # the options that build S
            keep("kinds", check_kinds(self.kinds))
            keep("budget", nonnegative_whole(self.budget, "budget"))
            keep("combinations", nonnegative_whole(self.combinations, "combinations"))
        keep(
            "strategy",
            check_strategy(self.strategy, (Strategy.DENSE, Strategy.GRAM), "perturbable_basis"),
        )


# ----------------------------------------------------------------------------- the check
@dataclass(frozen=True)
class PerturbedCheck:
    """What :func:`perturbed_check` found: the directions and basis at the step used, the span
    check over [features, T~] and over T alone, and the verdict.

    ``residual`` is the scale-free residual that vanishes at every local minimum: the most a
    single column of the difference quotients (Lemma 3) or of the features could still gain,
    relative to max(1, |L|) (:func:`gradbasis.theory.certificate.column_drops`).
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

    def result_fields(self) -> dict[str, Any]:
        """The fields of :class:`PerturbedResult`, in its order."""
        check, basis = self.check, self.basis
        return dict(
            verdict=self.verdict,
            reason=self.reason,
            loss_value=check.loss_value,
            lower=check.lower,
            value=check.value,
            gap=check.gap,
            tol=check.tol,
            gradient_norm=check.gradient_norm,
            relative_gradient=check.relative_gradient,
            dual_residual=check.dual_residual,
            first_order_bound=check.first_order_bound,
            kink_margin=check.kink_margin,
            min_eigenvalue=self.min_eigenvalue,
            dim_T=basis.dim_T,
            dim_T_tilde=basis.dim_T_tilde,
            num_directions=basis.num_directions,
            eps=self.eps,
            converged=check.converged,
            scope=check.scope,
            judged_by=self.judged_by,
            directions=self.S.to_dict(),
            seconds=self.seconds,
            check=check,
            basis=basis,
        )


def _directions_at(
    obj: Objective, theta: np.ndarray, options: PerturbedOptions, eps: float
) -> PerturbationSet:
    """S at step eps: built and verified as :func:`perturbation_directions` does, or the
    user's S re-verified at the new step (a direction that moves f_X there is dropped)."""
    S = options.S
    if S is None:
        return verified_directions(
            obj.model,
            theta,
            obj.X,
            eps=eps,
            kinds=options.kinds,
            budget=options.budget,
            combinations=options.combinations,
            margin=options.margin,
            seed=options.seed,
        )
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
    options: PerturbedOptions,
    *,
    features: np.ndarray | None = None,
    feature_meaning: str = "",
    precondition: str | None = None,
) -> PerturbedCheck:
    """The check Theorems 2-4 share: L(theta) against the infimum over the numerical span of
    [features (x) I, J, D_1, ..., D_k, f_X(theta)] with the verdict of the one judge.

    ``theta`` is checked (:func:`gradbasis._validation.as_theta`). Where L(theta) or its
    gradient overflow float64 no verdict is given: NonFiniteError says so, before any work.
    Before "theta is not a local minimum" is concluded from a Lemma 3 residual above
    ``grad_tol``, the basis is rebuilt at eps / 10 and eps / 100: if the residual vanishes there,
    eps was beyond Lemma 3's eps_0 and the verdict is judged at the smaller step instead.
    ``strategy="gram"`` builds T~ from Gram matrices, which resolve only the directions above
    the Gram floor: where its numbers would allow "holds", the dense basis is built instead when
    it fits in memory, else the verdict is "consistent".
    """
    o = options
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    model, d_y = obj.model, obj.model.output_dim
    L, grad, _ = finite_value_and_gradient(obj, theta)
    tol = o.rtol * max(1.0, abs(L))
    point = stationarity(obj, theta, grad, L)
    u = obj.residual_duals(theta)
    feats = kron_features(features, d_y) if features is not None else np.zeros((u.size, 0))
    H = loss_curvature(obj, obj.model.forward(theta, obj.X))
    scale = max(1.0, abs(L))
    feature_cos = float(column_drops(feats, u, H).max() / scale) if feats.shape[1] else float("nan")
    lam = float("nan")
    if precondition is None and o.check_minimum:
        precondition, lam = saddle_reason(obj, theta, point, o.grad_tol, tol, o.curvature_tol)
    seconds["point"] = time.perf_counter() - t0

    def basis_at(S: PerturbationSet, strategy: str) -> PerturbableBasis:
        return perturbable_span(
            model,
            theta,
            obj.X,
            S.directions,
            S.eps,
            rank_tol=o.rank_tol,
            strategy=strategy,
            duals=u.reshape(-1),
            curvature=H,
        )

    def span_check(basis: np.ndarray, cuts: Sequence[float] = o.cuts) -> SpanCheck:
        return check_span(
            obj, theta, basis, rtol=o.rtol, rank_tol=o.rank_tol, cuts=cuts, point=point
        )

    t0 = time.perf_counter()
    confirm = point.critical(o.grad_tol, tol) and precondition is None and point.global_gap > tol
    tried: list[tuple[float, float]] = []
    chosen: tuple[PerturbationSet, PerturbableBasis] | None = None
    for frac in CONFIRM_STEPS:
        step = o.eps * frac
        S_step = _directions_at(obj, theta, o, step)
        pb = basis_at(S_step, o.strategy)
        cos = float(pb.lemma3_drop) / scale
        tried.append((step, cos))
        if chosen is None:
            chosen = (S_step, pb)
        if not (confirm and cos > o.grad_tol):
            if frac != 1.0:
                chosen = (S_step, pb)  # the residual vanished at this smaller step: judge here
            break
    assert chosen is not None  # CONFIRM_STEPS is not empty
    S_used, pb = chosen
    first_cos = tried[0][1]
    if len(tried) == 1:
        eps_note = f"eps = {o.eps:g}"
    elif tried[-1][1] > o.grad_tol:
        eps_note = "Lemma 3 residual persists at eps = " + ", ".join(
            f"{s:g} ({c:.3g})" for s, c in tried
        )
    else:
        eps_note = (
            f"at eps = {o.eps:g} the Lemma 3 residual was {first_cos:.3g} but it vanished at eps = {S_used.eps:g} "
            f"({tried[-1][1]:.3g}): eps was beyond Lemma 3's eps_0, so the check is judged at eps = {S_used.eps:g}"
        )
    seconds["basis"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    check = span_check(np.hstack([feats, pb.basis]))
    resolved, judged_by, note = True, o.strategy, ""
    if o.strategy == Strategy.GRAM and check.rank < u.size:
        resolved = False
        note = f"the Gram path resolves T~ only above the Gram floor {pb.rank_tol:.2g} sigma_max"
        if check.gap <= tol:
            try:
                pb = basis_at(S_used, Strategy.DENSE)
            except MemoryBudgetError:
                pass
            else:
                check = span_check(np.hstack([feats, pb.basis]))
                resolved, judged_by, note = True, Strategy.DENSE, ""
    J_only = span_check(pb.jacobian_basis, cuts=())
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
        grad_tol=o.grad_tol,
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


# ----------------------------------------------------------------------------- the result
def listed_after(anchor: str, **options: Any) -> Any:
    """A field a theorem adds to :class:`PerturbedResult`, listed (in ``to_dict``, ``str`` and
    ``repr``) after the field ``anchor``; fields with one anchor keep their declared order.
    ``options`` go to :func:`dataclasses.field`."""
    return field(metadata={"after": anchor}, **options)


@dataclass(frozen=True, repr=False)
class PerturbedResult:
    """The numbers Theorems 2, 3 and 4 report alike; each theorem's result adds its own fields,
    declared with :func:`listed_after` (subclasses are ``dataclass(frozen=True, repr=False)``:
    ``repr`` lists the fields in that order).

    L(theta) (``loss_value``) against the certified interval [``lower``, ``value``] of the
    infimum over ``scope``, the numerical span judged; ``gap`` = L(theta) - lower and ``tol`` =
    rtol * max(1, |L|). ``relative_gradient`` is the scale-free criticality measure,
    ``dual_residual`` ||B^T u|| over the whole basis, ``first_order_bound`` the convexity bound
    <u, f_X(theta) - F*>, ``min_eigenvalue`` the Hessian's smallest eigenvalue (nan when not
    computed). dim T, dim T~, |S| (``num_directions``) and the step ``eps`` the verdict was judged
    at; ``judged_by`` is the strategy whose span the verdict was judged on and ``directions``
    the summary of S (:meth:`PerturbationSet.to_dict`).
    """

    verdict: Verdict
    reason: str
    loss_value: float
    lower: float
    value: float
    gap: float
    tol: float
    gradient_norm: float
    relative_gradient: float
    dual_residual: float
    first_order_bound: float
    kink_margin: float
    min_eigenvalue: float
    dim_T: int
    dim_T_tilde: int
    num_directions: int
    eps: float
    converged: bool
    scope: str
    judged_by: str
    directions: dict
    seconds: dict = field(repr=False)
    check: SpanCheck = field(repr=False)
    basis: PerturbableBasis = field(repr=False)

    @classmethod
    def listing_order(cls) -> tuple[str, ...]:
        """Every field's name: the shared ones in their order, each added one after its anchor
        (the order records and tables have always shown; inheritance alone would put every
        shared field first)."""
        order = [f.name for f in fields(cls) if "after" not in f.metadata]
        placed: dict[str, int] = {}
        for f in fields(cls):
            anchor = f.metadata.get("after")
            if anchor is not None:
                placed[anchor] = placed.get(anchor, 0) + 1
                order.insert(order.index(anchor) + placed[anchor], f.name)
        return tuple(order)

    def listed(self, *skip: str) -> dict[str, Any]:
        """The fields but ``skip``, by name, in :meth:`listing_order`."""
        return {k: getattr(self, k) for k in self.listing_order() if k not in skip}

    def __repr__(self) -> str:
        shown = {f.name for f in fields(self) if f.repr}
        items = ", ".join(f"{k}={v!r}" for k, v in self.listed().items() if k in shown)
        return f"{type(self).__qualname__}({items})"
