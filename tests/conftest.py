"""Shared fixtures: seeded data and one small instance of every model kind."""

from __future__ import annotations

import numpy as np
import pytest

import gradbasis as gb

ACTIVATIONS = ["identity", "relu", "leaky_relu(0.2)", "tanh", "sigmoid", "softplus", "gelu"]


def model_zoo() -> dict[str, gb.Model]:
    """Small models covering every architecture, activation and bias setting."""
    zoo: dict[str, gb.Model] = {"basis": gb.BasisModel(4, 3)}
    for act in ACTIVATIONS:
        zoo[f"mlp-{act}"] = gb.MLP([4, 5, 6, 3], act)
    zoo["mlp-nobias-mixed"] = gb.MLP([4, 5, 4, 6, 2], ["tanh", "relu", "gelu"], bias=False)
    zoo["mlp-shallow"] = gb.MLP([4, 3], [])
    zoo["skip"] = gb.SkipMLP([4, 5, 6, 3], skip_from=[0, 1], activation="softplus")
    zoo["skip-nobias"] = gb.SkipMLP([4, 5, 6, 3], skip_from=[1], activation="relu", bias=False)
    zoo["resnet-mlp"] = gb.ResNet(4, 2, gb.MLP([4, 6, 3], "tanh"))
    zoo["resnet-preact"] = gb.ResNet(
        4, 2, gb.PreActResidualStack(4, hidden=5, num_blocks=2, activation="relu")
    )
    return zoo


ZOO = model_zoo()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20190521)


@pytest.fixture(params=sorted(ZOO), ids=str)
def model(request) -> gb.Model:
    return ZOO[request.param]


def random_point(
    model: gb.Model, rng: np.random.Generator, m: int = 11
) -> tuple[np.ndarray, np.ndarray]:
    """theta (init plus small noise so biases are nonzero) and inputs X with m samples."""
    theta = model.init(seed=int(rng.integers(1 << 30))) + 0.1 * rng.normal(size=model.num_params)
    return theta, rng.normal(size=(m, model.input_dim))


def central_difference_jacobian(f, theta: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Columns (f(theta + h e_j) - f(theta - h e_j)) / 2h; error O(h^2) + O(eps/h) ~ 1e-9 relative."""
    cols = []
    for j in range(theta.size):
        e = np.zeros_like(theta)
        e[j] = h
        cols.append((np.ravel(f(theta + e)) - np.ravel(f(theta - e))) / (2 * h))
    return np.stack(cols, axis=-1)


# Hypothesis profiles for tests that do not fix their own max_examples (tests/test_fuzz.py):
# "default" is the small run of the normal suite (test_fuzz.py derandomizes it); "fuzz" is the long run,
# selected with HYPOTHESIS_PROFILE=fuzz python -m pytest tests/test_fuzz.py.
import os  # noqa: E402

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("default", max_examples=50, deadline=None)
settings.register_profile(
    "fuzz",
    max_examples=5000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
