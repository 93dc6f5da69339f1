"""Small numerical helpers that stay quiet at the edges of float64."""

from __future__ import annotations

import numpy as np


def safe_norm(x: object) -> float:
    """The 2-norm of ``x``, scaled so that squaring entries near 1e200 does not overflow; +inf
    (without a RuntimeWarning) only where the norm itself is beyond float64."""
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0:
        return 0.0
    top = float(np.max(np.abs(a)))
    if top == 0.0 or not np.isfinite(top):
        return top
    with np.errstate(over="ignore"):
        return float(top * np.linalg.norm(a / top))
