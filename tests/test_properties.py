"""Property tests over random architectures: the engine's modes agree with each other."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import gradbasis as gb

activation = st.sampled_from(
    ["identity", "relu", "leaky_relu(0.3)", "tanh", "sigmoid", "softplus", "gelu"]
)


@st.composite
def models(draw):
    kind = draw(st.sampled_from(["mlp", "skip", "resnet-mlp", "resnet-preact", "basis"]))
    d_x = draw(st.integers(1, 5))
    d_y = draw(st.integers(1, 4))
    widths = draw(st.lists(st.integers(1, 6), min_size=0, max_size=3))
    acts = [draw(activation) for _ in widths]
    bias = draw(st.booleans())
    if kind == "mlp":
        return gb.MLP([d_x, *widths, d_y], acts, bias=bias)
    if kind == "skip":
        skips = draw(st.sets(st.integers(0, len(widths)), max_size=3))
        return gb.SkipMLP([d_x, *widths, d_y], skip_from=skips, activation=acts, bias=bias)
    if kind == "resnet-mlp":
        return gb.ResNet(d_x, d_y, gb.MLP([d_x, *widths, draw(st.integers(1, 5))], acts, bias=bias))
    if kind == "resnet-preact":
        return gb.ResNet(
            d_x,
            d_y,
            gb.PreActResidualStack(
                d_x, draw(st.integers(1, 5)), draw(st.integers(1, 3)), draw(activation), bias=bias
            ),
        )
    return gb.BasisModel(d_x, d_y)


@settings(max_examples=40, deadline=None)
@given(model=models(), m=st.integers(1, 150), seed=st.integers(0, 2**31))
def test_jacobian_jvp_vjp_and_homogeneity_agree(model, m, seed):
    rng = np.random.default_rng(seed)
    theta = model.init(seed) + 0.1 * rng.normal(size=model.num_params)
    X = rng.normal(size=(m, model.input_dim))
    J = model.jacobian(theta, X)
    v = rng.normal(size=model.num_params)
    U = rng.normal(size=(m, model.output_dim))
    scale = 1e-12 * (1 + np.abs(J).sum())
    np.testing.assert_allclose(model.jvp(theta, X, v).ravel(), J @ v, rtol=1e-11, atol=scale)
    np.testing.assert_allclose(model.vjp(theta, X, U), J.T @ U.ravel(), rtol=1e-11, atol=scale)
    f = model.forward(theta, X)
    np.testing.assert_allclose(J @ model.homogeneity(theta), f.ravel(), rtol=1e-11, atol=scale)
    np.testing.assert_array_equal(model.flatten(model.unflatten(theta)), theta)
