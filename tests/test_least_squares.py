"""The squared loss's projection onto a pivoted Cholesky factor's span: each of the three
methods, the order they are tried in, and the fallback when one fails."""

import numpy as np
import pytest

import gradbasis as gb
import gradbasis.solve.least_squares as ls
from gradbasis.solve.gram import gram_floor
from gradbasis.solve.pivoted import PivotedFactor, pivoted_factor


def _factor(dup: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    model = gb.MLP([4, 10, 3], activation="tanh", bias=True)
    theta = model.init(seed=seed)
    X = rng.standard_normal((40 if dup else 80, 4))
    X = np.repeat(X, 2, axis=0) if dup else X
    Y = rng.standard_normal((80, 3))
    w = rng.uniform(0.5, 2.0, 80)
    w /= w.sum()
    D = np.repeat(np.sqrt(w), 3)
    K = model.gram(theta, X)
    K *= D[:, None]
    K *= D[None, :]
    return pivoted_factor(K, gram_floor(K.shape[0])), Y, w, D


def _reference(factor, Y, D, k):
    """The projection by numpy's lstsq on the prefix (SVD based)."""
    b = (D * Y.ravel())[factor.perm]
    z = np.linalg.lstsq(factor.L[:, :k], b, rcond=None)[0]
    return b - factor.L[:, :k] @ z


@pytest.mark.parametrize("dup", [True, False])
def test_projection_matches_lstsq_at_every_cut(dup):
    factor, Y, w, D = _factor(dup)
    cut = gram_floor(factor.L.shape[0])
    main, entries, z = ls.squared_projection(factor, gb.SquaredLoss(), Y, w, D, cut, [1e-1, 1e-2])
    for entry in [*entries, main]:
        k = entry.rank
        res = _reference(factor, Y, D, k)
        exact = float(np.sum(res**2))  # sum_i w_i ||y_i - F_i||^2 with the weights folded in
        assert abs(entry.value - exact) <= 1e-12 * max(1.0, exact)
        assert abs(entry.lower - exact) <= 1e-10 * max(1.0, exact)
    assert main.details["projection"] == "triangular_cg"
    assert np.allclose(
        factor.L[:, : main.rank] @ z,
        (D * Y.ravel())[factor.perm] - _reference(factor, Y, D, main.rank),
        atol=1e-12,
    )


def test_falls_back_when_cg_does_not_converge(monkeypatch):
    factor, Y, w, D = _factor(False)
    monkeypatch.setattr(ls, "CG_MAX_ITER", 1)  # too few for this factor
    cut = gram_floor(factor.L.shape[0])
    main, _, _ = ls.squared_projection(factor, gb.SquaredLoss(), Y, w, D, cut, [])
    assert main.details["projection"] == "semi_normal"
    exact = float(np.sum(_reference(factor, Y, D, main.rank) ** 2))
    assert abs(main.value - exact) <= 1e-12 * max(1.0, exact)


def test_a_factor_without_a_triangular_top_uses_the_normal_equations():
    factor, Y, w, D = _factor(True)
    rng = np.random.default_rng(1)
    Q = np.linalg.qr(rng.standard_normal((factor.L.shape[0], 2)))[0]
    extended = PivotedFactor(
        np.hstack([factor.L, Q * factor.scale[-1]]),
        factor.perm,
        np.concatenate([factor.scale, np.full(2, factor.scale[-1])]),
    )
    main, _, _ = ls.squared_projection(extended, gb.SquaredLoss(), Y, w, D, 0.0, [])
    assert main.details["projection"] in ("semi_normal", "householder_qr")
    exact = float(np.sum(_reference(extended, Y, D, main.rank) ** 2))
    assert abs(main.value - exact) <= 1e-12 * max(1.0, exact)
