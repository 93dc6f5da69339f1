"""Input checks shared by every public entry point.

The C++ core trusts its inputs; everything it receives passes through here first:
float64, C-contiguous, the right shape, finite. Float32, integer, Fortran-ordered and
non-contiguous arrays are converted (a copy); complex, boolean, object and string
arrays are rejected because no float64 value means the same thing.
"""

from __future__ import annotations

import numpy as np

from ._memory import check_allocation
from ._options import show
from .errors import (
    DTypeError,
    GradbasisError,
    InvalidOptionError,
    InvalidWeightsError,
    NonFiniteError,
    ShapeError,
)

_CONVERTIBLE_KINDS = "fiu"
# Copies larger than this are checked against the memory available before they are made
# (a broadcast view can stand for far more data than exists).
_CHECKED_COPY_BYTES = 64 * 1024**2


def _usable_as_is(arr: np.ndarray) -> bool:
    """Whether the core can read ``arr`` without a copy: native float64, aligned, C order, and no
    negative stride (NumPy calls an array C-contiguous when its reversed axes have length 1)."""
    return (
        arr.dtype == np.float64
        and arr.dtype.isnative
        and arr.flags.c_contiguous
        and arr.flags.aligned
        and all(s >= 0 for s in arr.strides)
    )


def as_float_array(value: object, name: str) -> np.ndarray:
    """``value`` as a C-contiguous float64 array of the same shape (copied only when needed;
    a 0-d value stays 0-d so that shape checks see it)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in _CONVERTIBLE_KINDS:
        raise DTypeError(
            f"{name} has dtype {arr.dtype}; expected real numbers (float64, or a float/int "
            "dtype that converts to it)"
        )
    if _usable_as_is(arr):
        return arr
    nbytes = 8 * arr.size
    if nbytes > _CHECKED_COPY_BYTES:
        check_allocation(
            nbytes,
            f"a float64 copy of {name} (shape {arr.shape})",
            None,
            f"pass {name} as a C-contiguous float64 array, or fewer samples per call",
        )
    return np.array(arr, dtype=np.float64, order="C", copy=True)


def check_finite(arr: np.ndarray, name: str) -> None:
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))
        first = tuple(int(i) for i in bad[0])
        raise NonFiniteError(
            f"{name} holds {len(bad)} NaN/inf value(s), the first at index {first}; "
            "remove or replace them"
        )


def as_theta(theta: object, num_params: int, name: str = "theta") -> np.ndarray:
    arr = as_float_array(theta, name)
    if arr.ndim != 1 or arr.shape[0] != num_params:
        raise ShapeError(
            f"{name} has shape {arr.shape}; this model has {num_params} parameters, "
            f"so expected ({num_params},)"
        )
    check_finite(arr, name)
    return arr


def as_samples(X: object, dim: int, name: str = "X", num_samples: int | None = None) -> np.ndarray:
    """A (m, dim) matrix of samples; ``num_samples`` fixes m when given."""
    arr = as_float_array(X, name)
    if arr.ndim != 2:
        hint = " (use X.reshape(1, -1) for a single sample)" if arr.ndim == 1 else ""
        raise ShapeError(f"{name} must be 2-D (samples, {dim}); got shape {arr.shape}{hint}")
    if arr.shape[0] == 0:
        raise ShapeError(f"{name} has no samples (shape {arr.shape})")
    if arr.shape[1] != dim:
        raise ShapeError(f"{name} has {arr.shape[1]} columns; expected {dim} (shape {arr.shape})")
    if num_samples is not None and arr.shape[0] != num_samples:
        raise ShapeError(
            f"{name} has {arr.shape[0]} rows; expected {num_samples}, one per sample (shape {arr.shape})"
        )
    check_finite(arr, name)
    return arr


def as_weights(weights: object | None, num_samples: int) -> np.ndarray:
    """Sample weights lambda_i (default 1/m), all positive and finite."""
    if weights is None:
        return np.full(num_samples, 1.0 / num_samples)
    arr = as_float_array(weights, "weights")
    if arr.ndim != 1 or arr.shape[0] != num_samples:
        raise ShapeError(
            f"weights has shape {arr.shape}; expected ({num_samples},), one per sample"
        )
    check_finite(arr, "weights")
    if (arr <= 0).any():
        i = int(np.argmax(arr <= 0))
        raise InvalidWeightsError(f"weights must be positive; weights[{i}] = {float(arr[i])}")
    return arr


def as_threads(n_threads: int | None) -> int:
    """``None`` means every available thread (0 for the core)."""
    if n_threads is None:
        return 0
    if (
        isinstance(n_threads, (bool, np.bool_))
        or not isinstance(n_threads, (int, np.integer))
        or n_threads < 1
    ):
        raise InvalidOptionError(
            f"n_threads must be a positive integer or None (every thread); got {show(n_threads)}"
        )
    return int(n_threads)


def as_directions(
    value: object, num_params: int, name: str = "S", error: type[GradbasisError] = ShapeError
) -> np.ndarray:
    """Directions in parameter space: a finite (k, num_params) matrix, one direction a row.
    ``error`` is the class raised for a wrong shape."""
    arr = as_float_array(value, name)
    if arr.ndim != 2 or arr.shape[1] != num_params:
        raise error(f"{name} must be (k, num_params = {num_params}); got shape {arr.shape}")
    check_finite(arr, name)
    return arr
