"""Convex losses l(q, y) of DESIGN.md, evaluated in the C++ core.

Each loss gives per-sample values, gradients and Hessians in q, and the convex conjugate
l*(s, y) = sup_q <s, q> - l(q, y) used by dual lower bounds (+inf outside its domain).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from . import _core
from ._options import show
from ._validation import as_samples
from .errors import InvalidLabelError, InvalidOptionError, ShapeError, UnknownNameError

__all__ = ["Loss", "SquaredLoss", "CrossEntropyLoss", "SmoothedHingeLoss", "get_loss"]

_Q = _core.LossQuantity


class Loss:
    """Base class: subclasses set the C++ loss and check their targets."""

    name = "loss"
    #: Absolute tolerance used when checking that targets are valid for the loss.
    label_tol = 1e-9

    def __init__(self, core: _core.Loss):
        self._core_loss = core

    @property
    def core_loss(self) -> _core.Loss:
        """Internal: the C++ loss (gradbasis._core.Loss) that the objective and the induced
        solvers hand to the core."""
        return self._core_loss

    def __reduce__(self) -> tuple:
        """Pickle as the class and its constructor arguments (``_constructor_arguments``, none
        by default): loading rebuilds the C++ loss, which cannot be pickled itself."""
        if type(self).__init__ is Loss.__init__:
            raise TypeError(
                f"cannot pickle {type(self).__name__}: it holds a C++ loss; pickle a named loss class"
            )
        return type(self), self._constructor_arguments()

    def _constructor_arguments(self) -> tuple:
        return ()

    def check_targets(
        self, Y: object, output_dim: int | None = None, num_samples: int | None = None
    ) -> np.ndarray:
        """Y as a (m, d_y) float64 array valid for this loss, or a clear error."""
        Y = as_float_targets(Y, output_dim, num_samples)
        self._check_labels(Y)
        return Y

    def _check_labels(self, Y: np.ndarray) -> None:
        pass

    def value(self, Q: object, Y: object) -> np.ndarray:
        """l(q_i, y_i) for each row, shape (m,)."""
        Q, Y = self._pair(Q, Y)
        return self._rows(_Q.value, Q, Y, (Q.shape[0],))

    def gradient(self, Q: object, Y: object) -> np.ndarray:
        """d l / d q at each row, shape (m, d_y)."""
        Q, Y = self._pair(Q, Y)
        return self._rows(_Q.gradient, Q, Y, Q.shape)

    def hessian(self, Q: object, Y: object) -> np.ndarray:
        """d^2 l / d q^2 at each row, shape (m, d_y, d_y)."""
        Q, Y = self._pair(Q, Y)
        return self._rows(_Q.hessian, Q, Y, (Q.shape[0], Q.shape[1], Q.shape[1]))

    def conjugate(self, S: object, Y: object) -> np.ndarray:
        """l*(s_i, y_i) for each row, shape (m,); +inf where s_i is outside the domain."""
        S, Y = self._pair(S, Y, "S")
        return self._rows(_Q.conjugate, S, Y, (S.shape[0],))

    def _pair(self, Q: object, Y: object, qname: str = "Q") -> tuple[np.ndarray, np.ndarray]:
        Y = self.check_targets(Y)
        return as_samples(Q, Y.shape[1], qname, num_samples=Y.shape[0]), Y

    def _rows(
        self, what: _core.LossQuantity, Q: np.ndarray, Y: np.ndarray, shape: tuple[int, ...]
    ) -> np.ndarray:
        out = np.empty(shape)
        self._core_loss.rows(what, Q, Y, out)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def as_float_targets(Y: object, output_dim: int | None, num_samples: int | None) -> np.ndarray:
    arr = np.asarray(Y)
    if arr.ndim == 1 and output_dim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ShapeError(f"Y must be 2-D (samples, d_y); got shape {arr.shape}")
    return as_samples(arr, arr.shape[1] if output_dim is None else output_dim, "Y", num_samples)


class SquaredLoss(Loss):
    """l(q, y) = ||q - y||^2 (no factor 1/2, exactly as the paper)."""

    name = "squared"

    def __init__(self) -> None:
        super().__init__(_core.Loss(_core.LossKind.squared))


class CrossEntropyLoss(Loss):
    """l(q, y) = -sum_k y_k log softmax(q)_k for a probability vector y (one-hot allowed).

    Targets must be non-negative and sum to 1 within ``label_tol`` (1e-9). Every quantity is
    computed for the targets as given, with their mass M = sum_k y_k: l(q) = M lse(q) - <y, q>,
    gradient M softmax(q) - y, Hessian M (diag(p) - p p^T), and the conjugate
    l*(s) = sum_k p_k log(p_k / M) for p = s + y, on the domain p >= 0 (exactly) and
    sum_k s_k = 0, the sum allowed a rounding-level slack of 16 d_y eps (M + sum_k |s_k|)
    (+inf outside). So targets that sum to 1 + 5e-10 keep finite conjugates at the gradient.
    """

    name = "cross_entropy"

    def __init__(self) -> None:
        super().__init__(_core.Loss(_core.LossKind.cross_entropy))

    def _check_labels(self, Y: np.ndarray) -> None:
        if Y.shape[1] < 2:
            raise InvalidLabelError(
                "cross-entropy needs d_y >= 2 classes; use SmoothedHingeLoss for one output"
            )
        if (Y < 0).any():
            i = int(np.argwhere(Y < 0)[0][0])
            raise InvalidLabelError(
                f"cross-entropy targets must be probability vectors; row {i} has a negative entry"
            )
        sums = Y.sum(axis=1)
        bad = np.abs(sums - 1.0) > self.label_tol
        if bad.any():
            i = int(np.argmax(bad))
            raise InvalidLabelError(
                f"cross-entropy targets must be probability vectors (rows summing to 1); row {i} sums to "
                f"{float(sums[i])}. For class indices c use np.eye(num_classes)[c]"
            )


class SmoothedHingeLoss(Loss):
    """l(q, y) = max(0, 1 - y q)^p for one output, labels y in {-1, +1}, p >= 2."""

    name = "smoothed_hinge"

    def __init__(self, p: float = 2.0) -> None:
        if (
            isinstance(p, bool)
            or not isinstance(p, numbers.Real)
            or not (math.isfinite(float(p)) and p >= 2.0)
        ):
            raise InvalidOptionError(
                f"SmoothedHingeLoss needs a finite p >= 2 (differentiable twice); got p={show(p)}"
            )
        self.p: float = float(p)
        super().__init__(_core.Loss(_core.LossKind.smoothed_hinge, self.p))

    def _check_labels(self, Y: np.ndarray) -> None:
        if Y.shape[1] != 1:
            raise InvalidLabelError(
                f"smoothed hinge loss has one output (d_y = 1); targets have {Y.shape[1]} columns"
            )
        bad = np.abs(Y[:, 0]) != 1.0
        if bad.any():
            i = int(np.argmax(bad))
            raise InvalidLabelError(
                f"smoothed hinge labels must be -1 or +1; Y[{i}] = {float(Y[i, 0])}"
            )

    def _constructor_arguments(self) -> tuple:
        return (self.p,)

    def __repr__(self) -> str:
        return f"SmoothedHingeLoss(p={self.p:g})"


_BY_NAME = {
    "squared": SquaredLoss,
    "cross_entropy": CrossEntropyLoss,
    "smoothed_hinge": SmoothedHingeLoss,
}


def get_loss(loss: str | Loss) -> Loss:
    """A loss object from itself or a name: squared, cross_entropy, smoothed_hinge."""
    if isinstance(loss, Loss):
        return loss
    key = str(loss).strip().lower().replace("-", "_")
    if key not in _BY_NAME:
        raise UnknownNameError(f"unknown loss {loss!r}; choose from {', '.join(_BY_NAME)}")
    return _BY_NAME[key]()
