"""The checks a sweep runs on each trained point, the options they read, and the ``summary``
block of a record that condenses their results (see :mod:`gradbasis.sweep`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..models.base import Model
from ..objective import Objective
from ..theory.critical_points import classify_point
from ..theory.representation import representation_bound
from ..theory.theorem1 import theorem1
from ..theory.theorem2 import theorem2
from ..theory.theorem3 import theorem3
from ..theory.theorem4 import theorem4
from ..verdict import jsonable

__all__ = ["CHECKS", "Spectrum"]


@dataclass(frozen=True)
class Spectrum:
    """Singular values of J(theta) (descending), the spectrum the figures plot."""

    singular_values: tuple[float, ...]
    num_outputs: int
    num_params: int

    def to_dict(self) -> dict:
        return {k: jsonable(v) for k, v in vars(self).items()}


def _spectrum(obj: Objective, theta: np.ndarray, options: Mapping[str, Any]) -> Spectrum:
    J = obj.model.jacobian(theta, obj.X)
    s = np.linalg.svd(J, compute_uv=False)
    return Spectrum(tuple(float(v) for v in s), J.shape[0], J.shape[1])


#: Check name -> function(objective, theta, options) returning a result with ``to_dict()``.
CHECKS: dict[str, Callable[[Objective, np.ndarray, Mapping[str, Any]], Any]] = {
    "classify": lambda obj, theta, o: classify_point(obj, theta, grad_tol=o["grad_tol"]),
    "theorem1": lambda obj, theta, o: theorem1(obj, theta, rtol=o["rtol"], grad_tol=o["grad_tol"]),
    "theorem2": lambda obj, theta, o: theorem2(
        obj, theta, eps=o["eps"], rtol=o["rtol"], grad_tol=o["grad_tol"]
    ),
    "theorem3": lambda obj, theta, o: theorem3(
        obj, theta, eps=o["eps"], rtol=o["rtol"], grad_tol=o["grad_tol"]
    ),
    "theorem4": lambda obj, theta, o: theorem4(
        obj, theta, o["t"], eps=o["eps"], rtol=o["rtol"], grad_tol=o["grad_tol"]
    ),
    "representation": lambda obj, theta, o: representation_bound(
        obj, theta, rtol=o["rtol"], grad_tol=o["grad_tol"]
    ),
    "spectrum": _spectrum,
}

# The options each check reads: only these enter a cell's settings (and so its key).
CHECK_OPTIONS = {
    "classify": ("grad_tol",),
    "theorem1": ("grad_tol", "rtol"),
    "theorem2": ("grad_tol", "rtol", "eps"),
    "theorem3": ("grad_tol", "rtol", "eps"),
    "theorem4": ("grad_tol", "rtol", "eps", "t"),
    "representation": ("grad_tol", "rtol"),
    "spectrum": (),
}
# The [checks] table of a sweep file when a key is left out.
CHECK_DEFAULTS = {
    "run": ["classify", "theorem1"],
    "grad_tol": 1e-6,
    "rtol": 1e-8,
    "eps": 1e-2,
    "t": 0,
}


def _finite(x: Any) -> float | None:
    """``x`` as a float when it is a finite number, else None (a summary is strict JSON)."""
    if isinstance(x, bool) or x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def summarize(
    training: Mapping | None,
    results: Mapping[str, Any],
    failed: str | None,
    checks: Sequence[str],
    model: Model | None,
    m: int | None,
) -> dict:
    """The compact block the report and the figures read (see :mod:`gradbasis.sweep`).
    ``failed`` is the stage that raised: that check's verdict is "error", or every check's when
    training or setting up failed."""
    summary: dict[str, Any] = {
        "L": _finite(training["value"]) if training else None,
        "gradient_norm": _finite(training["gradient_norm"]) if training else None,
        "converged": bool(training["converged"]) if training else None,
        "num_params": model.num_params if model is not None else None,
        "num_samples": m,
        "num_outputs": m * model.output_dim if model is not None and m is not None else None,
        "point": results["classify"].kind if "classify" in results else None,
        "verdicts": {},
        "gaps": {},
        "dim_T": None,
        "dim_T_tilde": None,
        "bounds": {},
        "singular_values": None,
    }
    for name, res in results.items():
        summary["verdicts"][name] = (
            res.kind if name == "classify" else str(getattr(res, "verdict", "computed"))
        )
    if failed is not None:
        for name in checks if failed not in checks else [failed]:
            summary["verdicts"][name] = "error"
    for name in ("theorem1", "theorem2", "theorem3", "theorem4"):
        if name in results:
            summary["gaps"][name] = _finite(results[name].gap)
    for name in ("theorem2", "theorem3", "theorem4"):
        if name in results and summary["dim_T"] is None:
            summary["dim_T"], summary["dim_T_tilde"] = (
                results[name].dim_T,
                results[name].dim_T_tilde,
            )
    if summary["dim_T"] is None and "theorem1" in results:
        summary["dim_T"] = results["theorem1"].full_rank
    bounds = summary["bounds"]
    if "theorem1" in results:
        bounds["gradient_basis"] = _finite(results["theorem1"].value)
    if "theorem2" in results:
        bounds["perturbable"] = _finite(results["theorem2"].value)
    if "representation" in results:
        bounds["representation"] = _finite(results["representation"].bound_value)
    if "theorem3" in results:
        bounds["shamir"] = _finite(results["theorem3"].shamir.value)
        bounds["resnet_features"] = _finite(results["theorem3"].features.value)
    if "theorem4" in results:
        bounds["hidden_features"] = _finite(results["theorem4"].features.value)
        bounds["linear"] = _finite(results["theorem4"].linear.value)
    if "spectrum" in results:
        summary["singular_values"] = [_finite(s) for s in results["spectrum"].singular_values]
    return summary
