"""The Newton solve over a pivoted factor's span (the Gram strategy's non-squared losses), on
small instances of the shapes it meets at scale: a factor extended by orthogonal columns with
tiny norms, a duplicated-input problem whose exact infimum is known in closed form, and the
centred span of cross-entropy when the span holds per-sample constants."""

from __future__ import annotations

import numpy as np
import pytest

import gradbasis as gb
from gradbasis.solve.pivoted import PivotedFactor, pivoted_factor, solve_on_factor

CUTS = (1e-12, 1e-9, 1e-6, 1e-3)


def _targets(loss: str, m: int, d: int, rng) -> np.ndarray:
    if loss == "cross_entropy":
        return rng.dirichlet(np.ones(d), size=m)
    return np.where(rng.standard_normal((m, 1)) > 0, 1.0, -1.0)


def _extended(n: int, p: int, r0: int, n_extra: int, seed: int):
    """A pivoted Cholesky factor of K = J J^T (J of rank r0 + n_extra with a spread spectrum)
    at cut 1e-4, extended by n_extra columns orthogonal to it and to each other, with norms
    from below the factor's last pivot down to 1e-11 of its first."""
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((n, r0)))
    J = (U * np.logspace(0, -3, r0)) @ rng.standard_normal((r0, p))
    factor = pivoted_factor(J @ J.T, 1e-4)
    L, perm = factor.L, factor.perm
    Lo = np.empty_like(L)
    Lo[perm] = L
    Qc, _ = np.linalg.qr(Lo)
    W = rng.standard_normal((n, n_extra))
    for _ in range(2):  # orthogonal to range(L) to rounding
        W -= Qc @ (Qc.T @ W)
    W, _ = np.linalg.qr(W)
    s_extra = np.logspace(
        np.log10(0.5 * factor.scale[-1]), np.log10(1e-11 * factor.scale[0]), n_extra
    )
    E = W * s_extra
    ext = PivotedFactor(np.hstack([L, E[perm]]), perm, np.concatenate([factor.scale, s_extra]))
    B = np.empty_like(ext.L)
    B[perm] = ext.L
    return ext, B


@pytest.mark.parametrize("loss", ["cross_entropy", "smoothed_hinge"])
def test_extended_factor_matches_the_dense_solve(loss):
    """Over [L | E] (E orthogonal, norms down to 1e-11 scale[0]) the solve agrees with the SVD
    solver on the same basis: value and lower within 1e-9 relative (both are certified to
    1e-12 of each other; the two bases agree to rounding amplified by 1e11 at most along E's
    smallest column, a relative 1e-5 of that column's share, which the values do not see)."""
    m, d = (40, 3) if loss == "cross_entropy" else (90, 1)
    n = m * d
    ext, B = _extended(n, 300, 30, 8, seed=4)
    rng = np.random.default_rng(5)
    Y = _targets(loss, m, d, rng)
    w = np.full(m, 1.0 / m)
    lo = gb.get_loss(loss)
    res, z = solve_on_factor(ext, lo, Y, w, np.ones(n), 1e-12, CUTS, 1e-12, 200)
    ref = gb.induced_minimum(B, loss, Y, w, rank_tol=1e-12, cuts=CUTS)
    assert res.rank == ext.L.shape[1] == ref.rank
    assert res.converged and ref.converged
    scale = max(1.0, abs(ref.value))
    assert abs(res.value - ref.value) <= 1e-9 * scale
    assert abs(res.lower - ref.lower) <= 1e-9 * scale
    assert res.lower <= res.value
    assert res.gap <= 1e-11 * scale
    # The fitted outputs are the factor's columns times z (pivoted order) and give the value.
    F = np.empty(n)
    F[ext.perm] = ext.L @ z
    if loss == "cross_entropy":  # fitted may differ from L z by a per-sample constant only
        diff = (F - res.fitted.ravel()).reshape(m, d)
        assert np.max(np.abs(diff - diff.mean(axis=1, keepdims=True))) <= 1e-8 * max(
            1.0, np.max(np.abs(F))
        )
    else:
        assert np.allclose(F, res.fitted.ravel(), rtol=0, atol=1e-8 * max(1.0, np.max(np.abs(F))))
    assert float(w @ lo.value(F.reshape(m, d), Y)) == pytest.approx(res.value, rel=1e-10, abs=1e-12)
    # Profile: each cut is a prefix of the extended factor, as the dense solve's cut is.
    for entry in res.profile:
        assert entry.rank == ext.rank_at(entry.cut)
        assert entry.lower <= entry.value + 1e-12 * max(1.0, abs(entry.value))


def _duplicated(m: int, seed: int = 0):
    model = gb.MLP([4, 16, 16, 3], activation="tanh", bias=True)
    theta = model.init(seed=seed)
    X = np.repeat(np.random.default_rng(1).standard_normal((m // 2, 4)), 2, axis=0)
    Y = np.random.default_rng(3).dirichlet(np.ones(3), size=m)
    pbar = np.repeat(Y.reshape(-1, 2, 3).mean(axis=1), 2, axis=0)
    exact = float(np.mean(-np.sum(Y * np.log(pbar), axis=1)))
    return model, theta, X, Y, exact


def test_duplicated_inputs_reach_the_closed_form_infimum():
    """Each input twice: the span holds every output pair-wise equal (rank 3 m / 2 < p), with
    its per-sample constants, and the infimum is mean_i CE(log pbar_pair, y_i). value and lower
    within 1e-10 relative of it (the certified gap is 1e-12 relative)."""
    model, theta, X, Y, exact = _duplicated(40)
    obj = gb.Objective(model, "cross_entropy", X, Y)
    res = gb.gradient_basis_minimum(obj, theta, strategy="gram")
    assert res.converged and res.attained
    assert abs(res.value - exact) <= 1e-10 * exact
    assert abs(res.lower - exact) <= 1e-10 * exact
    assert res.rank == 60


def test_centred_span_drops_only_the_constants():
    """A basis that holds the per-sample constants exactly (the identity on outputs) next to
    generic columns: cross-entropy ignores the constants, so the infimum over the factor's span
    equals that over the generic columns plus the constants, as the SVD solver finds it."""
    rng = np.random.default_rng(7)
    m, d = 30, 4
    n = m * d
    const = np.kron(np.eye(m), np.ones((d, 1)))  # per-sample constants
    B = np.hstack([const, rng.standard_normal((n, 25))])
    Y = _targets("cross_entropy", m, d, rng)
    w = np.full(m, 1.0 / m)
    factor = pivoted_factor(B @ B.T, 1e-6)
    lo = gb.get_loss("cross_entropy")
    res, _ = solve_on_factor(factor, lo, Y, w, np.ones(n), 1e-6, CUTS, 1e-12, 200)
    ref = gb.induced_minimum(B, "cross_entropy", Y, w, rank_tol=1e-6, cuts=CUTS)
    assert res.rank == ref.rank == 55
    assert res.converged and res.attained
    assert res.value == pytest.approx(ref.value, rel=1e-10)
    assert res.lower == pytest.approx(ref.lower, rel=1e-10)
