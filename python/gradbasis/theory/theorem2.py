"""Theorem 2 (local minima and the perturbable gradient basis) with Lemmas 1 and 3.

At a local minimum theta outside Omega~, for small eps every finite S of V[theta, eps] gives
L(theta) = inf over span[J(theta), J(theta + eps S_1), ...] of Phi. Lemma 3 is the reason:
theta + eps v is again a local minimum with the same outputs, so
sum_i lambda_i dl(f(x_i; theta)) d_k f(x_i; theta + eps v) = grad L(theta + eps v) = 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .._numerics import safe_norm
from .._options import check_seed, open_unit_interval, positive_number, positive_step, relative_cut
from .._validation import as_float_array, as_samples, as_theta, check_finite
from ..errors import InvalidArgumentError, InvalidOptionError, ShapeError
from ..models.base import Model, check_model
from ..objective import Objective, check_objective, finite_value_and_gradient
from ..solve.induced import DEFAULT_CUTS
from ..verdict import Verdict, jsonable, table
from .perturbable import PerturbableBasis, perturbable_basis
from .perturbation import KINDS, PerturbationSet
from .span_check import SpanCheck, check_tolerances, perturbed_check, saddle_reason

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
        return jsonable({k: v for k, v in vars(self).items() if k != "residuals"})


def _directions(
    obj_model: Model, S: PerturbationSet | np.ndarray, eps: float | None
) -> tuple[np.ndarray, float]:
    if isinstance(S, PerturbationSet):
        return S.directions, positive_step(S.eps if eps is None else eps)
    D = as_float_array(S, "S")
    if D.ndim != 2 or D.shape[1] != obj_model.num_params:
        raise InvalidOptionError(
            f"S must be (k, num_params = {obj_model.num_params}); got shape {D.shape}"
        )
    check_finite(D, "S")
    if eps is None:
        raise InvalidOptionError("eps is required when S is a plain array")
    return D, positive_step(eps)


def check_perturbation_set(S: object) -> PerturbationSet | None:
    """``S`` itself when it is None or a PerturbationSet, else an InvalidArgumentError."""
    if S is not None and not isinstance(S, PerturbationSet):
        raise InvalidArgumentError(
            f"S must be a PerturbationSet from perturbation_directions; got {type(S).__name__}"
        )
    return S


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
    D, eps = _directions(obj.model, S, eps)
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
        return jsonable(dict(vars(self)))


def _orthonormal(B: np.ndarray, cut: float) -> tuple[np.ndarray, np.ndarray]:
    """Left singular vectors of B with singular value above the absolute ``cut``, and all of
    B's singular values."""
    if B.shape[1] == 0:
        return B[:, :0], np.zeros(0)
    U, s, _ = np.linalg.svd(B, full_matrices=False)
    return U[:, s > cut], s


def _direction_array(D: object, name: str, num_params: int) -> np.ndarray:
    arr = as_float_array(D, name)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, num_params)
    if arr.ndim != 2 or arr.shape[1] != num_params:
        raise ShapeError(f"{name} must be (k, num_params = {num_params}); got shape {arr.shape}")
    check_finite(arr, name)
    return arr


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
    from .._options import nonnegative_number
    from .perturbable import model_depth, quotient_noise
    from .perturbation import _kinked_sources, _region, _same_region

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
    sources = _kinked_sources(model)
    region0 = _region(model, theta, X, sources) if sources else []
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
            elif sources and not _same_region(region0, _region(model, moved, X, sources)):
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
    B1 = perturbable_basis(model, theta, X, S, eps, rank_tol=rank_tol)
    B2 = perturbable_basis(model, theta, X, S2, eps, rank_tol=rank_tol)
    tops = [j_norm] + [float(B.singular_values[0]) for B in (B1, B2) if B.singular_values.size]
    cut = max(rank_tol * max(tops), noise)
    Qa, s_a = _orthonormal(np.hstack(raw), eps * cut)
    Qb, s_b = _orthonormal(np.hstack([B1.basis, B2.basis]), cut)
    kept = s_b[s_b > cut]
    sine_tol = tol + (noise / float(kept.min()) if kept.size else 0.0)
    common = dict(
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
@dataclass(frozen=True)
class Theorem2Result:
    """Theorem 2 at one point: L(theta) against the certified interval [lower, value] of the
    perturbable gradient basis model's infimum over its numerical span (``scope``), with dim T,
    dim T~, |S| and eps, and the verdict of :func:`gradbasis.certificate.judge`.

    ``gradient_basis_value`` is Theorem 1's infimum (over T alone), so users see what the
    perturbation added. ``lemma3_residual`` is max_j ||grad L(theta + eps S_j)|| and
    ``lemma3_drop`` its scale-free form on the difference quotients (the most one of their
    columns could gain, relative to max(1, |L|); 0 at a local minimum).
    ``eps`` is the step judged at (``eps_note`` says whether a larger one was tried first).
    ``min_eigenvalue`` is the Hessian's smallest eigenvalue (nan when not computed).
    """

    verdict: Verdict
    reason: str
    loss_value: float
    lower: float
    value: float
    gap: float
    tol: float
    gradient_basis_value: float
    gradient_basis_lower: float
    gradient_norm: float
    relative_gradient: float
    lemma3_residual: float
    lemma3_drop: float
    dual_residual: float
    first_order_bound: float
    kink_margin: float
    min_eigenvalue: float
    dim_T: int
    dim_T_tilde: int
    num_directions: int
    eps: float
    eps_note: str
    rank: int
    converged: bool
    scope: str
    judged_by: str
    directions: dict
    seconds: dict = field(repr=False)
    check: SpanCheck = field(repr=False)
    basis: PerturbableBasis = field(repr=False)

    def to_dict(self) -> dict:
        d = {k: v for k, v in vars(self).items() if k not in ("check", "basis")}
        d["profile"] = [vars(p) for p in self.check.profile]
        d["growth"] = list(self.basis.growth)
        return jsonable(d)

    def __str__(self) -> str:
        rows = [
            (k, v)
            for k, v in vars(self).items()
            if k not in ("check", "basis", "seconds", "directions")
        ]
        return (
            table("Theorem 2 (perturbable gradient basis model)", rows)
            + f"\ndirections: {self.directions}"
        )


def theorem2(
    obj: Objective,
    theta: object,
    *,
    eps: float = 1e-2,
    S: PerturbationSet | None = None,
    kinds: Sequence[str] = KINDS,
    budget: int = 256,
    combinations: int = 16,
    rtol: float = 1e-8,
    grad_tol: float = 1e-6,
    rank_tol: float | None = None,
    cuts: Sequence[float] = DEFAULT_CUTS,
    check_minimum: bool = True,
    curvature_tol: float = 1e-8,
    seed: int = 0,
    strategy: str = "dense",
) -> Theorem2Result:
    """Check Theorem 2 at theta with two-sided certificates.

    S defaults to :func:`perturbation_directions` (``kinds``, ``budget``, ``combinations``,
    ``seed``) at step ``eps``. The verdict is :func:`gradbasis.certificate.judge`'s (shared with
    Theorem 1, via :func:`gradbasis.span_check.perturbed_check`): "holds" when L(theta) - lower
    <= tol = rtol * max(1, |L|) over the numerical span of the perturbable basis from a
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
    S = check_perturbation_set(S)
    rtol, grad_tol, rank_tol, cuts, curvature_tol = check_tolerances(
        rtol, grad_tol, rank_tol, cuts, curvature_tol
    )
    seed = check_seed(seed)
    eps = positive_step(eps if S is None else S.eps)
    finite_value_and_gradient(obj, theta)  # before any work: no verdict on an overflowing loss
    pc = perturbed_check(
        obj,
        theta,
        eps=eps,
        S=S,
        direction_options=dict(kinds=kinds, budget=budget, combinations=combinations, seed=seed),
        rtol=rtol,
        grad_tol=grad_tol,
        rank_tol=rank_tol,
        cuts=cuts,
        check_minimum=check_minimum,
        curvature_tol=curvature_tol,
        strategy=strategy,
    )
    check, pb = pc.check, pc.basis
    return Theorem2Result(
        verdict=pc.verdict,
        reason=pc.reason,
        loss_value=check.loss_value,
        lower=check.lower,
        value=check.value,
        gap=check.gap,
        tol=check.tol,
        gradient_basis_value=pc.gradient_basis.value,
        gradient_basis_lower=pc.gradient_basis.lower,
        gradient_norm=check.gradient_norm,
        relative_gradient=check.relative_gradient,
        lemma3_residual=pc.lemma3_residual,
        lemma3_drop=pc.lemma3_drop,
        dual_residual=check.dual_residual,
        first_order_bound=check.first_order_bound,
        kink_margin=check.kink_margin,
        min_eigenvalue=pc.min_eigenvalue,
        dim_T=pb.dim_T,
        dim_T_tilde=pb.dim_T_tilde,
        num_directions=pb.num_directions,
        eps=pc.eps,
        eps_note=pc.eps_note,
        rank=check.rank,
        converged=check.converged,
        scope=check.scope,
        judged_by=pc.judged_by,
        directions=pc.S.to_dict(),
        seconds=pc.seconds,
        check=check,
        basis=pb,
    )
