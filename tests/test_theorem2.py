"""Theorem 2 and Lemmas 1 and 3 at trained local minima and at a critical point that is not one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gradbasis as gb
from gradbasis.theory.span_check import check_span, judge_span


def figure3_point():
    """f(x) = w2 tanh(w1 x) on three samples (d_theta = 2, f_X in R^3, as in Figures 3-4) at
    w2 = 0 with y orthogonal to tanh(w1 x): a critical point where T is a line, while moving w1
    (free because w2 = 0) turns the tangent line and T~ is all of R^3."""
    model = gb.MLP([1, 1, 1], "tanh", bias=False)
    X = np.array([[0.5], [1.0], [2.0]])
    w1 = 0.7
    t = np.tanh(w1 * X[:, 0])
    y = np.array([1.0, 0.3, 0.0])
    y -= t * (t @ y) / (t @ t)
    return gb.Objective(model, "squared", X, y[:, None]), np.array([w1, 0.0])


def test_perturbable_span_is_strictly_larger_at_a_non_minimum():
    obj, theta = figure3_point()
    assert np.linalg.norm(obj.gradient(theta)) <= 1e-15
    assert gb.theorem1(obj, theta).verdict == gb.Verdict.HOLDS  # a critical point: Theorem 1 holds
    r = gb.theorem2(obj, theta)
    assert (r.dim_T, r.dim_T_tilde) == (1, 3)
    # inf over T is L = ||y||^2 / 3; over T~ = R^3 it is 0, so theta cannot be a local minimum.
    assert r.gradient_basis_value == pytest.approx(r.loss_value, rel=1e-12)
    assert r.value <= 1e-20 and r.lower <= 1e-20 and r.loss_value > 0.25
    assert r.verdict == gb.Verdict.DOES_NOT_APPLY and "saddle" in r.reason and r.min_eigenvalue < 0
    l3 = gb.lemma3(obj, theta, gb.perturbation_directions(obj.model, theta, obj.X))
    assert not l3.holds and l3.max_residual > 1e-4 and l3.gradient_norm <= 1e-15
    # Without the Hessian check, Lemma 3's residual alone shows theta is no local minimum.
    r = gb.theorem2(obj, theta, check_minimum=False)
    assert r.verdict == gb.Verdict.DOES_NOT_APPLY and "not a local minimum" in r.reason


def trained(model, loss, X, Y, seed):
    """A local minimum from init(seed), or the next seeds when a run stalls (over-parameterized
    nets sometimes crawl along flat valleys; the deterministic seeds here converge in < 1 s)."""
    obj = gb.Objective(model, loss, X, Y)
    for s in range(seed, seed + 3):
        res = gb.minimize(obj, model.init(s), method="lbfgs+newton", gtol=1e-10, max_iter=500)
        if res.gradient_norm <= 1e-8:
            return obj, res.theta
    raise AssertionError(f"no run reached ||grad L|| <= 1e-8: {res}")


def regression(m, d_x, d_y, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, d_x))
    return X, np.tanh(X @ rng.normal(size=(d_x, d_y))) + 0.3 * rng.normal(size=(m, d_y))


CASES = {
    # (model, loss, m, d_y): small nets where minimize reaches ||grad|| <= 1e-8 in about a second
    "deep-linear-squared": (lambda: gb.MLP([3, 4, 4, 2], "identity", bias=False), "squared", 30, 2),
    "deep-linear-ce": (
        lambda: gb.MLP([3, 4, 4, 3], "identity", bias=False),
        "cross_entropy",
        30,
        3,
    ),
    "tanh-wide-squared": (lambda: gb.MLP([2, 9, 1], "tanh"), "squared", 6, 1),
    "resnet-squared": (
        lambda: gb.ResNet(3, 2, gb.PreActResidualStack(3, 2, 1, "tanh")),
        "squared",
        30,
        2,
    ),
}
SEEDS = {"resnet-squared": (1, 1)}  # (data, init) seeds; default (0, 0)


@pytest.mark.parametrize("case", sorted(CASES))
def test_theorem2_holds_at_trained_local_minima(case):
    make, loss, m, d_y = CASES[case]
    data_seed, init_seed = SEEDS.get(case, (0, 0))
    X, Y = regression(m, 3 if case != "tanh-wide-squared" else 2, d_y, data_seed)
    if loss == "cross_entropy":
        Y = np.random.default_rng(1).dirichlet(np.ones(d_y), size=m)
    obj, theta = trained(make(), loss, X, Y, seed=init_seed)
    r = gb.theorem2(obj, theta)
    assert r.verdict == gb.Verdict.HOLDS, r
    assert r.gap <= r.tol and r.value <= r.loss_value + r.tol
    assert r.dim_T_tilde >= r.dim_T and r.num_directions > 0
    assert r.lemma3_residual <= 1e-6
    assert r.gradient_basis_value >= r.value - r.tol  # T is inside T~
    assert gb.lemma3(obj, theta, gb.perturbation_directions(obj.model, theta, obj.X)).holds


def test_theorem2_on_an_overparameterized_net_uses_the_null_directions():
    """m = 6 samples, 9 hidden units: every layer input has a left null space, and T~ is
    strictly larger than T; at the local minimum the infimum over T~ is still L(theta)."""
    make, loss, m, d_y = CASES["tanh-wide-squared"]
    X, Y = regression(m, 2, d_y)
    obj, theta = trained(make(), loss, X, Y, seed=0)
    r = gb.theorem2(obj, theta)
    assert r.directions["counts"].get("layer_null", 0) > 0
    assert r.verdict == gb.Verdict.HOLDS


def test_theorem2_does_not_apply_away_from_critical_points():
    X, Y = regression(30, 3, 2)
    model = gb.MLP([3, 4, 4, 2], "identity", bias=False)
    obj = gb.Objective(model, "squared", X, Y)
    r = gb.theorem2(obj, model.init(0))
    assert r.verdict == gb.Verdict.DOES_NOT_APPLY and "not a critical point" in r.reason
    assert r.value < r.loss_value  # the infimum is below L at a random point


def test_theorem2_does_not_apply_in_omega():
    model = gb.MLP([2, 2, 1], "relu")
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    p = {"W1": np.eye(2), "b1": np.array([-1.0, 0.5]), "W2": np.ones((1, 2)), "b2": np.zeros(1)}
    obj = gb.Objective(model, "squared", X, np.zeros((3, 1)))
    r = gb.theorem2(obj, model.flatten(p))
    assert r.kink_margin == 0.0 and r.verdict == gb.Verdict.DOES_NOT_APPLY and "Omega" in r.reason


def test_judge_reports_violation_when_the_lower_end_exceeds_l():
    obj, theta = figure3_point()
    c = check_span(obj, theta, obj.model.jacobian(theta, obj.X))
    verdict, reason = judge_span(type(c)(**{**vars(c), "lower": c.loss_value + 1.0}), grad_tol=1e-6)
    assert verdict == gb.Verdict.VIOLATED and "exceeds L" in reason
    verdict, reason = judge_span(
        type(c)(**{**vars(c), "value": c.loss_value - 1.0, "first_order_bound": 0.5}), grad_tol=1e-6
    )
    assert verdict == gb.Verdict.VIOLATED and "convexity" in reason
    verdict, _ = judge_span(c, grad_tol=1e-6)
    assert verdict != gb.Verdict.VIOLATED


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), split=st.integers(1, 7))
def test_lemma1_union_span_is_sum_of_spans(seed, split):
    rng = np.random.default_rng(seed)
    model = gb.MLP([2, 6, 5, 1], "tanh")
    X = rng.normal(size=(5, 2))
    theta = model.init(seed)
    S = gb.perturbation_directions(model, theta, X, budget=8, combinations=1, seed=seed).directions
    r = gb.lemma1(model, theta, X, S[:split], S[split:], 1e-2)
    assert r.holds and r.dim_union == r.dim_sum and r.max_sine <= 1e-6


def test_bad_theorem2_inputs_are_named():
    obj, theta = figure3_point()
    with pytest.raises(gb.InvalidOptionError):
        gb.theorem2(obj, theta, eps=0.0)
    with pytest.raises(TypeError, match="PerturbationSet"):
        gb.theorem2(obj, theta, S=np.zeros((1, 2)))
    with pytest.raises(gb.ShapeError):
        gb.theorem2(obj, np.zeros(3))
    with pytest.raises(gb.InvalidOptionError):
        gb.lemma3(obj, theta, np.zeros((1, 2)))  # eps missing for a plain array


def test_theorem2_by_the_gram_path_agrees():
    """The Gram path sees T~ down to its floor (n eps)^(1/4) sigma_max: here the first-order
    direction (dim 2), not the one that enters at order eps^2; its infimum is already below L."""
    obj, theta = figure3_point()
    dense, gram = gb.theorem2(obj, theta), gb.theorem2(obj, theta, strategy="gram")
    assert dense.dim_T_tilde == 3 and gram.dim_T_tilde == 2 and gram.dim_T == 1
    assert gram.value < gram.gradient_basis_value - 0.1
    assert gram.verdict == dense.verdict
