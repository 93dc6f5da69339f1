"""The basis-function model of Example 1: f(x; Theta) = Theta phi(x)."""

from __future__ import annotations

from .base import Model
from .builder import GraphBuilder, dense_layer
from .layout import check_size


class BasisModel(Model):
    """f(x; Theta) = Theta x with x already the feature vector phi(x) (Example 1).

    theta = vec(Theta), Theta of shape (output_dim, num_features), named ``"W"``. The model
    is linear in theta, so every critical point of a convex loss is a global minimum.
    """

    def __init__(self, num_features: int, output_dim: int):
        num_features = check_size(num_features, "num_features")
        output_dim = check_size(output_dim, "output_dim")
        b = GraphBuilder(num_features)
        out = dense_layer(b, 0, output_dim, "W", None, 1.0)
        super().__init__(b, out, homogeneous=("W",))

    def _constructor_arguments(self) -> tuple[tuple, dict]:
        return (self.input_dim, self.output_dim), {}
