"""Theorem 2 (local minima and the perturbable gradient basis) with Lemmas 1 and 3.

At a local minimum theta outside Omega~, for small eps every finite S of V[theta, eps] gives
L(theta) = inf over span[J(theta), J(theta + eps S_1), ...] of Phi. Lemma 3 is the reason:
theta + eps v is again a local minimum with the same outputs, so
sum_i lambda_i dl(f(x_i; theta)) d_k f(x_i; theta + eps v) = grad L(theta + eps v) = 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from .._numerics import safe_norm
from .._options import (
    Strategy,
    nonnegative_number,
    open_unit_interval,
    positive_number,
    positive_step,
    relative_cut,
)
from .._validation import as_directions, as_float_array, as_samples, as_theta
from ..errors import InvalidOptionError
from ..models.base import Model, check_model
from ..objective import Objective, check_objective
from ..verdict import jsonable, table
from ._perturbed import PerturbedOptions, PerturbedResult, listed_after, perturbed_check
from .perturbable import directions_and_step, model_depth, perturbable_span, quotient_noise
from .perturbation import PerturbationSet, activation_region, kinked_sources, regions_equal
from .span_check import saddle_reason

__all__ = [
    "Lemma1Result",
    "Lemma3Result",
    "Theorem2Result",
    "lemma1",
    "lemma3",
    "theorem2",
    "saddle_reason",
]


# ----------------------------------------------------------------------------- Lemma 3
@dataclass(frozen=True)
class Lemma3Result:
    """max_j || sum_i lambda_i dl(f(x_i; theta)) d f(x_i; theta + eps S_j) || against grad_tol.

    ``residuals[j]`` is that norm for direction j (with u taken at theta, as in the lemma);
    ``gradient_norm`` is the j-free term ||grad L(theta)||.
    """

    holds: bool
    max_residual: float
    gradient_norm: float
    grad_tol: float
    eps: float
    residuals: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        return cast(dict, jsonable({k: v for k, v in vars(self).items() if k != "residuals"}))


def lemma3(
    obj: Objective,
    theta: object,
    S: PerturbationSet | np.ndarray,
    eps: float | None = None,
    *,
    grad_tol: float = 1e-6,
) -> Lemma3Result:
    """Check Lemma 3 on the directions S: each residual is J(theta + eps S_j)^T u(theta), one
    reverse sweep per direction. It holds (within grad_tol) at every local minimum; a large
    residual proves theta is not one (or eps is beyond the lemma's eps_0). ``eps`` and
    ``grad_tol`` are finite and > 0."""
    obj = check_objective(obj)
    theta = as_theta(theta, obj.model.num_params)
    # A plain array of the wrong shape is an InvalidOptionError here (a ShapeError elsewhere).
    D, eps = directions_and_step(S, eps, obj.model.num_params, InvalidOptionError)
    grad_tol = positive_number(grad_tol, "grad_tol")
    U = obj.residual_duals(theta)
    res = np.array([safe_norm(obj.model.vjp(theta + eps * v, obj.X, U)) for v in D])
    gnorm = safe_norm(obj.model.vjp(theta, obj.X, U))
    worst = float(res.max()) if res.size else gnorm
    return Lemma3Result(
        bool(max(worst, gnorm) <= grad_tol), worst, gnorm, float(grad_tol), eps, res
    )


# ----------------------------------------------------------------------------- Lemma 1
@dataclass(frozen=True)
class Lemma1Result:
    """span from S u S' against span(from S) + span(from S'): equal dimensions and a largest
    principal-angle sine within ``sine_tol`` mean the two model classes coincide (Lemma 1).

    The lemma is about directions in V[theta, eps]; ``outside_V`` counts the rows of S and S'
    that are not (||v|| > 1, f_X moved by more than ``output_tol``, or theta + eps v outside
    theta's activation region), and any makes the result not hold (``reason`` names them;
    the spans are then not compared: dims 0, ``max_sine`` nan). ``cut`` is the absolute
    singular-value cut in the units of the difference quotients, ``noise_cut`` its rounding
    floor (:func:`gradbasis.perturbable.quotient_noise` for |S| + |S'| directions);
    ``max_change`` the largest ||f_X(theta + eps v) - f_X(theta)||_inf over S and S'.
    """

    holds: bool
    dim_union: int
    dim_sum: int
    max_sine: float
    tol: float
    reason: str = ""
    outside_V: int = 0
    sine_tol: float = float("nan")
    cut: float = float("nan")
    noise_cut: float = float("nan")
    output_tol: float = float("nan")
    max_change: float = float("nan")

    def to_dict(self) -> dict:
        return cast(dict, jsonable(dict(vars(self))))


def _singular_span(B: np.ndarray, cut: float) -> tuple[np.ndarray, np.ndarray]:
    """Left singular vectors of B with singular value above the absolute ``cut``, and all of
    B's singular values."""
    if B.shape[1] == 0:
        return B[:, :0], np.zeros(0)
    U, s, _ = np.linalg.svd(B, full_matrices=False)
    return U[:, s > cut], s


def _direction_array(D: object, name: str, num_params: int) -> np.ndarray:
    """Directions (k, num_params), an empty list counting as none."""
    arr = as_float_array(D, name)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, num_params)
    return as_directions(arr, num_params, name)


def lemma1(
    model: Model,
    theta: object,
    X: object,
    S: np.ndarray,
    S2: np.ndarray,
    eps: float,
    *,
    rank_tol: float = 1e-10,
    tol: float = 1e-6,
    output_tol: float | None = None,
) -> Lemma1Result:
    """Check Lemma 1: {f~(.; a, eps, S u S')} = {f~(.; a, eps, S) + f~(.; a', eps, S')}.

    First S and S' must be subsets of V[theta, eps]: every row has ||v|| <= 1, moves f_X by at
    most ``output_tol`` (infinity norm; default 1e-10 max(1, ||f_X(theta)||_inf), as
    :func:`perturbation_directions`) and keeps theta's activation region
    (:func:`gradbasis.perturbation.same_activation_region`). A row outside V makes the result
    not hold: the lemma says nothing about it.

    Then two independently computed subspaces of R^{m d_y} are compared. The left side is the
    range of the raw Jacobians [J(theta), J(theta + eps v) for v in S u S'] side by side,
    factorised with one numpy SVD. The right side is the sum of the ranges of
    :func:`perturbable_basis` of S and of S' (difference quotients, T split off first). A
    direction the perturbations add has singular value sigma in quotient units on the right and
    about eps sigma in the raw Jacobians on the left, while each raw Jacobian carries rounding of
    about depth eps_mach ||J(theta + eps v)||_2: the cut is ``cut`` = max(``rank_tol`` sigma_top,
    noise) on the right (sigma_top the largest singular value of either basis, noise =
    :func:`gradbasis.perturbable.quotient_noise` of |S| + |S'| quotients) and eps * ``cut`` on the
    left, the same rounding floor (100 sqrt(k) depth eps_mach ||J||_2 in raw units) seen from
    both sides. The spans agree when the dimensions match and the sine of the largest principal
    angle is at most ``sine_tol`` = ``tol`` + noise / sigma_min (Wedin: rounding E tilts a
    singular subspace by at most ||E|| / gap; sigma_min the smallest kept singular value).
    The raw Jacobians see an added direction through a Schur complement of the repeated J, so
    its two singular values agree up to a factor of order 1, not exactly: a real direction
    within a few times the cut can be counted on one side only, and the reason then shows the
    singular values either side of the cut. ``rank_tol`` in [0, 1), ``tol`` in (0, 1),
    ``output_tol`` >= 0.
    """
    model = check_model(model)
    theta = as_theta(theta, model.num_params)
    X = as_samples(X, model.input_dim)
    S, S2 = (_direction_array(D, name, model.num_params) for D, name in ((S, "S"), (S2, "S2")))
    eps = positive_step(eps)
    rank_tol = relative_cut(rank_tol, "rank_tol")
    tol = open_unit_interval(tol, "tol")
    f0 = model.forward(theta, X)
    if output_tol is None:
        output_tol = 1e-10 * max(1.0, float(np.abs(f0).max()))
    else:
        output_tol = nonnegative_number(output_tol, "output_tol")

    # 1. S, S' within V[theta, eps].
    sources = kinked_sources(model)
    region0 = activation_region(model, theta, X, sources) if sources else []
    problems, max_change = [], 0.0
    for name, D in (("S", S), ("S2", S2)):
        for j, v in enumerate(D):
            norm = float(np.linalg.norm(v))
            moved = theta + eps * v
            change = float(np.abs(model.forward(moved, X) - f0).max())
            max_change = max(max_change, change)
            if norm > 1.0 + 1e-12:
                problems.append(f"{name}[{j}] has ||v|| = {norm:.6g} > 1")
            elif not change <= output_tol:
                problems.append(
                    f"{name}[{j}] moves f_X by {change:.3g} > output_tol {output_tol:.3g}"
                )
            elif sources and not regions_equal(
                region0, activation_region(model, moved, X, sources)
            ):
                problems.append(
                    f"{name}[{j}] takes theta out of its activation region (a kinked unit changes sign)"
                )
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        return Lemma1Result(
            False,
            0,
            0,
            float("nan"),
            tol,
            reason=f"{len(problems)} direction(s) outside V[theta, eps = {eps:g}], so Lemma 1 does not apply: {shown}",
            outside_V=len(problems),
            output_tol=float(output_tol),
            max_change=max_change,
        )

    # 2. Left side: the raw Jacobians, one numpy SVD.
    J = model.jacobian(theta, X)
    j_norm = float(np.linalg.norm(J, 2)) if J.size else 0.0
    both = np.vstack([S, S2])
    raw = [J] + [model.jacobian(theta + eps * v, X) for v in both]
    d_norm = max((float(np.linalg.norm(Jv - J)) / eps for Jv in raw[1:]), default=0.0)
    noise = quotient_noise(j_norm, eps, both.shape[0], model_depth(model), d_norm)

    # 3. Right side: the sum of the two perturbable bases.
    B1 = perturbable_span(model, theta, X, S, eps, rank_tol=rank_tol, strategy=Strategy.DENSE)
    B2 = perturbable_span(model, theta, X, S2, eps, rank_tol=rank_tol, strategy=Strategy.DENSE)
    tops = [j_norm] + [float(B.singular_values[0]) for B in (B1, B2) if B.singular_values.size]
    cut = max(rank_tol * max(tops), noise)
    Qa, s_a = _singular_span(np.hstack(raw), eps * cut)
    Qb, s_b = _singular_span(np.hstack([B1.basis, B2.basis]), cut)
    kept = s_b[s_b > cut]
    sine_tol = tol + (noise / float(kept.min()) if kept.size else 0.0)
    common: dict[str, Any] = dict(
        sine_tol=sine_tol,
        cut=cut,
        noise_cut=noise,
        output_tol=float(output_tol),
        max_change=max_change,
    )
    if Qa.shape[1] != Qb.shape[1]:

        def near(
            sv: np.ndarray, c: float
        ) -> str:  # the two singular values either side of the cut, over it
            i = int(np.sum(sv > c))
            return ", ".join(f"{x / c:.3g}" for x in sv[max(0, i - 1) : i + 1])

        reason = (
            f"dimensions differ: {Qa.shape[1]} from the raw Jacobians of S u S2, {Qb.shape[1]} from the sum of "
            f"the perturbable bases (cut {cut:.3g} in quotient units, eps * cut in the raw Jacobians; singular "
            f"values either side of the cut, over it: raw {near(s_a, eps * cut)}, sum {near(s_b, cut)})"
        )
        return Lemma1Result(False, Qa.shape[1], Qb.shape[1], 1.0, tol, reason=reason, **common)
    worst = float(np.linalg.norm(Qb - Qa @ (Qa.T @ Qb), 2)) if Qa.shape[1] else 0.0
    ok = worst <= sine_tol
    reason = (
        f"both sides have dimension {Qa.shape[1]}; largest principal-angle sine {worst:.3g} "
        f"{'<=' if ok else '>'} {sine_tol:.3g}"
    )
    return Lemma1Result(ok, Qa.shape[1], Qb.shape[1], worst, tol, reason=reason, **common)


# ----------------------------------------------------------------------------- Theorem 2
@dataclass(frozen=True, repr=False)
class Theorem2Result(PerturbedResult):
    """Theorem 2 at one point: L(theta) against the certified interval [lower, value] of the
    perturbable gradient basis model's infimum over its numerical span (``scope``), with dim T,
    dim T~, |S| and eps, and the verdict of :func:`gradbasis.theory.certificate.judge` (the fields
    every theorem of the perturbable basis reports: :class:`PerturbedResult`).

    ``gradient_basis_value`` is Theorem 1's infimum (over T alone), so users see what the
    perturbation added. ``lemma3_residual`` is max_j ||grad L(theta + eps S_j)|| and
    ``lemma3_drop`` its scale-free form on the difference quotients (the most one of their
    columns could gain, relative to max(1, |L|); 0 at a local minimum).
    ``eps`` is the step judged at (``eps_note`` says whether a larger one was tried first).
    ``rank`` is the rank of the span judged.
    """

    gradient_basis_value: float = listed_after("tol")
    gradient_basis_lower: float = listed_after("tol")
    lemma3_residual: float = listed_after("relative_gradient")
    lemma3_drop: float = listed_after("relative_gradient")
    eps_note: str = listed_after("eps")
    rank: int = listed_after("eps")

    def to_dict(self) -> dict:
        d = self.listed("check", "basis")
        d["profile"] = [vars(p) for p in self.check.profile]
        d["growth"] = list(self.basis.growth)
        return cast(dict, jsonable(d))

    def __str__(self) -> str:
        rows = self.listed("check", "basis", "seconds", "directions").items()
        return (
            table("Theorem 2 (perturbable gradient basis model)", rows)
            + f"\ndirections: {self.directions}"
        )


def theorem2(
    obj: Objective,
    theta: object,
    *,
    eps: float = PerturbedOptions.eps,
    S: PerturbationSet | None = PerturbedOptions.S,
    kinds: Sequence[str] = PerturbedOptions.kinds,
    budget: int = PerturbedOptions.budget,
    combinations: int = PerturbedOptions.combinations,
    rtol: float = PerturbedOptions.rtol,
    grad_tol: float = PerturbedOptions.grad_tol,
    rank_tol: float | None = PerturbedOptions.rank_tol,
    cuts: Sequence[float] = PerturbedOptions.cuts,
    check_minimum: bool = PerturbedOptions.check_minimum,
    curvature_tol: float = PerturbedOptions.curvature_tol,
    seed: int = PerturbedOptions.seed,
    strategy: str = PerturbedOptions.strategy,
) -> Theorem2Result:
    """Check Theorem 2 at theta with two-sided certificates.

    S defaults to :func:`perturbation_directions` (``kinds``, ``budget``, ``combinations``,
    ``seed``) at step ``eps``. The verdict is :func:`gradbasis.theory.certificate.judge`'s (shared with
    Theorem 1, via :func:`gradbasis.theory._perturbed.perturbed_check`): "holds" when L(theta) -
    lower <= tol = rtol * max(1, |L|) over the numerical span of the perturbable basis from a
    converged solve; "does not apply" at kinks, at points that are not critical by the
    scale-free test (``grad_tol``, a relative gain), at saddles (``check_minimum`` computes lambda_min
    of the Hessian, exactly below 400 parameters, by Lanczos above) and at points whose Lemma 3
    residual stays above ``grad_tol`` at eps, eps / 10 and eps / 100 (no local minimum);
    "consistent" at approximate local minima whose gap exceeds tol; "violated" when the numbers
    contradict convexity. ``strategy`` ("dense" or "gram") is how the perturbable span is built
    (:func:`perturbable_basis`). Tolerances: ``rtol`` in (0, 1), ``grad_tol`` > 0, ``rank_tol``
    and ``cuts`` in [0, 1), ``curvature_tol`` >= 0. Where L(theta) or its gradient overflow
    float64 no verdict is given: NonFiniteError says so.
    """
    obj = check_objective(obj)
    theta = as_theta(theta, obj.model.num_params)
    options = PerturbedOptions(
        eps=eps,
        S=S,
        kinds=kinds,
        budget=budget,
        combinations=combinations,
        rtol=rtol,
        grad_tol=grad_tol,
        rank_tol=rank_tol,
        cuts=cuts,
        check_minimum=check_minimum,
        curvature_tol=curvature_tol,
        seed=seed,
        strategy=strategy,
    )
    pc = perturbed_check(obj, theta, options)
    return Theorem2Result(
        **pc.result_fields(),
        gradient_basis_value=pc.gradient_basis.value,
        gradient_basis_lower=pc.gradient_basis.lower,
        lemma3_residual=pc.lemma3_residual,
        lemma3_drop=pc.lemma3_drop,
        eps_note=pc.eps_note,
        rank=pc.check.rank,
    )
