"""The training objective L(theta) = sum_i lambda_i l(f(x_i; theta), y_i)."""

from __future__ import annotations

import numpy as np

from . import _core
from ._numerics import safe_norm
from ._validation import as_float_array, as_samples, as_theta, as_threads, as_weights
from .errors import InvalidArgumentError, NonFiniteError, ShapeError
from .losses import Loss, get_loss
from .models.base import Model

__all__ = ["Objective", "check_objective", "finite_value_and_gradient"]


class Objective:
    """L(theta) = sum_i lambda_i l(f(x_i; theta), y_i) for a model, loss and data set.

    Data are checked and converted once here. ``weights`` are lambda_i > 0 (default 1/m).
    Value, gradient and Hessian-vector products run in C++ over blocks of samples; the
    gradient is one reverse sweep (J is never formed) and the Hessian-vector product is
    exact (forward-over-reverse), both summed in a fixed order so the results do not
    depend on ``n_threads``. For a model that runs outside the C++ graph
    (:class:`gradbasis.torch.TorchModel`) the same quantities come from its forward pass, J^T u
    and its forward-over-reverse ``curvature_products``, with the loss's derivatives from the
    core: exact as well.
    """

    def __init__(
        self,
        model: Model,
        loss: Loss | str,
        X: object,
        Y: object,
        weights: object | None = None,
        *,
        n_threads: int | None = None,
    ):
        if not isinstance(model, Model):
            raise InvalidArgumentError(
                f"model must be a gradbasis model (MLP, SkipMLP, ResNet, ...); got {type(model).__name__}"
            )
        self.model = model
        self.loss = get_loss(loss)
        self.X = as_samples(X, model.input_dim)
        self.Y = self.loss.check_targets(Y, model.output_dim, self.X.shape[0])
        self.weights = as_weights(weights, self.X.shape[0])
        self.n_threads = as_threads(n_threads)

    @property
    def num_samples(self) -> int:
        return int(self.X.shape[0])

    def value(self, theta: object) -> float:
        """L(theta); +inf, never NaN, where it overflows float64 (as in :meth:`value_and_gradient`)."""
        theta = self._theta(theta)
        if not self.model.runs_in_core:
            return self._outside_core(theta)[0]
        value = self._graph.objective(
            self.loss.core_loss, theta, self.X, self.Y, self.weights, self.n_threads
        )
        return _overflow_as_inf(value)

    def value_and_gradient(self, theta: object) -> tuple[float, np.ndarray]:
        """L(theta) and its gradient, in one forward and one reverse sweep.

        Where the evaluation overflows float64 (the loss, or already the outputs, where
        inf - inf or inf * 0 inside the network would give NaN) this returns L = +inf, never
        NaN, and a gradient that may hold inf or NaN: optimisers' line searches and trust
        regions reject such a step on the value. The theorem checks refuse such points with
        :class:`NonFiniteError` instead (:func:`finite_value_and_gradient`).
        """
        theta = self._theta(theta)
        if not self.model.runs_in_core:
            value, U = self._outside_core(theta, with_duals=True)
            if U is None:
                return value, np.full_like(theta, np.nan)
            return value, self.model.vjp(theta, self.X, U, n_threads=self.n_threads or None)
        grad = np.empty_like(theta)
        value = self._graph.objective_gradient(
            self.loss.core_loss, theta, self.X, self.Y, self.weights, grad, self.n_threads
        )
        return _overflow_as_inf(value), grad

    def gradient(self, theta: object) -> np.ndarray:
        """The gradient of L at theta (equals J^T u with u from :meth:`residual_duals`)."""
        return self.value_and_gradient(theta)[1]

    def hessian_vector(self, theta: object, v: object) -> np.ndarray:
        """The exact Hessian-vector product (d^2 L / d theta^2) v, accurate to rounding.

        Where it overflows float64 the product comes back as computed, with inf or NaN
        entries (an optimiser may still stop or shrink its step). Nothing decides on such a
        product: the curvature checks (:func:`classify_point`, the saddle test of the
        Theorem 2-4 checks) raise NonFiniteError on any non-finite entry.
        """
        theta = self._theta(theta)
        v = as_theta(v, self.model.num_params, "v")
        if not self.model.runs_in_core:
            return self._hvp_outside_core(theta, v[:, None])[:, 0]
        out = np.empty_like(theta)
        self._graph.objective_hvp(
            self.loss.core_loss, theta, self.X, self.Y, self.weights, v, out, self.n_threads
        )
        return out

    def residual_duals(self, theta: object) -> np.ndarray:
        """u with u_i = lambda_i grad_q l(f(x_i; theta), y_i), shape (m, d_y)."""
        f = self.model.forward(self._theta(theta), self.X, n_threads=self.n_threads or None)
        return self.weights[:, None] * self.loss.gradient(f, self.Y)

    def _outside_core(
        self, theta: np.ndarray, with_duals: bool = False
    ) -> tuple[float, np.ndarray | None]:
        """(L, u) from the model's forward pass; L = +inf (u None) where the outputs or the loss
        overflow float64, as the core reports it."""
        try:
            f = self.model.forward(theta, self.X, n_threads=self.n_threads or None)
        except NonFiniteError:
            return np.inf, None
        with np.errstate(over="ignore", invalid="ignore"):
            value = _overflow_as_inf(float(self.weights @ self.loss.value(f, self.Y)))
        if not with_duals or not np.isfinite(value):
            return value, None
        return value, self.weights[:, None] * self.loss.gradient(f, self.Y)

    def hessian_vectors(self, theta: object, V: object) -> np.ndarray:
        """(d^2 L / d theta^2) V for the k columns of V (num_params, k), shape (num_params, k):
        :meth:`hessian_vector` column by column for core models; vectorised over the columns for
        a model outside the core (far fewer sweeps through torch)."""
        theta = self._theta(theta)
        V = as_float_array(V, "V")
        if V.ndim != 2 or V.shape[0] != self.model.num_params:
            raise ShapeError(f"V must be ({self.model.num_params}, k); got shape {V.shape}")
        if self.model.runs_in_core:
            return np.stack([self.hessian_vector(theta, v) for v in V.T], axis=1)
        return self._hvp_outside_core(theta, V)

    def _hvp_outside_core(self, theta: np.ndarray, V: np.ndarray) -> np.ndarray:
        """J^T (lambda_i H_i (J v)_i) + sum_i u_i . (d^2 f(x_i) / d theta^2) v for each column v
        of V, with H_i the loss's Hessian in q and u_i = lambda_i grad_q l."""
        threads = self.n_threads or None
        try:
            f = self.model.forward(theta, self.X, n_threads=threads)
        except NonFiniteError:
            return np.full(V.shape, np.nan)
        U = self.weights[:, None] * self.loss.gradient(f, self.Y)
        JV, second = self.model.curvature_products(theta, self.X, U, V, n_threads=threads)
        H = self.loss.hessian(f, self.Y)
        curved = self.weights[None, :, None] * np.einsum("ikl,jil->jik", H, JV)
        return second + self.model.vjps(theta, self.X, curved, n_threads=threads)

    @property
    def _graph(self) -> _core.Graph:
        return self.model.core_graph

    def _theta(self, theta: object) -> np.ndarray:
        return as_theta(theta, self.model.num_params)

    def __repr__(self) -> str:
        return f"Objective({self.model!r}, {self.loss!r}, m={self.num_samples})"


def _overflow_as_inf(value: float) -> float:
    """L as a float, +inf for NaN. Every loss here is >= 0 and theta, X, Y and the weights are
    finite, so a NaN can only come from an overflow (inf - inf or inf * 0) on the way to L."""
    value = float(value)
    return np.inf if np.isnan(value) else value


def check_objective(obj: object, what: str = "obj") -> Objective:
    """``obj`` itself when it is an :class:`Objective`, else an InvalidArgumentError."""
    if not isinstance(obj, Objective):
        raise InvalidArgumentError(
            f"{what} must be a gradbasis Objective(model, loss, X, Y); got {type(obj).__name__}"
        )
    return obj


def finite_value_and_gradient(obj: Objective, theta: np.ndarray) -> tuple[float, np.ndarray, float]:
    """L(theta), its gradient and the gradient's 2-norm, for a verdict.

    A verdict on numbers beyond float64 would be meaningless (every comparison with inf or NaN
    is decided by the overflow), so a loss or gradient that is not finite raises
    NonFiniteError naming the overflow. A finite gradient whose norm alone overflows is kept:
    its norm is +inf, which every check reads as "not critical".
    """
    value, grad = obj.value_and_gradient(theta)
    if not np.isfinite(value):
        raise NonFiniteError(
            f"L(theta) is not finite ({value}): the outputs overflow the loss; rescale the data or theta"
        )
    if not np.isfinite(grad).all():
        count = int(np.sum(~np.isfinite(grad)))
        raise NonFiniteError(
            f"grad L(theta) is not finite ({count} of {grad.size} entries are inf or NaN): the products of "
            "the layers overflow; rescale the data or theta"
        )
    return float(value), grad, safe_norm(grad)
