"""Directions in V[theta, eps]: each family's construction, its verification, and the
structure accessors (dense layers, node values, C++ null bases) it is built from."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ZOO, random_point

import gradbasis as gb
from gradbasis import _core


def independent_change(model, theta, X, v, eps):
    return float(np.abs(model.forward(theta + eps * v, X) - model.forward(theta, X)).max())


# ----------------------------------------------------------------------------- accessors
@pytest.mark.parametrize("shape", [(7, 3), (3, 7), (5, 5), (1, 4), (6, 2)])
def test_null_basis_is_orthonormal_and_complete(shape, rng):
    A = rng.normal(size=shape)
    A[:, -1] = A[:, 0]  # force a rank deficiency
    nb = _core.null_basis(A, 1e-12)
    N = np.asarray(nb.basis)
    assert N.shape == (shape[1], shape[1] - np.linalg.matrix_rank(A))
    np.testing.assert_allclose(N.T @ N, np.eye(N.shape[1]), atol=1e-13)
    assert np.abs(A @ N).max() <= 1e-13 * np.abs(A).max() * max(shape)


def test_null_basis_of_zero_matrix_is_everything():
    N = np.asarray(_core.null_basis(np.zeros((3, 4)), 1e-12).basis)
    np.testing.assert_allclose(np.abs(N.T @ N), np.eye(4), atol=1e-14)


def test_node_values_are_the_layer_inputs_of_an_mlp(rng):
    model = gb.MLP([3, 4, 2], "tanh")
    theta, X = random_point(model, rng)
    p = model.unflatten(theta)
    h1 = np.tanh(X @ p["W1"].T + p["b1"])
    layers = model.dense_layers()
    assert [l.weight.name for l in layers] == ["W1", "W2"]
    np.testing.assert_allclose(model.node_values(theta, X, layers[1].input_node), h1, rtol=1e-13)
    np.testing.assert_allclose(model.node_values(theta, X, layers[0].input_node), X)
    np.testing.assert_allclose(
        model.node_values(theta, X, layers[1].node), model.forward(theta, X), rtol=1e-13
    )
    with pytest.raises(ValueError, match="node"):
        model.node_values(theta, X, 99)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_dense_layers_tile_the_weights(name):
    model = ZOO[name]
    for layer in model.dense_layers():
        assert layer.weight.shape == (layer.out_dim, layer.in_dim)
        assert layer.bias is None or layer.bias.shape == (layer.out_dim,)


# ----------------------------------------------------------------------------- families
def wide_point(rng, act="tanh", m=5):
    """Hidden layers wider than m, so every layer input has a left null space."""
    model = gb.MLP([3, 8, 9, 2], act)
    theta, X = random_point(model, rng, m=m)
    return model, theta, X


@pytest.mark.parametrize("act", ["tanh", "relu", "gelu", "identity"])
def test_layer_null_directions_leave_outputs_unchanged(act, rng):
    model, theta, X = wide_point(rng, act)
    S = gb.perturbation_directions(model, theta, X, kinds=["layer_null"], combinations=4)
    # Expected count: out_dim * dim Null([h, 1]) for each layer, from numpy's rank.
    expected = 0
    for layer in model.dense_layers():
        H = np.hstack([model.node_values(theta, X, layer.input_node), np.ones((X.shape[0], 1))])
        expected += layer.out_dim * (H.shape[1] - np.linalg.matrix_rank(H))
    assert S.candidates["layer_null"] == expected
    assert len(S) == expected + 4 and not S.rejected
    for v in S.directions:
        assert np.linalg.norm(v) <= 1 + 1e-12 and np.linalg.norm(v) > 0.4
        assert independent_change(model, theta, X, v, S.eps) <= S.tol


def test_resnet_output_null_is_theorem3_construction(rng):
    model = gb.ResNet(5, 2, gb.MLP([5, 4, 3], "tanh"))
    theta, X = random_point(model, rng, m=20)
    S = gb.perturbation_directions(model, theta, X, kinds=["output_null"], combinations=0)
    W = model.unflatten(theta)["W"]
    assert len(S) == (5 - np.linalg.matrix_rank(W)) * 3  # dim Null(W) * d_z
    R = next(l for l in model.dense_layers() if l.weight.name == "R")
    for v in S.directions:
        dR = v[R.weight.offset : R.weight.offset + R.weight.size].reshape(R.weight.shape, order="F")
        assert np.count_nonzero(v) == np.count_nonzero(dR)  # only R moves
        assert np.abs(W @ dR).max() <= 1e-14
        assert independent_change(model, theta, X, v, S.eps) <= S.tol


def test_mlp_output_null_follows_linear_chains(rng):
    model = gb.MLP([3, 5, 4, 2], "identity", bias=False)
    theta, X = random_point(model, rng, m=30)
    S = gb.perturbation_directions(model, theta, X, kinds=["output_null"], combinations=0)
    p = model.unflatten(theta)
    # layer 2: a in Null(W3) (4 - 2 = 2 dims) times 5 inputs; layer 1: Null(W3 W2) (5 - 2) times 3 inputs
    assert len(S) == 2 * 5 + 3 * 3
    assert S.candidates == {"output_null": 19}
    M1 = p["W3"] @ p["W2"]
    for v in S.directions:
        d = model.unflatten(v)
        assert np.abs(M1 @ d["W1"]).max() <= 1e-13 and np.abs(p["W3"] @ d["W2"]).max() <= 1e-13


def test_dead_and_silent_units_are_found(rng):
    model = gb.MLP([3, 4, 2], "relu")
    theta, X = random_point(model, rng, m=12)
    p = model.unflatten(theta)
    p["b1"][0] = -50.0  # unit 0 dead on every sample
    p["W2"][:, 1] = 0.0  # unit 1 has no outgoing weight
    theta = model.flatten(p)
    S = gb.perturbation_directions(
        model, theta, X, kinds=["dead_units", "zero_outgoing"], combinations=2
    )
    assert S.candidates == {"dead_units": 4, "zero_outgoing": 4}  # in_dim + bias each
    assert set(S.kinds) == {"dead_units", "zero_outgoing", "dead_units+", "zero_outgoing+"}
    for v, kind in zip(S.directions, S.kinds, strict=False):
        row = 0 if kind.startswith("dead") else 1
        d = model.unflatten(v)
        assert np.abs(np.delete(d["W1"], row, axis=0)).max() == 0.0 and np.abs(d["W2"]).max() == 0.0
        assert independent_change(model, theta, X, v, S.eps) <= S.tol
        # Lemma 3's eps_0: every relu keeps the sign of its pre-activation on every sample.
        pre0 = model.node_values(theta, X, model.dense_layers()[0].node)
        pre1 = model.node_values(theta + S.eps * v, X, model.dense_layers()[0].node)
        assert np.array_equal(np.sign(pre0), np.sign(pre1))
    assert S.scales.shape == (len(S),) and S.shrunk == int(np.sum(S.scales < 1))


def test_candidates_that_move_outputs_are_rejected(rng):
    """A relu unit barely active: a large step pushes it across its kink, so f changes."""
    model = gb.MLP([2, 3, 1], "relu", bias=True)
    X = rng.normal(size=(6, 2))
    p = {
        "W1": np.zeros((3, 2)),
        "b1": np.array([1e-3, 1.0, 1.0]),
        "W2": np.array([[1.0, 1.0, -1.0]]),
        "b2": np.zeros(1),
    }
    theta = model.flatten(p)
    S = gb.perturbation_directions(model, theta, X, kinds=["output_null"], eps=1.0, combinations=0)
    assert S.rejected and all("moved" in r.reason or "kink" in r.reason for r in S.rejected)
    for v in S.directions:
        assert independent_change(model, theta, X, v, S.eps) <= S.tol


def test_budget_truncates_and_seed_repeats(rng):
    model, theta, X = wide_point(rng)
    S = gb.perturbation_directions(model, theta, X, budget=20, combinations=2)
    assert len(S) <= 20 and S.truncated > 0
    again = gb.perturbation_directions(model, theta, X, budget=20, combinations=2)
    np.testing.assert_array_equal(S.directions, again.directions)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"eps": 0.0}, gb.InvalidOptionError),
        ({"eps": -1e-3}, gb.InvalidOptionError),
        ({"eps": float("nan")}, gb.InvalidOptionError),
        ({"kinds": ["nullish"]}, gb.UnknownNameError),
        ({"kinds": "layer_null"}, gb.UnknownNameError),
        ({"budget": -1}, gb.InvalidOptionError),
        ({"combinations": 1.5}, gb.InvalidOptionError),
        ({"tol": -1.0}, gb.InvalidOptionError),
        ({"margin": float("inf")}, gb.InvalidOptionError),
    ],
)
def test_bad_options_are_named(kwargs, error, rng):
    model, theta, X = wide_point(rng)
    with pytest.raises(error):
        gb.perturbation_directions(model, theta, X, **kwargs)


# ----------------------------------------------------------------------------- the span
def test_perturbable_basis_spans_the_concatenation(rng):
    model, theta, X = wide_point(rng, "tanh")
    S = gb.perturbation_directions(model, theta, X, budget=12, combinations=2)
    pb = gb.perturbable_basis(model, theta, X, S, batch=5)
    full = np.hstack(
        [model.jacobian(theta, X)] + [model.jacobian(theta + S.eps * v, X) for v in S.directions]
    )
    s = np.linalg.svd(full, compute_uv=False)
    dim = int(np.sum(s > pb.rank_tol * s[0]))
    assert pb.dim_T_tilde == dim
    assert pb.dim_T == np.linalg.matrix_rank(
        model.jacobian(theta, X), tol=pb.rank_tol * np.linalg.norm(model.jacobian(theta, X), 2)
    )
    assert pb.dim_T_tilde >= pb.dim_T and len(pb.growth) == 3
    # Same subspace: the leading dim directions of both agree (sines of principal angles).
    U = np.linalg.svd(full, full_matrices=False)[0][:, :dim]
    Q = np.linalg.svd(pb.basis, full_matrices=False)[0][:, :dim]
    assert np.linalg.norm(Q - U @ (U.T @ Q), axis=0).max() < 1e-6


def test_perturbable_basis_rejects_bad_input(rng):
    model, theta, X = wide_point(rng)
    with pytest.raises(gb.ShapeError):
        gb.perturbable_basis(model, theta, X, np.zeros((2, 3)), 1e-2)
    with pytest.raises(gb.InvalidOptionError):
        gb.perturbable_basis(model, theta, X, np.zeros((1, model.num_params)))
    with pytest.raises(gb.InvalidOptionError):
        gb.perturbable_basis(model, theta, X, np.zeros((1, model.num_params)), -1.0)
    with pytest.raises(gb.MemoryBudgetError):
        gb.perturbable_basis(
            model, theta, X, np.zeros((1, model.num_params)), 1e-2, memory_budget=1000
        )


def test_gram_perturbable_basis_matches_dense_above_the_gram_floor(rng):
    model, theta, X = wide_point(rng, "tanh")
    S = gb.perturbation_directions(model, theta, X, budget=12, combinations=2)
    gram = gb.perturbable_basis(model, theta, X, S, strategy="gram")
    dense = gb.perturbable_basis(model, theta, X, S, rank_tol=gram.rank_tol)
    assert (gram.dim_T, gram.dim_T_tilde) == (dense.dim_T, dense.dim_T_tilde)
    Qg = np.linalg.svd(gram.basis, full_matrices=False)[0]
    Qd = np.linalg.svd(dense.basis, full_matrices=False)[0][:, : gram.dim_T_tilde]
    assert np.linalg.norm(Qg - Qd @ (Qd.T @ Qg), axis=0).max() < 1e-5
    with pytest.raises(gb.UnknownNameError):
        gb.perturbable_basis(model, theta, X, S, strategy="sparse")
