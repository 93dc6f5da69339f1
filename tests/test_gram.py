"""Structured Gram matrices against J J^T, and the three strategies for the induced model."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ZOO, random_point

import gradbasis as gb
from gradbasis.solve.strategies import choose_strategy, gradient_basis_minimum, memory_estimate


@pytest.mark.parametrize("name", sorted(ZOO))
def test_gram_equals_jacobian_product(name, rng):
    model = ZOO[name]
    theta, X = random_point(model, rng, m=70)  # 70 samples: several tiles and a ragged last one
    X2 = rng.normal(size=(33, model.input_dim))
    J, J2 = model.jacobian(theta, X), model.jacobian(theta, X2)
    ref = J @ J.T
    scale = np.abs(ref).max()
    K = model.gram(theta, X)
    assert np.abs(K - ref).max() <= 1e-10 * scale
    assert np.array_equal(K, K.T)
    assert np.abs(model.gram(theta, X, X2) - J @ J2.T).max() <= 1e-10 * scale
    assert np.abs(model.gram_diagonal(theta, X) - np.diag(ref)).max() <= 1e-10 * scale
    assert model.gram_trace(theta, X) == pytest.approx(np.trace(ref), rel=1e-12)


def test_weighted_gram(rng):
    model = ZOO["mlp-tanh"]
    theta, X = random_point(model, rng, m=20)
    weights = {"W1": 2.0, "b2": 0.0, "W3": 0.5}
    c = np.ones(model.num_params)
    for s in model.param_specs:
        c[s.offset : s.offset + s.size] = weights.get(s.name, 1.0)
    J = model.jacobian(theta, X)
    ref = (J * c) @ J.T
    assert np.abs(model.gram(theta, X, weights=weights) - ref).max() <= 1e-12 * np.abs(ref).max()
    assert model.gram_trace(theta, X, weights=weights) == pytest.approx(np.trace(ref), rel=1e-12)


def test_gram_is_identical_for_every_thread_count(rng):
    model = gb.MLP([5, 40, 30, 3], "gelu")
    theta, X = random_point(model, rng, m=300)
    K1 = model.gram(theta, X, n_threads=1)
    assert np.array_equal(K1, model.gram(theta, X, n_threads=2))
    assert np.array_equal(K1, model.gram(theta, X))


def test_gram_bad_input(rng):
    model = ZOO["mlp-relu"]
    theta, X = random_point(model, rng, m=10)
    with pytest.raises(gb.UnknownNameError):
        model.gram(theta, X, weights={"W9": 1.0})
    with pytest.raises(gb.InvalidOptionError):
        model.gram(theta, X, weights={"W1": -1.0})
    with pytest.raises(gb.ShapeError):
        model.gram(theta, X, rng.normal(size=(4, model.input_dim + 1)))
    with pytest.raises(gb.ShapeError):
        model.gram(theta, X, out=np.empty((3, 3)))
    with pytest.raises(gb.MemoryBudgetError, match="Gram matrix 30 x 30"):
        model.gram(theta, X, memory_budget=1000)
    out = np.empty((30, 30))
    assert model.gram(theta, X, out=out) is out


# ----------------------------------------------------------------------------- strategies
def problem(loss, seed=0, m=40):
    rng = np.random.default_rng(seed)
    d_y = 1 if loss == "smoothed_hinge" else 3
    model = gb.MLP([4, 6, d_y], "tanh")
    X = rng.normal(size=(m, 4))
    Y = {
        "squared": rng.normal(size=(m, d_y)),
        "cross_entropy": rng.dirichlet(np.ones(d_y), m),
        "smoothed_hinge": rng.choice([-1.0, 1.0], (m, 1)),
    }[loss]
    loss_obj = gb.SmoothedHingeLoss(3) if loss == "smoothed_hinge" else loss
    return gb.Objective(model, loss_obj, X, Y), model.init(seed)


@pytest.mark.parametrize("loss", ["squared", "cross_entropy", "smoothed_hinge"])
def test_three_strategies_agree(loss):
    obj, theta = problem(loss)
    gram = gradient_basis_minimum(obj, theta, strategy="gram")
    dense = gradient_basis_minimum(obj, theta, strategy="dense")
    tol = 1e-9 * max(1.0, abs(dense.value))
    # J has full column rank here (sigma_min / sigma_max >= 1.4e-4): the pivoted factor keeps
    # every direction, so both solve over the same span
    assert gram.strategy == "gram" and gram.rank == dense.rank == obj.model.num_params
    assert gram.details["factorization"] == "pivoted_cholesky"
    assert abs(gram.value - dense.value) <= tol and abs(gram.lower - dense.lower) <= tol
    # alpha comes back in theta coordinates: J alpha reproduces the fitted outputs
    np.testing.assert_allclose(obj.model.jvp(theta, obj.X, gram.alpha), gram.fitted, atol=1e-8)
    free = gradient_basis_minimum(obj, theta, strategy="matrix_free")
    assert free.strategy == "matrix_free" and free.converged
    assert abs(free.value - dense.value) <= tol and free.lower <= free.value
    assert free.lower >= dense.lower - 1e-8 * max(1.0, abs(dense.value))
    assert free.details["dual_residual"] <= 1e-9 and free.details["lower_scope"].startswith(
        "||alpha||"
    )


def test_auto_chooses_from_the_memory_estimate():
    obj, theta = problem("squared")
    est = memory_estimate(obj)
    assert est.rows == 120 and est.params == obj.model.num_params
    assert choose_strategy(obj)[0] == "dense"  # 51 parameters, 120 outputs: J is tall
    budget = (est.gram + est.dense) // 2 if est.gram < est.dense else None
    if budget is not None:
        assert choose_strategy(obj, budget)[0] == "gram"
    assert choose_strategy(obj, est.matrix_free)[0] == "matrix_free"
    r = gradient_basis_minimum(obj, theta, memory_budget=est.matrix_free)
    assert r.strategy == "matrix_free" and r.details["memory_estimate_bytes"] <= est.matrix_free
    with pytest.raises(gb.MemoryBudgetError, match="120 x 51"):
        gradient_basis_minimum(obj, theta, memory_budget=est.matrix_free - 1)
    with pytest.raises(gb.MemoryBudgetError, match="'dense' does not fit"):
        gradient_basis_minimum(obj, theta, strategy="dense", memory_budget=est.dense - 1)
    with pytest.raises(gb.UnknownNameError):
        gradient_basis_minimum(obj, theta, strategy="fast")


def test_wide_jacobian_prefers_gram():
    rng = np.random.default_rng(0)
    model = gb.MLP([3, 64, 2], "tanh")  # 386 parameters for 20 outputs
    obj = gb.Objective(model, "squared", rng.normal(size=(10, 3)), rng.normal(size=(10, 2)))
    assert choose_strategy(obj)[0] == "gram"


def test_theorem1_by_every_strategy_at_a_trained_point():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    Y = np.tanh(X @ rng.normal(size=(3, 2))) + 0.3 * rng.normal(size=(30, 2))
    model = gb.MLP([3, 3, 2], "tanh")
    obj = gb.Objective(model, "squared", X, Y)
    res = gb.minimize(obj, model.init(0), method="lbfgs+newton", gtol=1e-10)
    assert res.gradient_norm <= 1e-8
    theta = res.theta
    dense = gb.theorem1(obj, theta)
    gram = gb.theorem1(obj, theta, strategy="gram")
    free = gb.theorem1(obj, theta, strategy="matrix_free")
    assert dense.verdict == gram.verdict == gb.Verdict.HOLDS
    assert (dense.strategy, gram.strategy, free.strategy) == ("dense", "gram", "matrix_free")
    assert abs(gram.value - dense.value) <= dense.tol
    # The matrix-free path judges the whole span: never above L, lower bound below its value.
    assert free.value <= free.loss_value + free.tol and free.lower <= free.value
    assert free.verdict in (gb.Verdict.HOLDS, gb.Verdict.CONSISTENT)
    with pytest.raises(gb.UnknownNameError):
        gb.theorem1(obj, theta, strategy="sparse")


def test_gram_theorem1_agrees_with_dense_at_an_exact_global_minimum():
    """A deep linear net at the least-squares optimum: f_X(theta) appended to the Gram basis must
    not count its rounding-level part outside range(J) as one more direction (which once gave a
    value below the global minimum over all affine maps)."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 4))
    Y = X @ rng.normal(size=(4, 3)) + 0.3 * rng.normal(size=(200, 3))
    coef = np.linalg.lstsq(np.hstack([X, np.ones((200, 1))]), Y, rcond=None)[0]
    W1 = rng.normal(size=(12, 4)) / 2.0
    model = gb.MLP([4, 12, 3], "identity")
    theta = model.flatten(
        {"W1": W1, "b1": np.zeros(12), "W2": coef[:4].T @ np.linalg.pinv(W1), "b2": coef[4]}
    )
    obj = gb.Objective(model, "squared", X, Y)
    dense, gram = gb.theorem1(obj, theta), gb.theorem1(obj, theta, strategy="gram")
    assert dense.verdict == gram.verdict == gb.Verdict.HOLDS
    assert gram.rank == dense.rank == 15  # 3 outputs x (4 inputs + 1)
    assert gram.value >= gram.loss_value - gram.tol


def duplicated_problem(loss, weights=False, seed=1):
    """Every input twice and more parameters than outputs: rank J = half the rows, with a gap
    down to rounding, so every strategy's span is well determined."""
    rng = np.random.default_rng(seed)
    d_y = 1 if loss == "smoothed_hinge" else 3
    model = gb.MLP([4, 12, d_y], "tanh")  # 60 + 13 d_y parameters
    X = np.vstack([rng.normal(size=(10, 4))] * 2)
    Y = {
        "squared": rng.normal(size=(20, d_y)),
        "cross_entropy": rng.dirichlet(np.ones(d_y), 20),
        "smoothed_hinge": rng.choice([-1.0, 1.0], (20, 1)),
    }[loss]
    w = rng.uniform(0.5, 2.0, 20) if weights else None
    loss_obj = gb.SmoothedHingeLoss(3) if loss == "smoothed_hinge" else loss
    return gb.Objective(model, loss_obj, X, Y, w), model.init(seed)


@pytest.mark.parametrize("loss", ["squared", "cross_entropy", "smoothed_hinge"])
@pytest.mark.parametrize("weights", [False, True])
def test_gram_and_dense_agree_on_a_rank_deficient_jacobian(loss, weights):
    obj, theta = duplicated_problem(loss, weights)
    gram = gradient_basis_minimum(obj, theta, strategy="gram")
    dense = gradient_basis_minimum(obj, theta, strategy="dense", rank_tol=1e-8)
    assert gram.rank == dense.rank == 10 * obj.model.output_dim
    tol = 1e-9 * max(1.0, abs(dense.value))
    assert abs(gram.value - dense.value) <= tol and abs(gram.lower - dense.lower) <= tol
    assert gram.lower <= gram.value and gram.converged
    np.testing.assert_allclose(obj.model.jvp(theta, obj.X, gram.alpha), gram.fitted, atol=1e-8)
    # the profile's spans are nested: a smaller cut never gives a larger infimum
    values = [p.value for p in gram.profile]  # largest cut first
    assert all(b <= a + tol for a, b in zip(values, values[1:], strict=False))


def test_auto_weighs_estimated_flops_when_the_problem_is_large():
    """2560 samples x 10 outputs and 85,002 parameters: J fits a large budget and is not much
    wider than tall (a memory-only rule would take dense), but its SVD costs over ten times
    more than either other strategy. Nothing is allocated."""
    rng = np.random.default_rng(0)
    model = gb.MLP([64, 256, 256, 10], "tanh")
    obj = gb.Objective(model, "squared", rng.normal(size=(2560, 64)), rng.normal(size=(2560, 10)))
    est = memory_estimate(obj, 10**13)
    assert est.params <= 4 * est.rows and est.fits("dense") and est.fits("gram")
    assert est.flops["dense"] > 10 * max(est.flops["gram"], est.flops["matrix_free"])
    chosen = choose_strategy(obj, 10**13)[0]
    assert chosen != "dense"
    other = "gram" if chosen == "matrix_free" else "matrix_free"
    penalty = {"gram": 1.0, "matrix_free": gb.solve.strategies.MATRIX_FREE_PENALTY}
    assert est.flops[chosen] * penalty[chosen] <= est.flops[other] * penalty[other]
    # the estimate still rules: with K over budget, gram is never chosen
    assert choose_strategy(obj, est.gram - 1)[0] != "gram"


def test_kernels_run_on_the_objectives_threads(monkeypatch):
    obj, theta = problem("squared")
    obj = gb.Objective(obj.model, obj.loss, obj.X, obj.Y, n_threads=1)
    seen = []
    for name in ("jacobian", "gram", "vjp", "jvp"):
        original = getattr(type(obj.model), name)

        def spy(self, *args, _original=original, _name=name, **kwargs):
            seen.append((_name, kwargs.get("n_threads")))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(type(obj.model), name, spy)
    for strategy in ("dense", "gram", "matrix_free"):
        gradient_basis_minimum(obj, theta, strategy=strategy)
    assert {name for name, _ in seen} == {"jacobian", "gram", "vjp", "jvp"}
    assert all(threads == 1 for _, threads in seen), seen


@pytest.mark.parametrize("loss", ["squared", "cross_entropy"])
def test_gram_fallbacks_to_householder_qr_give_the_same_answer(monkeypatch, loss):
    """The semi-normal equations (squared loss) and CholeskyQR2 (other losses) hand over to
    Householder QR when Cholesky fails; the answer must not change."""
    import gradbasis.solve.gram as gs

    obj, theta = duplicated_problem(loss, weights=True)
    ref = gradient_basis_minimum(obj, theta, strategy="gram")

    def failing_cholesky(*args, **kwargs):
        raise np.linalg.LinAlgError("forced")

    monkeypatch.setattr(gs.scipy.linalg, "cholesky", failing_cholesky)
    got = gradient_basis_minimum(obj, theta, strategy="gram")
    assert got.rank == ref.rank
    tol = 1e-10 * max(1.0, abs(ref.value))
    assert abs(got.value - ref.value) <= tol and abs(got.lower - ref.lower) <= tol
    np.testing.assert_allclose(obj.model.jvp(theta, obj.X, got.alpha), got.fitted, atol=1e-8)


def test_gram_of_a_zero_jacobian_is_the_empty_span():
    """A bias-free tanh MLP at theta = 0 has J = 0 exactly: the span is {0}, so the infimum is
    Phi(0), with the same interval from every strategy."""
    rng = np.random.default_rng(5)
    model = gb.MLP([4, 6, 3], "tanh", bias=False)
    for loss, Y in [
        ("squared", rng.normal(size=(8, 3))),
        ("cross_entropy", rng.dirichlet(np.ones(3), 8)),
    ]:
        obj = gb.Objective(model, loss, rng.normal(size=(8, 4)), Y)
        zero = np.zeros(model.num_params)
        assert not np.any(model.jacobian(zero, obj.X))
        gram = gradient_basis_minimum(obj, zero, strategy="gram")
        dense = gradient_basis_minimum(obj, zero, strategy="dense")
        phi0 = obj.value(zero)
        assert gram.rank == dense.rank == 0
        assert gram.value == pytest.approx(phi0, rel=1e-14) and dense.value == pytest.approx(
            phi0, rel=1e-14
        )
        assert gram.lower <= gram.value and not np.any(gram.alpha)
