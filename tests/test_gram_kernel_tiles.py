"""The Gram kernel's tiling against J J^T: ragged tiles, several output sizes, cross blocks.

The kernel splits the samples into tiles of about 256 Jacobian rows (256 // d_y samples), computes
only tiles on and above the diagonal of K(X, X) (diagonal tiles as one triangle) and skips the
product for the output layer, whose back-propagated derivatives are the unit vectors. The sizes
below give several tiles of unequal size for each d_y. Tolerance: K's entries are sums of a few
hundred products of O(1) numbers, so rounding differences between the two orders of summation
stay near 1e-15 of max |K|; 1e-12 leaves room and still fails on any misplaced tile or entry.
"""

from __future__ import annotations

import numpy as np
import pytest

import gradbasis as gb

TOL = 1e-12


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got - ref).max() / np.abs(ref).max())


# (d_y, m): 600 samples are 3 tiles for d_y = 1, 200 are 3 for d_y = 3, 61 are 3 for d_y = 10.
@pytest.mark.parametrize(("d_y", "m"), [(1, 600), (3, 200), (10, 61), (10, 7)])
def test_tiles_match_the_jacobian_product(d_y, m):
    rng = np.random.default_rng(10 + d_y)
    model = gb.MLP([4, 33, 17, d_y], activation="tanh", bias=True)
    theta = model.init(seed=d_y)
    X = rng.normal(size=(m, 4))
    X2 = rng.normal(size=(m // 2 + 3, 4))
    J, J2 = model.jacobian(theta, X), model.jacobian(theta, X2)
    K = model.gram(theta, X, n_threads=2)
    assert K.shape == (m * d_y, m * d_y)
    assert rel_err(K, J @ J.T) <= TOL
    assert np.array_equal(K, K.T)
    K12 = model.gram(theta, X, X2, n_threads=2)
    assert rel_err(K12, J @ J2.T) <= TOL
    K21 = model.gram(theta, X2, X, n_threads=2)
    assert rel_err(K21, K12.T) <= TOL


@pytest.mark.parametrize("d_y", [1, 10])
def test_weighted_tiles_match(d_y):
    rng = np.random.default_rng(3)
    model = gb.MLP([3, 20, 9, d_y], activation="tanh", bias=True)
    theta = model.init(seed=1)
    X = rng.normal(size=(300 if d_y == 1 else 57, 3))
    names = [s.name for s in model.param_specs]
    weights = {names[0]: 2.5, names[1]: 0.0, names[-2]: 0.25, names[-1]: 3.0}  # output layer too
    c = np.ones(model.num_params)
    for s in model.param_specs:
        c[s.offset : s.offset + s.size] = weights.get(s.name, 1.0)
    J = model.jacobian(theta, X)
    assert rel_err(model.gram(theta, X, weights=weights), (J * c) @ J.T) <= TOL
    X2 = rng.normal(size=(40, 3))
    J2 = model.jacobian(theta, X2)
    assert rel_err(model.gram(theta, X, X2, weights=weights), (J * c) @ J2.T) <= TOL


def test_a_single_dense_layer():
    """The only dense node is the output node: its product is skipped, nothing else adds to K."""
    rng = np.random.default_rng(4)
    model = gb.MLP([6, 4], activation="tanh", bias=True)
    theta = model.init(seed=2)
    X = rng.normal(size=(150, 6))
    J = model.jacobian(theta, X)
    K = model.gram(theta, X)
    assert rel_err(K, J @ J.T) <= TOL
    # K = (X X^T + 1) kron I_4 exactly in structure: off-diagonal output pairs are exact zeros.
    assert np.all(K.reshape(150, 4, 150, 4)[:, 0, :, 1] == 0.0)


@pytest.mark.parametrize("d_y", [1, 3])
def test_tiles_are_identical_for_every_thread_count(d_y):
    rng = np.random.default_rng(5)
    model = gb.MLP([5, 24, 11, d_y], activation="tanh", bias=True)
    theta = model.init(seed=3)
    X = rng.normal(size=(530 if d_y == 1 else 190, 5))
    X2 = rng.normal(size=(270, 5))
    K1 = model.gram(theta, X, n_threads=1)
    assert np.array_equal(K1, model.gram(theta, X, n_threads=2))
    assert np.array_equal(K1, model.gram(theta, X, n_threads=3))
    C1 = model.gram(theta, X, X2, n_threads=1)
    assert np.array_equal(C1, model.gram(theta, X, X2, n_threads=2))
