"""Numerical edge cases: zero and rank-deficient Jacobians, duplicated samples, saturated units,
scales of 1e+-150, separable data. Results are finite and right, or a clear error; verdicts stay
honest: never "holds" on numbers that are not finite, never NaN passed as a number.

Overflow contract: model outputs, the Gram matrix and its diagonal are finite or a
NonFiniteError; the objective's value is +inf (never NaN) where it overflows, so optimisers can
reject the step, and the checks that decide (theorems, classify_point) raise NonFiniteError on
a value, gradient or Hessian-vector product that is not finite.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import gradbasis as gb
from gradbasis.objective import finite_value_and_gradient
from gradbasis.theory import critical_points

STRATEGIES = ("dense", "gram", "matrix_free")
RNG_SEED = 20190521


def data(
    m: int = 12, d_x: int = 3, d_y: int = 2, seed: int = RNG_SEED
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, d_x)), rng.normal(size=(m, d_y))


def numbers(result) -> dict[str, float]:
    """The float fields of a result dataclass (verdict numbers)."""
    return {k: v for k, v in vars(result).items() if isinstance(v, float)}


def assert_finite_numbers(result, allow_inf: tuple[str, ...] = ("kink_margin",)) -> None:
    """No NaN anywhere among the numbers; infinity only where it is a meaningful value."""
    for name, value in numbers(result).items():
        assert not math.isnan(value), f"{name} is NaN in {type(result).__name__}"
        if name not in allow_inf:
            assert math.isfinite(value), f"{name} = {value} in {type(result).__name__}"


def finite_or_nonfinite_error(call) -> object:
    """The contract for results that could overflow: finite numbers, or NonFiniteError."""
    try:
        out = call()
    except gb.NonFiniteError:
        return None
    arrays = out if isinstance(out, tuple) else (out,)
    for a in arrays:
        assert np.all(np.isfinite(a)), f"non-finite result {a!r}"
    return out


# ----------------------------------------------------------------------------- exactly zero Jacobian
def zero_jacobian_problem(loss: str = "squared"):
    """A deep linear network with two hidden layers and no biases at theta = 0: every partial
    derivative of f is a product that contains a zero weight matrix, so J = 0 exactly."""
    X, Y = data()
    if loss == "cross_entropy":
        Y = np.eye(2)[np.arange(12) % 2]
    model = gb.MLP([3, 4, 4, 2], "identity", bias=False)
    return gb.Objective(model, loss, X, Y), np.zeros(model.num_params)


def test_zero_jacobian_is_exactly_zero_and_so_is_the_gram():
    obj, theta = zero_jacobian_problem()
    model = obj.model
    assert not np.any(model.jacobian(theta, obj.X))
    assert not np.any(model.gram(theta, obj.X))
    assert not np.any(model.gram_diagonal(theta, obj.X))
    assert not np.any(obj.gradient(theta))


@pytest.mark.parametrize("loss", ["squared", "cross_entropy"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_zero_jacobian_span_is_the_zero_prediction(strategy, loss):
    """span(J) = {0}: the infimum is Phi(0) = L(0) exactly (to 1e-12 relative), every strategy."""
    obj, theta = zero_jacobian_problem(loss)
    L = obj.value(theta)
    res = gb.gradient_basis_minimum(obj, theta, strategy=strategy)
    np.testing.assert_allclose([res.value, res.lower], [L, L], rtol=1e-12)
    assert res.rank in ((0,) if strategy != "matrix_free" else (-1,))  # matrix_free reports no rank
    assert_finite_numbers(res)
    result = gb.theorem1(obj, theta, strategy=strategy)
    assert result.verdict == gb.Verdict.HOLDS, result.reason
    assert_finite_numbers(result)


def test_zero_basis_for_induced_minimum():
    """An all-zero basis has rank 0; the answer is Phi(0) (log 2 for two-class cross-entropy)."""
    Y = np.eye(2)[[0, 1, 1, 0]]
    res = gb.induced_minimum(np.zeros((8, 3)), "cross_entropy", Y)
    assert res.rank == 0
    np.testing.assert_allclose([res.value, res.lower], [math.log(2)] * 2, rtol=1e-14)
    assert all(p.rank == 0 for p in res.profile)


def test_higher_order_saddle_is_not_called_a_local_minimum_by_theorem2():
    """Two hidden layers at theta = 0: gradient and Hessian vanish (the negative curvature is of
    third order), so classify_point can only say "candidate"; Theorem 2's Lemma 3 residual sees
    that theta is no local minimum and the verdict is "does not apply", not "holds"."""
    obj, theta = zero_jacobian_problem()
    point = gb.classify_point(obj, theta)
    assert point.kind == "local-minimum candidate"
    assert point.min_eigenvalue == point.max_eigenvalue == 0.0
    result = gb.theorem2(obj, theta)
    assert result.verdict == gb.Verdict.DOES_NOT_APPLY
    assert "not a local minimum" in result.reason
    assert_finite_numbers(result, allow_inf=("kink_margin", "min_eigenvalue"))


# ----------------------------------------------------------------------------- rank-deficient J
def test_zero_output_layer_leaves_the_span_of_the_output_block():
    """With W2 = 0 the hidden parameters' columns of J are exactly 0, so span(J) is the span of
    the linear model on [h(x), 1]; its infimum matches NumPy's least squares to 1e-10."""
    X, Y = data(m=15)
    model = gb.MLP([3, 4, 2], "tanh")
    params = model.unflatten(model.init(seed=1))
    params["W2"][:] = 0.0
    theta = model.flatten(params)
    obj = gb.Objective(model, "squared", X, Y)
    J = model.jacobian(theta, X)
    hidden = slice(0, params["W1"].size + params["b1"].size)
    assert not np.any(J[:, hidden])
    H = model.node_values(theta, X, model.dense_layers()[1].input_node)
    F = np.hstack([H, np.ones((15, 1))])
    coef = np.linalg.lstsq(F, Y, rcond=None)[0]
    expected = float(np.mean(np.sum((F @ coef - Y) ** 2, axis=1)))
    for strategy in STRATEGIES:
        res = gb.gradient_basis_minimum(obj, theta, strategy=strategy)
        np.testing.assert_allclose(res.value, expected, rtol=1e-10, err_msg=strategy)
        assert res.lower <= expected + 1e-10
    assert (
        gb.gradient_basis_minimum(obj, theta, strategy="dense").rank == np.linalg.matrix_rank(F) * 2
    )
    result = gb.theorem1(obj, theta)
    assert result.verdict == gb.Verdict.DOES_NOT_APPLY  # not a critical point
    assert_finite_numbers(result)


def test_duplicated_basis_columns_do_not_change_the_answer():
    """[B, B, 0] spans what B spans: same value, lower and rank (1e-12 relative)."""
    rng = np.random.default_rng(4)
    B = rng.normal(size=(10, 3))
    Y = rng.normal(size=(5, 2))
    one = gb.induced_minimum(B, "squared", Y)
    many = gb.induced_minimum(np.hstack([B, B, np.zeros((10, 2))]), "squared", Y)
    assert many.rank == one.rank == 3
    np.testing.assert_allclose([many.value, many.lower], [one.value, one.lower], rtol=1e-12)


# ----------------------------------------------------------------------------- duplicated samples
@pytest.mark.parametrize("loss", ["squared", "cross_entropy"])
def test_duplicated_samples_equal_the_unique_data(loss):
    """Every sample twice with weights 1/(2m) is the same objective as once with 1/m: L, grad L
    and the gradient basis infimum agree to 1e-12 relative; rank J is unchanged."""
    X, Y = data(m=10)
    if loss == "cross_entropy":
        Y = np.random.default_rng(1).dirichlet(np.ones(2), size=10)
    model = gb.MLP([3, 2, 2], "tanh")
    theta = model.init(seed=3) + 0.1
    once = gb.Objective(model, loss, X, Y)
    twice = gb.Objective(model, loss, np.vstack([X, X]), np.vstack([Y, Y]))
    v1, g1 = once.value_and_gradient(theta)
    v2, g2 = twice.value_and_gradient(theta)
    np.testing.assert_allclose(v2, v1, rtol=1e-12)
    np.testing.assert_allclose(g2, g1, rtol=1e-12, atol=1e-14)
    for strategy in ("dense", "gram"):
        r1 = gb.gradient_basis_minimum(once, theta, strategy=strategy)
        r2 = gb.gradient_basis_minimum(twice, theta, strategy=strategy)
        assert r2.rank == r1.rank
        np.testing.assert_allclose(
            [r2.value, r2.lower], [r1.value, r1.lower], rtol=1e-10, atol=1e-12
        )
    K = model.gram(theta, np.vstack([X, X]))
    assert np.array_equal(K, K.T)
    assert np.linalg.eigvalsh(K).min() >= -1e-12 * np.abs(K).max()


def test_theorem1_at_a_critical_point_of_duplicated_data_is_judged_on_the_numerical_span():
    """Duplicated rows make J rank-deficient; the verdict is judged on its numerical span. At this
    trained point (||grad L|| <= 1e-10) J has singular values down to ~1e-10 sigma_max along
    which the induced model still gains ~5e-4: the honest verdict is "consistent", and the whole
    gap lies along directions the gradient does not resolve."""
    X, Y = data(m=10)
    model = gb.MLP([3, 2, 2], "tanh")
    obj = gb.Objective(model, "squared", np.vstack([X, X, X[:3]]), np.vstack([Y, Y, Y[:3]]))
    fit = gb.minimize(obj, model.init(seed=0), method="lbfgs+newton", gtol=1e-10)
    assert fit.converged
    result = gb.theorem1(obj, fit.theta)
    assert_finite_numbers(result)
    assert result.rank == np.linalg.matrix_rank(model.jacobian(fit.theta, obj.X))
    if result.verdict == gb.Verdict.HOLDS:
        assert result.gap <= result.tol
    else:
        assert result.verdict == gb.Verdict.CONSISTENT, result.reason
        assert result.tol < result.gap <= result.first_order_bound + result.tol
        assert result.resolved_gap is not None and result.resolved_gap <= result.tol


# ----------------------------------------------------------------------------- saturated units
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_saturated_units_give_finite_exact_limits(activation):
    """Pre-activations ~1e3: tanh/sigmoid are exactly +-1 / 0 or 1 in float64 and their
    derivatives exactly 0, so the hidden columns of J vanish; everything stays finite and
    consistent (gram = J J^T and grad L = J^T u to 1e-12 relative)."""
    X, Y = data()
    model = gb.MLP([3, 4, 2], activation)
    theta = model.init(seed=0) + 0.1
    Xs = 1e3 * np.sign(X)  # every |pre-activation| is far beyond saturation
    params = model.unflatten(theta)
    params["W1"] = np.sign(params["W1"]) + (params["W1"] == 0)
    theta = model.flatten(params)
    J = model.jacobian(theta, Xs)
    hidden = slice(0, params["W1"].size + params["b1"].size)
    assert np.all(np.isfinite(J)) and not np.any(J[:, hidden])
    np.testing.assert_allclose(model.gram(theta, Xs), J @ J.T, rtol=1e-12, atol=1e-12)
    for loss, targets in [("squared", Y), ("cross_entropy", np.eye(2)[np.arange(12) % 2])]:
        obj = gb.Objective(model, loss, Xs, targets)
        value, grad = obj.value_and_gradient(theta)
        assert np.isfinite(value) and np.all(np.isfinite(grad))
        np.testing.assert_allclose(
            grad, J.T @ obj.residual_duals(theta).ravel(), rtol=1e-12, atol=1e-14
        )
        assert_finite_numbers(gb.theorem1(obj, theta))
        assert_finite_numbers(gb.classify_point(obj, theta))


def test_cross_entropy_at_huge_logits_is_finite_and_exact():
    """log-sum-exp is evaluated stably: at logits +-1e3 and +-1e300 the loss is 0 or the exact
    margin, the gradient the exact limit e_k - y, the Hessian 0."""
    ce = gb.CrossEntropyLoss()
    Q = np.array([[1e3, -1e3], [-1e3, 1e3], [1e300, -1e300]])
    Y = np.eye(2)[[0, 0, 0]]
    np.testing.assert_array_equal(ce.value(Q, Y), [0.0, 2e3, 0.0])
    np.testing.assert_array_equal(ce.gradient(Q, Y), [[0.0, 0.0], [-1.0, 1.0], [0.0, 0.0]])
    np.testing.assert_array_equal(np.abs(ce.hessian(Q, Y)), 0.0)


# ----------------------------------------------------------------------------- scales of 1e+-150
@pytest.mark.parametrize("scale", [1e150, 1e-150])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "softplus", "gelu", "identity"])
def test_inputs_scaled_by_1e150_give_finite_results(activation, scale):
    """X * 1e+-150 with unit weights: f, J and K are finite (|f| ~ 1e150 at most), and the
    Gram matrix still equals J J^T (1e-12 relative)."""
    X, _ = data()
    model = gb.MLP([3, 4, 2], activation)
    theta = model.init(seed=0) + 0.1
    Xs = X * scale
    f = model.forward(theta, Xs)
    J = model.jacobian(theta, Xs)
    K = model.gram(theta, Xs)
    assert np.all(np.isfinite(f)) and np.all(np.isfinite(J)) and np.all(np.isfinite(K))
    np.testing.assert_allclose(K, J @ J.T, rtol=1e-12, atol=1e-12 * np.abs(K).max())


@pytest.mark.parametrize("scale", [1e-150, 1e150])
def test_deep_linear_network_is_homogeneous_at_extreme_scales(scale):
    """Without biases f(theta, c X) = c f(theta, X) and J(theta, c X) = c J(theta, X), to
    1e-15 relative, for c = 1e+-150 (no underflow: |f| ~ 1e-150 is far above 1e-308)."""
    X, _ = data()
    model = gb.MLP([3, 4, 2], "identity", bias=False)
    theta = model.init(seed=0)
    np.testing.assert_allclose(
        model.forward(theta, X * scale), scale * model.forward(theta, X), rtol=1e-15
    )
    np.testing.assert_allclose(
        model.jacobian(theta, X * scale), scale * model.jacobian(theta, X), rtol=1e-15
    )


@pytest.mark.parametrize("scale", [1e-150, 1e150])
def test_induced_minimum_does_not_depend_on_the_basis_scale(scale):
    """range(c B) = range(B): the same value and lower bound (1e-10 relative) for c = 1e+-150."""
    rng = np.random.default_rng(5)
    B = rng.normal(size=(12, 4))
    Y = rng.normal(size=(6, 2))
    base = gb.induced_minimum(B, "squared", Y)
    scaled = gb.induced_minimum(B * scale, "squared", Y)
    assert scaled.rank == base.rank == 4
    np.testing.assert_allclose([scaled.value, scaled.lower], [base.value, base.lower], rtol=1e-10)


def test_tiny_parameters_give_finite_verdicts():
    """theta * 1e-150: outputs ~1e-150 (products of two layers ~1e-300, still normal numbers);
    every number in the verdicts is finite."""
    X, Y = data()
    model = gb.MLP([3, 4, 2], "tanh")
    obj = gb.Objective(model, "squared", X, Y)
    theta = (model.init(seed=0) + 0.1) * 1e-150
    assert_finite_numbers(gb.theorem1(obj, theta))
    assert_finite_numbers(gb.classify_point(obj, theta))
    for strategy in STRATEGIES:
        assert_finite_numbers(gb.gradient_basis_minimum(obj, theta, strategy=strategy))


def overflowing_problem():
    """A one-hidden-layer linear network with theta * 1e150: outputs ~1e300 are representable,
    but the squared loss (~1e600) is not."""
    X, Y = data()
    model = gb.MLP([3, 4, 2], "identity")
    obj = gb.Objective(model, "squared", X, Y)
    return obj, (model.init(seed=0) + 0.1) * 1e150


def test_outputs_near_the_float_limit_are_finite():
    obj, theta = overflowing_problem()
    f = obj.model.forward(theta, obj.X)
    assert np.all(np.isfinite(f)) and np.abs(f).max() > 1e298
    assert np.all(np.isfinite(obj.model.jacobian(theta, obj.X)))


def nan_outputs_problem(loss: str = "squared"):
    """Four identity layers with theta * 1e100: the outputs (~1e400) overflow inside the network,
    where inf - inf gives NaN outputs, so the C++ sum of the loss is NaN before it reaches L."""
    X, Y = data()
    if loss == "cross_entropy":
        Y = np.eye(2)[np.arange(12) % 2]
    model = gb.MLP([3, 4, 4, 4, 2], "identity", bias=False)
    return gb.Objective(model, loss, X, Y), model.init(seed=0) * 1e100


@pytest.mark.parametrize(
    "problem", ["loss overflows", "squared outputs NaN", "cross_entropy outputs NaN"]
)
def test_objective_that_overflows_is_plus_infinity(problem):
    """The documented contract (Objective.value_and_gradient): L = +inf exactly, never NaN, so that
    optimisers' line searches reject the step; the gradient may hold inf or NaN there."""
    obj, theta = (
        overflowing_problem()
        if problem == "loss overflows"
        else nan_outputs_problem(problem.split()[0])
    )
    value, grad = obj.value_and_gradient(theta)
    assert value == math.inf
    assert obj.value(theta) == math.inf
    assert grad.shape == theta.shape


@pytest.mark.parametrize("problem", ["loss overflows", "squared outputs NaN"])
def test_checks_refuse_an_overflowing_objective(problem):
    """finite_value_and_gradient (and so every theorem check and classify_point) raise
    NonFiniteError naming the overflow instead of deciding on L = inf."""
    obj, theta = overflowing_problem() if problem == "loss overflows" else nan_outputs_problem()
    with pytest.raises(gb.NonFiniteError, match="overflow"):
        finite_value_and_gradient(obj, theta)
    for check in (gb.theorem1, gb.classify_point, gb.theorem2):
        with pytest.raises(gb.NonFiniteError, match="overflow"):
            check(obj, theta)


def test_hessian_vector_that_overflows_is_returned_as_computed():
    """hessian_vector hands back the product as computed (optimisers may still use it); on this
    problem it holds NaN. Nothing decides on it: hessian_extremes raises NonFiniteError both on the
    exact dense Hessian and inside Lanczos."""
    obj, theta = overflowing_problem()
    Hv = obj.hessian_vector(theta, np.ones(obj.model.num_params))
    assert Hv.shape == theta.shape and np.isnan(Hv).any()
    with pytest.raises(gb.NonFiniteError, match="Hessian .* overflow"):
        critical_points.hessian_extremes(obj, theta)


def hessian_overflow_problem():
    """An exact global minimum with L = 0 and grad L = 0 whose Hessian (2/m) X^T X ~ 2^1060 is
    beyond float64: the basis model W x with X = 2^530 I and W = Y^T / 2^530 (powers of two, so
    f = Y exactly)."""
    s = 2.0**530
    model = gb.BasisModel(2, 1)
    Y = np.array([[1.5], [-0.75]])
    return gb.Objective(model, "squared", s * np.eye(2), Y), Y.ravel() / s


@pytest.mark.parametrize("lanczos", [False, True])
def test_curvature_checks_refuse_an_overflowing_hessian(monkeypatch, lanczos):
    """L and its gradient are exactly 0 but the Hessian-vector products are inf: classify_point and
    theorem2's saddle test (check_minimum) raise NonFiniteError rather than read lambda_min off
    non-finite numbers, whether the Hessian is formed densely or probed by Lanczos."""
    if lanczos:
        monkeypatch.setattr(critical_points, "DENSE_HESSIAN_LIMIT", 0)
    obj, theta = hessian_overflow_problem()
    assert obj.value_and_gradient(theta)[0] == 0.0 and not np.any(obj.gradient(theta))
    assert not np.isfinite(obj.hessian_vector(theta, np.array([1.0, 0.0]))).all()
    with pytest.raises(gb.NonFiniteError, match="Hessian of L at theta is not finite"):
        gb.classify_point(obj, theta)
    with pytest.raises(gb.NonFiniteError, match="Hessian of L at theta is not finite"):
        gb.theorem2(obj, theta)
    # Theorem 1 needs no Hessian of L: an exact global minimum, and it holds with finite numbers.
    result = gb.theorem1(obj, theta)
    assert result.verdict == gb.Verdict.HOLDS, result.reason
    assert_finite_numbers(result)


def test_theorem1_never_holds_on_an_overflowing_loss():
    """Either a NonFiniteError that names the overflow, or 'does not apply' with finite numbers."""
    obj, theta = overflowing_problem()
    try:
        result = gb.theorem1(obj, theta)
    except gb.NonFiniteError:
        return
    assert result.verdict == gb.Verdict.DOES_NOT_APPLY, result.reason
    assert "finite" in result.reason or "overflow" in result.reason
    assert not any(math.isnan(v) for v in numbers(result).values())


def test_classify_point_on_an_overflowing_loss_is_an_error_or_not_critical():
    obj, theta = overflowing_problem()
    try:
        point = gb.classify_point(obj, theta)
    except gb.NonFiniteError:
        return
    assert point.kind == "not critical"
    assert not any(math.isnan(v) for v in numbers(point).values())


@pytest.mark.parametrize("method", ["forward", "gram", "gram_diagonal"])
def test_outputs_that_overflow_are_an_error(method):
    """Four identity layers with theta * 1e100: |f| ~ 1e400 is not representable."""
    X, _ = data()
    model = gb.MLP([3, 4, 4, 4, 2], "identity", bias=False)
    theta = model.init(seed=0) * 1e100
    finite_or_nonfinite_error(lambda: getattr(model, method)(theta, X))


def test_gram_that_overflows_names_the_overflow():
    """K ~ 1e600 while every Jacobian entry is finite (~1e300): NonFiniteError counts the entries
    beyond float64, for K, its diagonal and a cross block, also when K is written into ``out``."""
    X, _ = data()
    model = gb.MLP([3, 4, 4, 4, 2], "identity", bias=False)
    theta = model.init(seed=0) * 1e100
    assert np.all(np.isfinite(model.jacobian(theta, X)))
    with pytest.raises(
        gb.NonFiniteError, match=r"Gram matrix overflows float64 \(\d+ of 576 entries"
    ):
        model.gram(theta, X)
    with pytest.raises(
        gb.NonFiniteError, match=r"Gram matrix overflows float64 \(\d+ of 24 entries"
    ):
        model.gram_diagonal(theta, X)
    with pytest.raises(gb.NonFiniteError, match="rescale the data or theta"):
        model.gram(theta, X, X[:3], out=np.empty((24, 6)))
    with pytest.raises(gb.NonFiniteError, match="overflow"):
        model.gram_trace(theta, X)


def test_gram_block_is_exact_where_the_jacobian_product_is():
    """A linear network with theta ~ 1e150: J(x = 1) has entries ~1e299 and J(x = 0) = 0 exactly,
    so the cross block K(X, X2) = J(X) J(X2)^T is exactly 0 (the library's own Jacobians give it).
    The Gram kernel must not turn it into NaN."""
    model = gb.MLP([1, 1, 2, 1], "identity", bias=False)
    theta = np.array([0.5, 0.5, -0.5, 0.5, 0.5]) * 1e150
    X, X2 = np.ones((1, 1)), np.zeros((1, 1))
    assert not np.any(model.jacobian(theta, X2))
    np.testing.assert_array_equal(model.gram(theta, X, X2), 0.0)


def tiny_input_network():
    """The linear net above at x ~ 1e-200: J ~ 1e100 and K ~ 1e200 are finite, but the kernel's
    first-layer term multiplies |x|^2 (underflows to 0) by a cotangent product ~1e600 (inf)."""
    model = gb.MLP([1, 1, 2, 1], "identity", bias=False)
    theta = np.array([0.5, 0.5, -0.5, 0.5, 0.5]) * 1e150
    X = np.array([[1e-200], [0.0], [3e-200], [-2e-200]])
    return model, theta, X


def test_gram_with_overflowing_layer_factors_equals_the_jacobian_product():
    """K(X, X), a cross block and the diagonal where the kernel's layer factors overflow (whether or
    not this build's kernel gets NaN there): J J^T to 1e-14 relative, K exactly symmetric, ``out``
    receives the result."""
    model, theta, X = tiny_input_network()
    J = model.jacobian(theta, X)
    assert np.all(np.isfinite(J))
    ref = J @ J.T
    out = np.full((4, 4), np.nan)
    K = model.gram(theta, X, out=out)
    assert K is out
    assert np.array_equal(K, K.T)
    np.testing.assert_allclose(K, ref, rtol=1e-14, atol=1e-14 * np.abs(ref).max())
    assert not np.any(K[1]) and not np.any(K[:, 1])  # x = 0: an exact zero row
    np.testing.assert_allclose(model.gram_diagonal(theta, X), np.diag(ref), rtol=1e-14)
    assert model.gram_trace(theta, X) == pytest.approx(np.trace(ref), rel=1e-14)
    np.testing.assert_allclose(
        model.gram(theta, X, X[2:]), J @ J[2:].T, rtol=1e-14, atol=1e-14 * np.abs(ref).max()
    )


class SpoiledGramKernel:
    """A model's C++ graph whose Gram kernels leave NaN in some samples' rows (and, for K(X, X),
    the mirrored columns), as an optimised build's kernel does where a layer factor overflows. It
    makes every build take the recomputation from Jacobian rows."""

    def __init__(self, graph, samples: list[int]):
        self._graph = graph
        self._samples = np.asarray(samples)

    def __getattr__(self, name):
        return getattr(self._graph, name)

    def _rows(self, r: int) -> np.ndarray:
        return (self._samples[:, None] * r + np.arange(r)).ravel()

    def gram(self, theta, X, X2, w, out, threads):
        self._graph.gram(theta, X, X2, w, out, threads)
        rows = self._rows(self._graph.output_dim)
        out[rows, :] = np.nan
        if X2 is None:
            out[:, rows] = np.inf

    def gram_diagonal(self, theta, X, w, out, threads):
        self._graph.gram_diagonal(theta, X, w, out, threads)
        out[self._rows(self._graph.output_dim)] = np.nan


@pytest.mark.parametrize("chunk_bytes", [1 << 25, 1], ids=["one chunk", "one sample per chunk"])
@pytest.mark.parametrize(
    "weights",
    [None, {"W1": 0.0, "b1": 2.0, "W2": 3.0, "b3": 0.0, "W3": 0.25}],
    ids=["C = I", "weighted"],
)
def test_recomputed_gram_rows_agree_with_the_kernel(monkeypatch, weights, chunk_bytes):
    """Rows recomputed from Jacobian rows (weights C applied, J(X2) formed in chunks) agree with the
    kernel's to 1e-13 relative to max |K|; K(X, X) stays exactly symmetric; the other rows are
    the kernel's own bits."""
    from gradbasis.models import gram_overflow

    rng = np.random.default_rng(11)
    model = gb.MLP([3, 5, 4, 2], "tanh")
    theta = model.init(seed=1) + 0.1 * rng.normal(size=model.num_params)
    X, X2 = rng.normal(size=(9, 3)), rng.normal(size=(4, 3))
    ref, ref2 = model.gram(theta, X, weights=weights), model.gram(theta, X, X2, weights=weights)
    ref_diag = model.gram_diagonal(theta, X, weights=weights)
    monkeypatch.setattr(gram_overflow, "_FALLBACK_CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(model, "_graph", SpoiledGramKernel(model._graph, [1, 4, 8]))
    atol = 1e-13 * np.abs(ref).max()
    out = np.empty_like(ref)
    K = model.gram(theta, X, weights=weights, out=out)
    assert K is out and np.array_equal(K, K.T)
    np.testing.assert_allclose(K, ref, rtol=0, atol=atol)
    kept = np.setdiff1d(np.arange(18), [2, 3, 8, 9, 16, 17])  # rows of samples 0, 2, 3, 5, 6, 7
    assert np.array_equal(K[np.ix_(kept, kept)], ref[np.ix_(kept, kept)])
    np.testing.assert_allclose(model.gram(theta, X, X2, weights=weights), ref2, rtol=0, atol=atol)
    np.testing.assert_allclose(
        model.gram_diagonal(theta, X, weights=weights), ref_diag, rtol=0, atol=atol
    )


def test_gram_fallback_respects_the_memory_budget(monkeypatch):
    """Recomputing rows from the Jacobian needs memory of its own: a budget that holds K and the
    layer factors (5,040 bytes here) but not the recomputation's Jacobian rows and blocks
    (29,472 bytes) is a MemoryBudgetError that says why."""
    rng = np.random.default_rng(12)
    model = gb.MLP([3, 5, 4, 2], "tanh")
    theta, X = model.init(seed=0), rng.normal(size=(9, 3))
    monkeypatch.setattr(model, "_graph", SpoiledGramKernel(model._graph, [0, 2]))
    with pytest.raises(
        gb.MemoryBudgetError, match="recomputing 2 samples' rows of the Gram matrix"
    ):
        model.gram(theta, X, memory_budget=6000)
    assert np.all(np.isfinite(model.gram(theta, X, memory_budget=30_000)))


def test_theorem1_with_huge_inputs_is_not_critical_and_warns_nothing():
    """X * 1e150 in a linear network: L ~ 1e299 is finite, the gradient norm overflows. The
    honest verdict is "does not apply" (not critical), computed without warnings (the suite
    turns warnings into errors)."""
    X, Y = data()
    model = gb.MLP([3, 4, 2], "identity")
    obj = gb.Objective(model, "squared", X * 1e150, Y)
    result = gb.theorem1(obj, model.init(seed=0) + 0.1)
    assert result.verdict == gb.Verdict.DOES_NOT_APPLY
    assert not any(math.isnan(v) for v in numbers(result).values())


# ----------------------------------------------------------------------------- separable data
def separable():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(20, 2))
    labels = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    model = gb.BasisModel(2, 2)
    return gb.Objective(model, "cross_entropy", X, np.eye(2)[labels]), model.init(seed=0)


@pytest.mark.parametrize("strategy", ["dense", "gram"])
def test_separable_cross_entropy_is_not_attained_and_the_lower_bound_holds(strategy):
    """The infimum 0 is approached only as ||alpha|| -> inf: attained is False, value is small and
    >= 0, and the lower bound is <= 0 (it must not exceed the true infimum)."""
    obj, theta = separable()
    res = gb.gradient_basis_minimum(obj, theta, strategy=strategy)
    assert not res.attained
    assert 0.0 <= res.value < 1e-6
    assert res.lower <= 0.0 and math.isfinite(res.lower)


def test_separable_cross_entropy_is_not_attained_matrix_free():
    """The matrix-free lower bound only covers ||alpha|| <= radius (documented), so it may exceed
    the infimum 0 here; but the infimum is still not attained."""
    obj, theta = separable()
    res = gb.gradient_basis_minimum(obj, theta, strategy="matrix_free")
    assert res.lower <= res.value < 1e-6
    assert not res.attained


def test_theorem1_on_separable_data_is_honest():
    """At a finite theta on separable data L > 0 and the gradient is not small: "does not apply",
    the interval [lower, value] is finite and contains nothing above L."""
    obj, theta = separable()
    result = gb.theorem1(obj, theta)
    assert result.verdict == gb.Verdict.DOES_NOT_APPLY
    assert not result.attained
    assert_finite_numbers(result)
    assert result.lower <= result.value <= result.loss_value


def test_unknown_curvature_is_never_read_as_a_minimum(monkeypatch):
    """When Lanczos finds no Ritz value, lambda_min is NaN: no class or verdict may treat that as
    'no negative curvature'."""
    import sys

    from gradbasis.theory.certificate import stationarity

    cp, sc = (
        sys.modules["gradbasis.theory.critical_points"],
        sys.modules["gradbasis.theory.span_check"],
    )  # modules, not the functions

    rng = np.random.default_rng(3)
    model = gb.MLP([3, 2], "identity")
    obj = gb.Objective(model, "squared", rng.normal(size=(12, 3)), rng.normal(size=(12, 2)))
    theta = gb.minimize(obj, model.init(0), gtol=1e-12).theta
    assert np.linalg.norm(obj.gradient(theta)) <= 1e-10
    unknown = lambda *a, **k: (float("nan"), 1.0, "lanczos")  # noqa: E731
    monkeypatch.setattr(cp, "hessian_extremes", unknown)
    monkeypatch.setattr(sc, "hessian_extremes", unknown)
    assert gb.classify_point(obj, theta).kind == "critical, curvature unknown"
    L, g = obj.value_and_gradient(theta)
    reason, lam = sc.saddle_reason(obj, theta, stationarity(obj, theta, g, L), 1e-8, 1e-8, 1e-8)
    assert np.isnan(lam) and reason is not None and "unknown" in reason
