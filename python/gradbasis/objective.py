"""The training objective L(theta) = sum_i lambda_i l(f(x_i; theta), y_i)."""

from __future__ import annotations

import numpy as np

from ._validation import as_samples, as_theta, as_threads, as_weights
from .losses import Loss, get_loss
from .models.base import Model

__all__ = ["Objective"]


class Objective:
    """L(theta) = sum_i lambda_i l(f(x_i; theta), y_i) for a model, loss and data set.

    Data are checked and converted once here. ``weights`` are lambda_i > 0 (default 1/m).
    Value, gradient and Hessian-vector products run in C++ over blocks of samples; the
    gradient is one reverse sweep (J is never formed) and the Hessian-vector product is
    exact (forward-over-reverse), both summed in a fixed order so the results do not
    depend on ``n_threads``.
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
            raise TypeError(f"model must be a gradbasis model; got {type(model).__name__}")
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
        """L(theta)."""
        theta = self._theta(theta)
        return float(self._graph.objective(self.loss._core, theta, self.X, self.Y, self.weights, self.n_threads))

    def value_and_gradient(self, theta: object) -> tuple[float, np.ndarray]:
        """L(theta) and its gradient, in one forward and one reverse sweep."""
        theta = self._theta(theta)
        grad = np.empty_like(theta)
        value = self._graph.objective_gradient(
            self.loss._core, theta, self.X, self.Y, self.weights, grad, self.n_threads
        )
        return float(value), grad

    def gradient(self, theta: object) -> np.ndarray:
        """The gradient of L at theta (equals J^T u with u from :meth:`residual_duals`)."""
        return self.value_and_gradient(theta)[1]

    def hessian_vector(self, theta: object, v: object) -> np.ndarray:
        """The exact Hessian-vector product (d^2 L / d theta^2) v, accurate to rounding."""
        theta = self._theta(theta)
        v = as_theta(v, self.model.num_params, "v")
        out = np.empty_like(theta)
        self._graph.objective_hvp(self.loss._core, theta, self.X, self.Y, self.weights, v, out, self.n_threads)
        return out

    def residual_duals(self, theta: object) -> np.ndarray:
        """u with u_i = lambda_i grad_q l(f(x_i; theta), y_i), shape (m, d_y)."""
        f = self.model.forward(self._theta(theta), self.X, n_threads=self.n_threads or None)
        return self.weights[:, None] * self.loss.gradient(f, self.Y)

    @property
    def _graph(self):
        return self.model._graph

    def _theta(self, theta: object) -> np.ndarray:
        return as_theta(theta, self.model.num_params)

    def __repr__(self) -> str:
        return f"Objective({self.model!r}, {self.loss!r}, m={self.num_samples})"
