"""Jacobians, JVPs, VJPs, gradients and Hessian-vector products against finite differences
and against each other (Lemma 2's identity, Assumption 2)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ZOO, central_difference_jacobian, random_point

import gradbasis as gb

# Central differences with h = 1e-6 on O(1) quantities are accurate to ~1e-9; 1e-7
# relative leaves room for curvature without hiding a wrong derivative (errors are O(1)).
FD_RTOL = 1e-7


def away_from_kinks(
    model: gb.Model, theta: np.ndarray, X: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Redraw X until every kinked pre-activation is at least 1e-3 from 0 (FD steps are 1e-6)."""
    for _ in range(100):
        if model.kink_margin(theta, X) > 1e-3:
            return X
        X = rng.normal(size=X.shape)
    pytest.fail("could not draw inputs away from the kinks")


def test_jacobian_matches_finite_differences(model, rng):
    theta, X = random_point(model, rng)
    X = away_from_kinks(model, theta, X, rng)
    J = model.jacobian(theta, X)
    assert J.shape == (X.shape[0] * model.output_dim, model.num_params)
    J_fd = central_difference_jacobian(lambda t: model.forward(t, X), theta)
    np.testing.assert_allclose(J, J_fd, rtol=FD_RTOL, atol=FD_RTOL * np.abs(J).max())


def test_jvp_vjp_are_products_with_the_jacobian(model, rng):
    theta, X = random_point(model, rng)
    J = model.jacobian(theta, X)
    v = rng.normal(size=model.num_params)
    U = rng.normal(size=(X.shape[0], model.output_dim))
    # Same arithmetic up to summation order: rounding-level agreement.
    np.testing.assert_allclose(
        model.jvp(theta, X, v).ravel(), J @ v, rtol=1e-12, atol=1e-12 * np.abs(J).sum()
    )
    np.testing.assert_allclose(
        model.vjp(theta, X, U), J.T @ U.ravel(), rtol=1e-12, atol=1e-12 * np.abs(J).sum()
    )


def test_homogeneity_reproduces_outputs(model, rng):
    """Assumption 2: J g(theta) = f_X(theta)."""
    theta, X = random_point(model, rng)
    f = model.forward(theta, X)
    np.testing.assert_allclose(
        model.jacobian(theta, X) @ model.homogeneity(theta), f.ravel(), rtol=1e-12, atol=1e-12
    )


LOSSES = {
    "squared": lambda rng, m, d: rng.normal(size=(m, d)),
    "cross_entropy": lambda rng, m, d: rng.dirichlet(np.ones(d), size=m),
    "smoothed_hinge": lambda rng, m, d: rng.choice([-1.0, 1.0], size=(m, 1)),
}


def objective_cases():
    for name in [
        "mlp-tanh",
        "mlp-gelu",
        "mlp-relu",
        "skip",
        "resnet-mlp",
        "resnet-preact",
        "basis",
    ]:
        for loss in LOSSES:
            yield pytest.param(name, loss, id=f"{name}-{loss}")
    yield pytest.param("hinge-net", "smoothed_hinge-p3", id="hinge-net-p3")


HINGE_NET = gb.MLP([4, 6, 1], "tanh")


@pytest.mark.parametrize("name,loss_name", list(objective_cases()))
def test_objective_gradient_and_hessian_vector(name, loss_name, rng):
    if loss_name.startswith("smoothed_hinge"):
        model = HINGE_NET
        loss = gb.SmoothedHingeLoss(p=3.0 if loss_name.endswith("p3") else 2.0)
        Y = LOSSES["smoothed_hinge"](rng, 13, 1)
    else:
        model = ZOO[name]
        loss = gb.get_loss(loss_name)
        Y = LOSSES[loss_name](rng, 13, model.output_dim)
    theta, X = random_point(model, rng, m=13)
    X = away_from_kinks(model, theta, X, rng)
    weights = rng.uniform(0.5, 2.0, size=13)
    obj = gb.Objective(model, loss, X, Y, weights)

    value, grad = obj.value_and_gradient(theta)
    assert value == pytest.approx(obj.value(theta), rel=1e-14)
    f = model.forward(theta, X)
    assert value == pytest.approx(float(weights @ loss.value(f, Y)), rel=1e-12)

    grad_fd = central_difference_jacobian(lambda t: obj.value(t), theta).ravel()
    np.testing.assert_allclose(
        grad, grad_fd, rtol=FD_RTOL, atol=FD_RTOL * max(1.0, np.abs(grad).max())
    )

    # Lemma 2's identity: grad L = J^T u with u_i = lambda_i grad l(f(x_i)).
    u = obj.residual_duals(theta)
    np.testing.assert_allclose(grad, model.jacobian(theta, X).T @ u.ravel(), rtol=1e-11, atol=1e-13)

    # Exact HVP against central differences of the exact gradient (step 1e-5: error ~1e-9).
    # The smoothed hinge with p = 2 has a jump in l'' at margin 1; samples there are
    # measure-zero for random data.
    v = rng.normal(size=model.num_params)
    hv = obj.hessian_vector(theta, v)
    hv_fd = (obj.gradient(theta + 1e-5 * v) - obj.gradient(theta - 1e-5 * v)) / 2e-5
    np.testing.assert_allclose(hv, hv_fd, rtol=1e-6, atol=1e-6 * np.abs(hv).max())


def test_hessian_vector_is_symmetric(rng):
    model = ZOO["mlp-softplus"]
    theta, X = random_point(model, rng)
    obj = gb.Objective(model, "cross_entropy", X, rng.dirichlet(np.ones(3), size=X.shape[0]))
    a, b = rng.normal(size=(2, model.num_params))
    # <a, H b> = <b, H a> for an exact Hessian; rounding only.
    assert a @ obj.hessian_vector(theta, b) == pytest.approx(
        b @ obj.hessian_vector(theta, a), rel=1e-11
    )


def test_kink_margin(rng):
    model = gb.MLP([2, 3, 1], "relu")
    theta = model.init(seed=0)
    X = rng.normal(size=(5, 2))
    params = model.unflatten(theta)
    pre = X @ params["W1"].T + params["b1"]
    assert model.kink_margin(theta, X) == pytest.approx(np.abs(pre).min(), rel=1e-15)
    # Put one pre-activation exactly at 0: theta is in Omega.
    params["b1"][1] = -(X[2] @ params["W1"][1])
    assert model.kink_margin(model.flatten(params), X) == 0.0
    assert ZOO["mlp-tanh"].kink_margin(ZOO["mlp-tanh"].init(), X=rng.normal(size=(3, 4))) == np.inf


def test_deep_linear_network_is_a_product_of_matrices(rng):
    model = gb.MLP([3, 4, 5, 2], "identity", bias=False)
    theta, X = random_point(model, rng)
    p = model.unflatten(theta)
    np.testing.assert_allclose(
        model.forward(theta, X), X @ (p["W3"] @ p["W2"] @ p["W1"]).T, rtol=1e-13
    )


def test_skip_mlp_without_skips_is_the_mlp(rng):
    skip = gb.SkipMLP([4, 5, 6, 3], skip_from=[], activation="tanh")
    plain = gb.MLP([4, 5, 6, 3], "tanh")
    assert [s.name for s in skip.param_specs] == [s.name for s in plain.param_specs]
    theta, X = random_point(plain, rng)
    np.testing.assert_array_equal(skip.jacobian(theta, X), plain.jacobian(theta, X))


def test_resnet_formula(rng):
    model = ZOO["resnet-mlp"]
    theta, X = random_point(model, rng)
    p = model.unflatten(theta)
    z = model.residual.forward(
        model.residual.flatten({k[2:]: v for k, v in p.items() if k.startswith("u.")}), X
    )
    np.testing.assert_allclose(model.forward(theta, X), (X + z @ p["R"].T) @ p["W"].T, rtol=1e-13)


@pytest.mark.parametrize("method", ["forward", "jacobian", "jvp", "vjp", "gradient", "hvp", "kink"])
def test_thread_count_does_not_change_results(method, rng):
    model = gb.ResNet(
        6, 3, gb.PreActResidualStack(6, hidden=8, num_blocks=2, activation="leaky_relu")
    )
    theta = model.init(seed=3)
    X = rng.normal(size=(300, 6))  # several blocks of 64 samples, a ragged last one
    Y = rng.normal(size=(300, 3))
    v = rng.normal(size=model.num_params)

    def run(n):
        obj = gb.Objective(model, "squared", X, Y, n_threads=n)
        return {
            "forward": lambda: model.forward(theta, X, n_threads=n),
            "jacobian": lambda: model.jacobian(theta, X, n_threads=n),
            "jvp": lambda: model.jvp(theta, X, v, n_threads=n),
            "vjp": lambda: model.vjp(theta, X, Y, n_threads=n),
            "gradient": lambda: obj.gradient(theta),
            "hvp": lambda: obj.hessian_vector(theta, v),
            "kink": lambda: model.kink_margin(theta, X, n_threads=n),
        }[method]()

    one, two, default = run(1), run(2), run(None)
    # Fixed blocks and ordered reductions make results identical, not just close.
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, default)


def test_jacobian_out_buffer_is_reused(rng):
    model = ZOO["mlp-tanh"]
    theta, X = random_point(model, rng)
    buf = np.full((X.shape[0] * 3, model.num_params), np.nan)
    assert model.jacobian(theta, X, out=buf) is buf
    np.testing.assert_array_equal(buf, model.jacobian(theta, X))
