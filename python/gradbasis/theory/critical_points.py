"""What kind of point is theta: critical, approximately critical, saddle, kink?"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import cast

import numpy as np
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from .._options import nonnegative_number, positive_number
from .._progress import progress_bar
from .._validation import as_theta
from ..errors import NonFiniteError
from ..objective import Objective, check_objective, finite_value_and_gradient
from ..verdict import jsonable, table
from .certificate import stationarity

__all__ = ["PointClass", "PointKind", "classify_point", "hessian_extremes"]

#: Relative tolerance of "theta fits every sample" (L(theta) - sum_i lambda_i inf l(., y_i)).
GLOBAL_RTOL = 1e-8

#: Below this many parameters the Hessian is formed column by column and diagonalised exactly.
DENSE_HESSIAN_LIMIT = 400
# Outside the core (a TorchModel) the Hessian products are vectorised over directions, so the
# dense Hessian stays cheaper than Lanczos (whose clustered small eigenvalues converge slowly)
# to more parameters.
VECTORISED_HESSIAN_LIMIT = 2048


class PointKind(str, enum.Enum):
    """The kinds of point :func:`classify_point` tells apart (see :class:`PointClass`).
    Members equal their text and print, format and serialise as it."""

    NON_DIFFERENTIABLE = "non-differentiable"
    LOCAL_MINIMUM_CANDIDATE = "local-minimum candidate"
    SADDLE = "saddle"
    CURVATURE_UNKNOWN = "critical, curvature unknown"
    APPROXIMATE_CRITICAL = "approximate critical point"
    NOT_CRITICAL = "not critical"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


@dataclass(frozen=True)
class PointClass:
    """Classification of theta for L, with the numbers behind it.

    ``kind`` is one of: "non-differentiable" (a kinked unit sits exactly at 0: theta in Omega),
    "local-minimum candidate" (critical, no negative curvature: second-order necessary
    conditions hold), "saddle" (critical with negative curvature), "critical, curvature unknown"
    (critical, but Lanczos found no estimate of lambda_min), "approximate critical point"
    (small gradient; curvature reported), "not critical".
    """

    kind: PointKind
    gradient_norm: float
    relative_gradient: float
    kink_margin: float
    min_eigenvalue: float
    max_eigenvalue: float
    grad_tol: float
    approx_tol: float
    curvature_tol: float
    eigen_method: str
    differentiable: bool
    critical: bool
    negative_curvature: bool

    def to_dict(self) -> dict:
        return cast(dict, jsonable(dict(vars(self))))

    def __str__(self) -> str:
        return table(
            f"point classification: {self.kind}",
            [(k, v) for k, v in vars(self).items() if k != "kind"],
        )


def hessian_extremes(
    obj: Objective, theta: np.ndarray, *, seed: int = 0
) -> tuple[float, float, str]:
    """Smallest and largest Hessian eigenvalues: exact (dense, from num_params HVPs) for small
    models (up to 400 parameters in the core, 2048 for a model whose Hessian products are
    vectorised), otherwise Lanczos (ARPACK eigsh) on exact Hessian-vector products (``theta``
    checked, as :func:`gradbasis._validation.as_theta` returns it)."""
    n = obj.model.num_params
    limit = DENSE_HESSIAN_LIMIT if obj.model.runs_in_core else VECTORISED_HESSIAN_LIMIT
    if n <= limit:
        H, eye = np.empty((n, n)), np.eye(n)
        step = 64
        bar = progress_bar(n, "Hessian (exact products)")
        for c0 in range(0, n, step):
            H[:, c0 : c0 + step] = obj.hessian_vectors(theta, eye[:, c0 : c0 + step])
            bar.update(min(step, n - c0))
        bar.close()
        _check_hessian_product(H)
        with np.errstate(over="ignore"):
            H = (H + H.T) / 2
        _check_hessian_product(H)
        eig = np.linalg.eigvalsh(H)
        return float(eig[0]), float(eig[-1]), "dense"

    bar = progress_bar(None, "Lanczos (Hessian-vector products)", unit="HVP")

    def matvec(v: np.ndarray) -> np.ndarray:
        bar.update(1)
        return _check_hessian_product(obj.hessian_vector(theta, np.ravel(v)))

    op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    v0 = np.random.default_rng(seed).normal(size=n)
    extremes = []
    for which in ("SA", "LA"):
        try:
            extremes.append(
                float(eigsh(op, k=1, which=which, v0=v0, tol=1e-10, maxiter=20 * n)[0][0])
            )
        except ArpackNoConvergence as exc:  # keep the best Ritz value found
            extremes.append(float(exc.eigenvalues[0]) if len(exc.eigenvalues) else float("nan"))
    bar.close()
    return extremes[0], extremes[1], "lanczos"


def _check_hessian_product(H: np.ndarray) -> np.ndarray:
    if not np.isfinite(H).all():
        raise NonFiniteError(
            "the Hessian of L at theta is not finite: its entries overflow float64; rescale the data or theta"
        )
    return H


def classify_point(
    obj: Objective,
    theta: object,
    *,
    grad_tol: float = 1e-6,
    approx_tol: float = 1e-3,
    curvature_tol: float = 1e-8,
) -> PointClass:
    """Classify theta from ||grad L||, the kink margin and the extreme Hessian eigenvalues.

    Critical means the scale-free measure of :func:`gradbasis.theory.certificate.stationarity` (the most
    one parameter alone could still lower L, relative to max(1, |L|)) is <= grad_tol (or theta
    fits every sample to within 1e-8 max(1, |L|)); approximately critical, <= approx_tol. The
    class does not change when a feature or a layer is rescaled. Negative
    curvature means lambda_min < -curvature_tol * max(1, |lambda_max|) (relative, so rounding
    in an exact Hessian of size ~1e-16 * |lambda_max| never counts). ``grad_tol`` and
    ``approx_tol`` are finite and > 0, ``curvature_tol`` finite and >= 0. Where L(theta), its
    gradient or its Hessian overflow float64 no class is given: NonFiniteError says so.
    """
    obj = check_objective(obj)
    theta = as_theta(theta, obj.model.num_params)
    grad_tol = positive_number(grad_tol, "grad_tol")
    approx_tol = positive_number(approx_tol, "approx_tol")
    curvature_tol = nonnegative_number(curvature_tol, "curvature_tol")
    value, grad, gnorm = finite_value_and_gradient(obj, theta)
    point = stationarity(obj, theta, grad, value)
    margin = obj.model.kink_margin(theta, obj.X)
    lo, hi, method = hessian_extremes(obj, theta)
    negative = lo < -curvature_tol * max(1.0, abs(hi))
    differentiable = margin != 0.0  # NaN (unknown: a TorchModel) is not a known kink
    critical = point.critical(grad_tol, GLOBAL_RTOL * max(1.0, abs(value)))
    if not differentiable:
        kind = PointKind.NON_DIFFERENTIABLE
    elif critical:
        kind = (
            PointKind.SADDLE
            if negative
            else PointKind.CURVATURE_UNKNOWN
            if np.isnan(lo)
            else PointKind.LOCAL_MINIMUM_CANDIDATE
        )
    elif point.relative <= approx_tol:
        kind = PointKind.APPROXIMATE_CRITICAL
    else:
        kind = PointKind.NOT_CRITICAL
    return PointClass(
        kind,
        gnorm,
        point.relative,
        margin,
        lo,
        hi,
        grad_tol,
        approx_tol,
        curvature_tol,
        method,
        differentiable,
        critical,
        negative,
    )
