"""Example 2 / footnote 1: rank-m last-layer features, so the last layer alone reaches the
global minimum value (0 for squared loss) for any targets."""

from __future__ import annotations

import numpy as np
import pytest

import gradbasis as gb
from gradbasis.models.overparameterized import IndistinctSamplesError, overparameterized_init

M, D_X, D_Y = 20, 3, 2
HIDDEN = [[20, 25], [24], [20, 20, 22]]
EPS = np.finfo(np.float64).eps


def sphere_points(m: int = M, d: int = D_X, seed: int = 0) -> np.ndarray:
    X = np.random.default_rng(seed).normal(size=(m, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def numpy_features(model: gb.MLP, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """h_H(x_i) in plain numpy from the named parameters (independent of the module)."""
    p = model.unflatten(theta)
    H = len(model.layer_sizes) - 2
    h = X
    for l in range(1, H + 1):
        h = np.maximum(h @ p[f"W{l}"].T + (p[f"b{l}"] if model.bias else 0.0), 0.0)
    return h


def inputs(bias: bool) -> np.ndarray:
    X = sphere_points()
    return X if bias else np.hstack([X, np.ones((M, 1))])  # the paper's x_i = [x_raw, 1]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("hidden", HIDDEN, ids=str)
def test_rank_and_kink_margin(hidden, bias):
    X = inputs(bias)
    model, theta, report = overparameterized_init(X, hidden, D_Y, bias=bias)
    assert model.layer_sizes == (X.shape[1], *hidden, D_Y) and model.bias == bias
    assert report.num_samples == M
    assert report.feature_rank >= M and report.rank_ok
    assert report.kink_margin > 0 and report.kink_margin == model.kink_margin(theta, X)
    feats = numpy_features(model, theta, X)
    assert np.linalg.matrix_rank(feats) == M
    # The one-active-unit pattern: h_H(x_i) = a_i e_i, spare units dead on every sample.
    a = np.diag(feats[:, :M])
    assert np.all(a > 0)
    np.testing.assert_allclose(feats[:, :M], np.diag(a), rtol=0, atol=1e-15)
    assert not feats[:, M:].any()
    assert "feature rank" in str(report)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("hidden", HIDDEN, ids=str)
def test_last_layer_least_squares_reaches_zero(hidden, bias):
    X = inputs(bias)
    model, theta, _ = overparameterized_init(X, hidden, D_Y, bias=bias, seed=3)
    H = len(hidden)
    feats = numpy_features(model, theta, X)
    # The Jacobian block of W_{H+1}[0, :] is exactly these features (d f_0 / d W[0, c] = h_c).
    spec = next(s for s in model.param_specs if s.name == f"W{H + 1}")
    J = model.jacobian(theta, X)
    # Equal up to rounding: the core and NumPy sum the layers' dot products in their own order
    # (and with or without fused multiply-adds); a few dozen roundings of the largest feature.
    block = J[0::D_Y, spec.offset : spec.offset + spec.size : D_Y]
    np.testing.assert_allclose(block, feats, rtol=0, atol=1e3 * EPS * np.abs(feats).max())

    Y = np.random.default_rng(7).normal(size=(M, D_Y)) * 10.0  # arbitrary targets
    basis = np.hstack([feats, np.ones((M, 1))]) if bias else feats
    coef = np.linalg.lstsq(basis, Y, rcond=None)[0]
    params = model.unflatten(theta)
    params[f"W{H + 1}"] = coef[: feats.shape[1]].T
    if bias:
        params[f"b{H + 1}"] = coef[-1]
    trained = model.flatten(params)

    obj = gb.Objective(model, gb.SquaredLoss(), X, Y)
    scale = np.mean(np.sum(Y**2, axis=1))
    assert obj.value(trained) <= 1e-20 * scale  # the global minimum value of the whole net
    # ... and a (differentiable) critical point of all parameters, not only the last layer.
    assert model.kink_margin(trained, X) > 0
    assert np.linalg.norm(obj.gradient(trained)) <= 1e-10 * np.sqrt(scale)


def test_seed_only_changes_the_output_layer():
    X = sphere_points()
    model, t0, _ = overparameterized_init(X, [20, 25], D_Y, seed=0)
    _, t1, _ = overparameterized_init(X, [20, 25], D_Y, seed=1)
    out = next(s for s in model.param_specs if s.name == "W3").offset
    np.testing.assert_array_equal(t0[:out], t1[:out])
    assert not np.array_equal(t0[out:], t1[out:])


def test_single_sample():
    model, theta, report = overparameterized_init(np.array([[0.0, 0.0]]), [1, 3], 1)
    assert report.rank_ok and report.kink_margin > 0


def test_width_below_m_raises():
    X = sphere_points()
    with pytest.raises(gb.ShapeError, match="width 19"):
        overparameterized_init(X, [19], D_Y)
    with pytest.raises(gb.ShapeError, match="hidden layer 2"):
        overparameterized_init(X, [20, 19], D_Y)
    with pytest.raises(gb.ShapeError):
        overparameterized_init(X, [], D_Y)
    with pytest.raises(gb.ShapeError):
        overparameterized_init(X, 20, D_Y)


def test_duplicate_and_collinear_samples_raise():
    X = sphere_points()
    dup = X.copy()
    dup[7] = dup[3]
    with pytest.raises(IndistinctSamplesError, match="samples 3 and 7|samples 7 and 3"):
        overparameterized_init(dup, [20], D_Y)
    ray = X.copy()
    ray[7] = 2.5 * ray[3]  # distinct, but equal after normalisation
    with pytest.raises(IndistinctSamplesError, match="after normalisation"):
        overparameterized_init(ray, [20], D_Y)
    zero = X.copy()
    zero[0] = 0.0
    with pytest.raises(IndistinctSamplesError, match="zero vector"):
        overparameterized_init(zero, [20], D_Y)
    # The error is a gradbasis error and a ValueError.
    assert issubclass(IndistinctSamplesError, gb.GradbasisError)
    assert issubclass(IndistinctSamplesError, ValueError)


def test_unnormalised_data_that_cannot_work_says_normalise():
    X = np.random.default_rng(0).normal(size=(M, D_X))  # many samples inside the others' hull
    with pytest.raises(IndistinctSamplesError, match="np.linalg.norm"):
        overparameterized_init(X, [20], D_Y)
    # After normalising, the same data works.
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    assert overparameterized_init(X, [20], D_Y)[2].rank_ok


def test_no_bias_needs_the_constant_column():
    with pytest.raises(gb.ShapeError, match="constant"):
        overparameterized_init(sphere_points(), [20], D_Y, bias=False)
    with pytest.raises(gb.ShapeError):
        overparameterized_init(np.ones(5), [20], D_Y)
