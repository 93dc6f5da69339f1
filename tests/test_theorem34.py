"""Theorems 3 (ResNets, Shamir's bound) and 4 (locally linear units, deep linear networks)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import gradbasis as gb


def regression(m, d_x, d_y, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, d_x))
    return X, np.tanh(X @ rng.normal(size=(d_x, d_y))) + 0.3 * rng.normal(size=(m, d_y))


def trained(model, loss, X, Y, seed=0):
    obj = gb.Objective(model, loss, X, Y)
    for s in range(seed, seed + 3):
        res = gb.minimize(obj, model.init(s), method="lbfgs+newton", gtol=1e-10, max_iter=500)
        if res.gradient_norm <= 1e-8:
            return obj, res.theta
    raise AssertionError(f"no run reached ||grad L|| <= 1e-8: {res}")


# ----------------------------------------------------------------------------- linear units
def brute_force_largest_family(W_next_list, linear, d_y):
    """Largest J^(1..H) satisfying condition 3, by trying every subset (tiny nets only)."""
    H = len(linear)
    best = None
    subsets = [
        list(itertools.chain.from_iterable(itertools.combinations(c, r) for r in range(len(c) + 1)))
        for c in linear
    ]
    for choice in itertools.product(*subsets):
        sets = [set(c) for c in choice] + [set(range(d_y))]
        ok = all(
            W_next_list[l][i, j] == 0.0
            for l in range(H)
            for j in sets[l]
            for i in range(W_next_list[l].shape[0])
            if i not in sets[l + 1]
        )
        if ok and (best is None or sum(map(len, sets)) > sum(map(len, best))):
            best = sets
    return [sorted(s) for s in best]


@pytest.mark.parametrize("seed", range(6))
def test_linear_unit_sets_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    model = gb.MLP([2, 3, 3, 2], "relu", bias=True)
    X = rng.normal(size=(8, 2))
    p = model.unflatten(model.init(seed))
    p["b1"] = rng.choice([-5.0, 5.0], size=3)  # units far on one side: clearly linear or dead
    p["b2"] = rng.choice([-5.0, 5.0], size=3)
    p["W1"] *= 0.1
    p["W2"] *= rng.integers(0, 2, size=(3, 3)) * 0.1  # exact zeros decide condition 3
    theta = model.flatten(p)
    sets = gb.linear_unit_sets(model, theta, X)
    linear = [np.flatnonzero(p["b1"] > 0), np.flatnonzero(p["b2"] > 0)]
    assert [s.tolist() for s in sets.linear] == [l.tolist() for l in linear]
    expected = brute_force_largest_family([p["W2"], p["W3"]], linear, 2)
    assert [s.tolist() for s in sets.sets] == expected
    for t in range(3):
        assert sets.in_theta(2, t) == all(len(s) >= 2 for s in expected[t:])
        assert gb.in_theta_nt(model, theta, X, 2, t) == sets.in_theta(2, t)


def test_linear_unit_sets_of_linear_and_smooth_nets(rng):
    X = rng.normal(size=(5, 3))
    lin = gb.MLP([3, 4, 2, 2], "identity")
    assert gb.linear_unit_sets(lin, lin.init(0), X).sizes() == (4, 2, 2)
    smooth = gb.MLP([3, 4, 2], "tanh")
    sets = gb.linear_unit_sets(smooth, smooth.init(0), X)
    assert sets.sizes() == (0, 2) and sets.largest_t(2) == 1 and not sets.in_theta(1, 0)
    with pytest.raises(TypeError, match="eq. 4.3"):
        gb.linear_unit_sets(
            gb.SkipMLP([3, 4, 2], [0]), np.zeros(gb.SkipMLP([3, 4, 2], [0]).num_params), X
        )
    with pytest.raises(gb.InvalidOptionError):
        sets.in_theta(1, 5)


# ----------------------------------------------------------------------------- Theorem 4
@pytest.mark.parametrize("loss", ["squared", "cross_entropy"])
def test_deep_linear_local_minima_reach_the_global_minimum(loss):
    """Proposition 2 (Laurent & Brecht) as Theorem 4 with t = 0: L(theta) equals the convex
    linear model's optimum inf_a sum l(a x) at local minima of deep linear nets."""
    X, Y = regression(30, 3, 2)
    if loss == "cross_entropy":
        Y = np.random.default_rng(1).dirichlet(np.ones(2), size=30)
    obj, theta = trained(gb.MLP([3, 3, 4, 2], "identity", bias=False), loss, X, Y)
    r = gb.theorem4(obj, theta, 0)
    assert r.in_theta and r.verdict == gb.Verdict.HOLDS, r
    assert abs(r.loss_value - r.linear.value) <= 1e-8 * max(1.0, r.loss_value)
    assert r.linear.meets and r.features.meets


def test_bottleneck_narrower_than_dy_stays_above_the_linear_optimum():
    X, Y = regression(40, 4, 3)
    obj, theta = trained(gb.MLP([4, 1, 4, 3], "identity", bias=False), "squared", X, Y)
    r = gb.theorem4(obj, theta, 0)
    assert not r.in_theta and r.verdict == gb.Verdict.DOES_NOT_APPLY and "Theta" in r.reason
    assert r.loss_value - r.linear.value > 0.1 and not r.linear.meets  # a rank-1 fit is worse


def test_relu_net_with_linear_units_beats_linear_regression():
    """One hidden relu layer whose first unit is active on every sample (d_y = 1): theta is in
    Theta_{1,0}, so at the local minimum L(theta) <= the best linear model on x."""
    X, Y = regression(25, 2, 1, seed=3)
    model = gb.MLP([2, 4, 1], "relu")
    obj = gb.Objective(model, "squared", X, Y)
    p = model.unflatten(model.init(0))
    p["b1"][0] = 10.0
    res = gb.minimize(obj, model.flatten(p), method="lbfgs+newton", gtol=1e-10, max_iter=500)
    assert res.gradient_norm <= 1e-8
    r = gb.theorem4(obj, res.theta, 0)
    assert r.in_theta and r.kink_margin > 0 and r.verdict == gb.Verdict.HOLDS, r
    assert r.linear.meets and r.features.meets and r.loss_value < r.linear.value


def test_theorem4_bad_input():
    X, Y = regression(10, 2, 1)
    obj = gb.Objective(gb.MLP([2, 3, 1], "tanh"), "squared", X, Y)
    with pytest.raises(gb.InvalidOptionError):
        gb.theorem4(obj, obj.model.init(0), 2)
    with pytest.raises(TypeError):
        gb.theorem4(
            gb.Objective(gb.ResNet(2, 1, gb.MLP([2, 2], "tanh")), "squared", X, Y), np.zeros(8), 0
        )


# ----------------------------------------------------------------------------- Theorem 3
@pytest.mark.parametrize("d_y", [1, 2])
def test_theorem3_and_shamir_bound_at_resnet_local_minima(d_y):
    data_seed = {1: 3, 2: 1}[d_y]  # data on which these seeds converge in well under a second
    X, Y = regression(30, 3, d_y, seed=data_seed)
    obj, theta = trained(
        gb.ResNet(3, d_y, gb.PreActResidualStack(3, 2, 1, "tanh")), "squared", X, Y, seed=1
    )
    r = gb.theorem3(obj, theta)
    assert r.dims_ok and r.verdict == gb.Verdict.HOLDS, r
    assert r.shamir.meets and r.features.meets
    assert r.shamir.residual <= 1e-6 and r.features.residual <= 1e-6
    assert r.loss_value <= r.features.value + r.tol <= r.shamir.value + 2 * r.tol


def test_theorem3_at_init_and_with_too_many_outputs():
    X, Y = regression(30, 3, 2, seed=1)
    model = gb.ResNet(3, 2, gb.PreActResidualStack(3, 2, 1, "tanh"))
    r = gb.theorem3(gb.Objective(model, "squared", X, Y), model.init(0))
    assert r.verdict == gb.Verdict.DOES_NOT_APPLY and "critical" in r.reason
    wide = gb.ResNet(3, 2, gb.MLP([3, 4, 1], "tanh"))  # d_z = 1 < d_y
    r = gb.theorem3(gb.Objective(wide, "squared", X, Y), wide.init(0))
    assert not r.dims_ok and r.verdict == gb.Verdict.DOES_NOT_APPLY and "d_y <= min" in r.reason
    with pytest.raises(TypeError, match="ResNet"):
        gb.theorem3(gb.Objective(gb.MLP([3, 2], []), "squared", X, Y), np.zeros(8))
