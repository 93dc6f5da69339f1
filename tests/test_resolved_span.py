"""The Gram strategy's span resolved below K's floor (gradbasis.solve.resolved_span): it must
find directions of J that K's rounding hides, agree with the dense SVD's span, and say when it
could not."""

import numpy as np
import pytest

import gradbasis as gb
from gradbasis.solve.gram import gram_floor, solve_gram_pivoted
from gradbasis.solve.resolved_span import resolved_span_minimum


def _near_duplicates(offset, m=40, sizes=(4, 12, 2), seed=0):
    """Inputs in pairs x, x + offset * e: J's rows come in pairs whose difference is ~offset
    times their size, so J has m/2 * d_y singular values near offset * sigma_max."""
    rng = np.random.default_rng(seed)
    X = np.repeat(rng.standard_normal((m // 2, sizes[0])), 2, axis=0)
    X[1::2] += offset * rng.standard_normal((m // 2, sizes[0]))
    model = gb.MLP(list(sizes), activation="tanh", bias=True)
    theta = model.init(seed=seed)
    Y = rng.standard_normal((m, sizes[-1]))
    return model, theta, X, Y


def _dense(model, theta, X, loss, Y, w):
    return gb.induced_minimum(model.jacobian(theta, X), loss, Y, w)


@pytest.mark.parametrize("offset", [1e-6, 1e-8])
def test_finds_directions_below_the_gram_floor(offset):
    model, theta, X, Y = _near_duplicates(offset)
    m, d = Y.shape
    w = np.full(m, 1.0 / m)
    loss = gb.SquaredLoss()
    dense = _dense(model, theta, X, loss, Y, w)
    res, how = resolved_span_minimum(model, theta, X, loss, Y, w)
    # the pairs' differences sit far below the floor and far above the rank cut
    assert offset < gram_floor(m * d) / 10 and offset > 1e3 * how.extension_cut
    assert how.extension_rank > 0 and how.resolved
    assert res.rank == dense.rank
    # the dense SVD's answer, up to the tilt K's rounding gives range(L) (about n eps cond(K_PP)
    # <= sqrt(n eps) ~ 1e-7 here); the floor-only answer below is off by 1e-3 and more
    scale = max(1.0, abs(dense.value))
    assert abs(res.value - dense.value) <= 1e-6 * scale
    assert abs(res.lower - dense.lower) <= 1e-6 * scale
    # K alone cannot see those directions: its answer is far above (this is what the test guards)
    K = model.gram(theta, X)
    floor_only, _ = solve_gram_pivoted(K, loss, Y, w, None, (), 1e-12, 200)
    assert floor_only.value > dense.value + 1e-3 * scale


def test_exact_duplicates_need_one_block_of_probes():
    model, theta, X, Y = _near_duplicates(0.0)
    w = np.full(Y.shape[0], 1.0 / Y.shape[0])
    res, how = resolved_span_minimum(model, theta, X, gb.SquaredLoss(), Y, w, probes=12)
    assert how.extension_rank == 0 and how.probes == 12 and how.resolved
    assert how.left_out_bound <= how.extension_cut
    assert how.failure_probability == pytest.approx(1e-12)
    # closed form: the pair means
    pair = np.repeat(Y.reshape(-1, 2, Y.shape[1]).mean(axis=1), 2, axis=0)
    exact = float(np.mean(np.sum((Y - pair) ** 2, axis=1)))
    assert abs(res.value - exact) <= 1e-10 * exact and abs(res.lower - exact) <= 1e-10 * exact


def test_says_unresolved_when_the_extension_is_capped():
    model, theta, X, Y = _near_duplicates(1e-6)
    w = np.full(Y.shape[0], 1.0 / Y.shape[0])
    _, how = resolved_span_minimum(model, theta, X, gb.SquaredLoss(), Y, w, max_extension=2)
    assert not how.resolved
    assert how.left_out_bound > how.extension_cut
    assert "left out" in how.describe()


def test_reproducible_for_a_seed():
    model, theta, X, Y = _near_duplicates(1e-7)
    w = np.full(Y.shape[0], 1.0 / Y.shape[0])
    a, _ = resolved_span_minimum(model, theta, X, gb.SquaredLoss(), Y, w, seed=3)
    b, _ = resolved_span_minimum(model, theta, X, gb.SquaredLoss(), Y, w, seed=3)
    assert a.value == b.value and a.lower == b.lower and a.rank == b.rank


@pytest.mark.parametrize("loss", ["squared", "cross_entropy"])
def test_theorem1_gram_matches_dense_at_a_critical_point(loss):
    rng = np.random.default_rng(4)
    model = gb.MLP([3, 6, 3], activation="tanh", bias=True)
    X = rng.standard_normal((30, 3))
    Y = rng.standard_normal((30, 3)) if loss == "squared" else rng.dirichlet(np.ones(3), 30)
    obj = gb.Objective(model, loss, X, Y)
    theta = gb.minimize(obj, model.init(seed=1)).theta
    dense = gb.theorem1(obj, theta, strategy="dense")
    gram = gb.theorem1(obj, theta, strategy="gram")
    assert gram.judged_by == "gram"
    assert gram.verdict == dense.verdict
    scale = max(1.0, abs(dense.loss_value))
    assert abs(gram.lower - dense.lower) <= 1e-6 * scale  # K's tilt, as above
    assert gram.induced.details["resolution"]["resolved"]


def test_theorem1_never_holds_on_a_tilted_gram_span():
    """K's rounding tilts range(L) slightly; at a tolerance far below that tilt the Gram
    answer is no certificate: theorem1 must judge on the dense span or not say "holds"."""
    rng = np.random.default_rng(0)
    model = gb.MLP([3, 8, 2], activation="tanh", bias=True)
    X = rng.standard_normal((60, 3))
    Y = rng.standard_normal((60, 2))
    obj = gb.Objective(model, "squared", X, Y)
    theta = gb.minimize(obj, model.init(seed=0)).theta
    r = gb.theorem1(obj, theta, strategy="gram", rtol=1e-15, grad_tol=1e-3)
    gain = r.induced.details["resolution"]["gain_along_jacobian"]
    if r.judged_by == "gram":
        assert gain <= 1e-2 * r.tol or r.verdict != "holds"
    else:
        assert gain > 1e-2 * r.tol  # the tilt check fired and the dense span took over


@pytest.mark.parametrize("offset", [0.0, 1e-7])
def test_coefficients_reproduce_the_fitted_outputs(offset):
    model, theta, X, Y = _near_duplicates(offset)
    w = np.full(Y.shape[0], 1.0 / Y.shape[0])
    res, how = resolved_span_minimum(model, theta, X, gb.SquaredLoss(), Y, w)
    assert (how.extension_rank > 0) == (offset > 0)
    F = model.jvp(theta, X, res.alpha)
    fitted = np.asarray(res.fitted).reshape(F.shape)
    # L's part maps back through L11, which comes from K: good to about n eps cond(K_PP), up to
    # sqrt(n eps) ~ 1e-7 here with the Cholesky cut at the Gram floor, times modest growth.
    assert np.linalg.norm(F - fitted) <= 1e-4 * np.linalg.norm(fitted)
