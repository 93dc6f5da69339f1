"""Theorem 1 and its examples at points reached by training: verdicts earned by numbers."""

from __future__ import annotations

import numpy as np
import pytest

import gradbasis as gb

# Small, underparameterized settings (m * d_y > num_params) where minimize reaches
# ||grad L|| <= 1e-9 within a second and J is well conditioned, so the verdict must be "holds"
# at the default relative tolerance 1e-8.
M = 30


def data(loss: str, d_x: int, d_y: int, seed: int):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(M, d_x))
    if loss == "squared":
        Y = rng.normal(size=(M, d_y))
    elif loss == "cross_entropy":
        Y = rng.dirichlet(np.ones(d_y), size=M)  # soft labels: a finite minimiser exists
    else:
        Y = rng.choice([-1.0, 1.0], size=(M, 1))
    return X, Y


CASES = {
    "mlp-tanh": lambda d_x, d_y: gb.MLP([d_x, 3, d_y], "tanh"),
    "mlp-softplus": lambda d_x, d_y: gb.MLP([d_x, 3, d_y], "softplus"),
    "mlp-relu": lambda d_x, d_y: gb.MLP([d_x, 3, d_y], "relu"),
    "deep-linear": lambda d_x, d_y: gb.MLP([d_x, 3, 3, d_y], "identity"),
    "skip": lambda d_x, d_y: gb.SkipMLP([d_x, 3, 2, d_y], skip_from=[0], activation="tanh"),
    "resnet": lambda d_x, d_y: gb.ResNet(d_x, d_y, gb.MLP([d_x, 2, 2], "tanh")),
}
LOSSES = {
    "squared": gb.SquaredLoss(),
    "cross_entropy": gb.CrossEntropyLoss(),
    "smoothed_hinge": gb.SmoothedHingeLoss(3),
}


def trained(case: str, loss: str, seed: int = 0):
    """Train from init(seed), (seed + 1), (seed + 2) until a run reaches ||grad L|| <= 1e-8 away
    from kinks: some starts stall on a plateau or (relu) on a kink."""
    d_y = 1 if loss == "smoothed_hinge" else 3
    model = CASES[case](3, d_y)
    X, Y = data(loss, 3, d_y, seed)
    obj = gb.Objective(model, LOSSES[loss], X, Y)
    for start in range(seed, seed + 3):
        fit = gb.minimize(
            obj, model.init(seed=start), method="lbfgs+newton", gtol=1e-10, max_iter=1000
        )
        if fit.gradient_norm <= 1e-8 and model.kink_margin(fit.theta, X) > 1e-6:
            return obj, fit
    return obj, fit


# (case, loss, seed) settings whose training reaches ||grad L|| <= 1e-8 from one of three
# starts. Small softplus networks (all losses, data seeds 0-2) and the skip net with the
# squared loss keep creeping at ||grad L|| ~ 1e-3..1e-5 for thousands of iterations instead
# (their infimum seems to lie at infinity); there theorem1 says "does not apply".
SMOOTH_MINIMA = [
    ("mlp-tanh", "squared", 0),
    ("mlp-tanh", "cross_entropy", 0),
    ("mlp-tanh", "smoothed_hinge", 1),
    ("mlp-relu", "smoothed_hinge", 0),
    ("deep-linear", "squared", 0),
    ("deep-linear", "cross_entropy", 0),
    ("deep-linear", "smoothed_hinge", 0),
    ("skip", "cross_entropy", 0),
    ("skip", "smoothed_hinge", 0),
    ("resnet", "squared", 0),
    ("resnet", "cross_entropy", 0),
    ("resnet", "smoothed_hinge", 0),
]


# Of these, three trained points keep a gap above tol over the numerical span of J (cross-entropy
# tanh and ResNet: ~1e-4..1e-2; the ResNet with the smoothed hinge): J has singular values far
# below what a gradient of ~1e-10 resolves, and the induced model gains along them. There the
# honest verdict is "consistent"; everywhere else the gap is <= 1e-14, six orders below tol.
UNRESOLVED = {
    ("mlp-tanh", "cross_entropy", 0),
    ("resnet", "cross_entropy", 0),
    ("resnet", "smoothed_hinge", 0),
}


@pytest.mark.parametrize("case,loss,seed", SMOOTH_MINIMA)
def test_theorem1_at_trained_critical_points_is_what_the_numbers_say(case, loss, seed):
    obj, fit = trained(case, loss, seed)
    assert fit.gradient_norm <= 1e-8, fit.message
    result = gb.theorem1(obj, fit.theta)
    assert result.kink_margin > 0
    # The certificate itself: value <= L (the solve starts at f_X), lower <= value.
    assert result.value <= result.loss_value + result.tol
    assert result.lower <= result.value + 1e-12 * (1 + abs(result.value))
    if (case, loss, seed) in UNRESOLVED:
        assert result.verdict == gb.Verdict.CONSISTENT, str(result)
        assert result.gap > result.tol
        assert result.gap <= result.first_order_bound + result.tol
        # the whole gap lies along directions the gradient does not resolve
        assert result.resolved_gap is not None and result.resolved_gap <= result.tol
    else:
        assert result.verdict == gb.Verdict.HOLDS, str(result)
        assert result.gap <= result.tol and result.converged


@pytest.mark.parametrize("loss", ["squared", "cross_entropy"])
def test_trained_relu_network_verdict_follows_its_kinks(loss):
    """Training a small relu network with these losses drives some pre-activations to exactly
    0 (the minimum sits on a kink). Theorem 1 then does not apply, and the check says so
    instead of claiming a verdict; away from kinks it must hold."""
    obj, fit = trained("mlp-relu", loss)
    result = gb.theorem1(obj, fit.theta)
    if result.kink_margin <= 1e-12:
        assert result.verdict in (gb.Verdict.DOES_NOT_APPLY, gb.Verdict.HOLDS)
        assert (
            result.verdict == gb.Verdict.HOLDS
            or "Omega" in result.reason
            or "critical" in result.reason
        )
    else:
        assert result.verdict == gb.Verdict.HOLDS


def test_theorem1_does_not_claim_to_hold_at_a_random_point():
    obj, fit = trained("mlp-tanh", "squared")
    theta = obj.model.init(seed=5)
    result = gb.theorem1(obj, theta)
    assert result.verdict == gb.Verdict.DOES_NOT_APPLY
    assert "not a critical point" in result.reason
    assert result.loss_value - result.value > 1e-3  # the induced model really is better there


def test_saddle_of_a_deep_linear_network():
    """theta = 0 of a deep linear network is a critical point with negative curvature; Theorem 1
    still holds there (J = 0, so the induced model is the constant 0 prediction)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(20, 3))
    Y = X @ rng.normal(size=(3, 2))
    model = gb.MLP([3, 2, 2], "identity", bias=False)
    obj = gb.Objective(model, "squared", X, Y)
    theta = np.zeros(model.num_params)
    point = gb.classify_point(obj, theta)
    assert point.kind == "saddle"
    assert point.min_eigenvalue < -1e-3 < 1e-3 < point.max_eigenvalue
    result = gb.theorem1(obj, theta)
    assert result.rank == 0
    assert result.verdict == gb.Verdict.HOLDS


def test_kink_exactly_at_zero_is_non_differentiable():
    obj, fit = trained("mlp-relu", "squared")
    params = obj.model.unflatten(fit.theta)
    params["W1"][0] = 0.0  # unit 0 now sits exactly at its kink on every sample
    params["b1"][0] = 0.0
    theta = obj.model.flatten(params)
    assert obj.model.kink_margin(theta, obj.X) == 0.0
    assert gb.classify_point(obj, theta).kind == "non-differentiable"
    result = gb.theorem1(obj, theta)
    assert result.verdict == gb.Verdict.DOES_NOT_APPLY and "Omega" in result.reason


def test_trained_point_is_a_local_minimum_candidate():
    obj, fit = trained("mlp-tanh", "cross_entropy")
    point = gb.classify_point(obj, fit.theta)
    assert point.kind == "local-minimum candidate"
    assert point.gradient_norm <= 1e-8


def test_a_basis_that_misses_the_outputs_is_reported_as_violated():
    """A Jacobian with the output-layer columns removed no longer contains f_X = J g: the
    certified infimum then lies above L(theta), which Theorem 1 forbids."""
    obj, fit = trained("mlp-tanh", "squared")
    J = obj.model.jacobian(fit.theta, obj.X)
    g = obj.model.homogeneity(fit.theta)
    J[:, g != 0] = 0.0
    result = gb.theorem1(obj, fit.theta, jacobian=J)
    assert result.verdict == gb.Verdict.VIOLATED
    assert "Assumption 2" in result.reason


def test_example1_basis_model_reaches_the_global_minimum():
    """Example 1: f = Theta phi(x) is linear in theta, so a critical point is a global minimum
    and the induced infimum is the least-squares optimum of the model itself."""
    rng = np.random.default_rng(1)
    Phi = rng.normal(size=(25, 4))
    Y = rng.normal(size=(25, 2))
    model = gb.BasisModel(4, 2)
    obj = gb.Objective(model, "squared", Phi, Y)
    fit = gb.minimize(obj, model.init(seed=0), method="lbfgs+newton", gtol=1e-12)
    result = gb.theorem1(obj, fit.theta)
    assert result.verdict == gb.Verdict.HOLDS
    W, *_ = np.linalg.lstsq(Phi, Y, rcond=None)
    global_min = float(np.mean(((Phi @ W - Y) ** 2).sum(1)))
    assert result.value == pytest.approx(global_min, rel=1e-12)
    assert result.loss_value == pytest.approx(global_min, rel=1e-10)


def test_example3_representation_bound_at_a_critical_point():
    obj, fit = trained("skip", "smoothed_hinge")
    assert fit.gradient_norm <= 1e-8
    bound = gb.representation_bound(obj, fit.theta)
    assert bound.verdict == gb.Verdict.HOLDS
    # skip from x (3 features) and from h_2 (2 features), to 1 output, plus the output bias
    assert bound.num_features == 3 + 2 + 1
    assert bound.loss_value <= bound.bound_value + bound.tol
    # And the bound is not vacuous: the linear model on x alone is worse than the trained net.
    lin = gb.induced_minimum(obj.X, obj.loss, obj.Y)
    assert bound.loss_value < lin.value - 1e-3


def test_assumption_and_lemma_checks():
    obj, fit = trained("resnet", "cross_entropy")
    assert gb.assumption1(obj.loss).verdict == gb.Verdict.HOLDS
    assert gb.assumption2(obj.model, fit.theta, obj.X).verdict == gb.Verdict.HOLDS
    lemma = gb.lemma2(obj, fit.theta)
    assert lemma.verdict == gb.Verdict.HOLDS and lemma.gradient_norm <= 1e-8

    class Concave:
        """-||q - y||^2: differentiable but not convex."""

        def value(self, Q, Y):
            return -((np.asarray(Q) - Y) ** 2).sum(1)

        def gradient(self, Q, Y):
            return -2 * (np.asarray(Q) - Y)

    assert gb.assumption1(Concave()).verdict == gb.Verdict.VIOLATED


def test_reports_are_json_ready():
    import json

    obj, fit = trained("mlp-tanh", "squared")
    result = gb.theorem1(obj, fit.theta)
    text = json.dumps(result.to_dict())
    assert '"verdict": "holds"' in text
    assert "Theorem 1" in str(result) and "profile" in str(result)


def test_lanczos_and_dense_hessian_extremes_agree(monkeypatch):
    """Above DENSE_HESSIAN_LIMIT parameters classify_point uses Lanczos on exact HVPs."""
    from gradbasis.theory import critical_points

    obj, fit = trained("resnet", "squared")
    dense = gb.classify_point(obj, fit.theta)
    monkeypatch.setattr(critical_points, "DENSE_HESSIAN_LIMIT", 0)
    lanczos = gb.classify_point(obj, fit.theta)
    assert dense.eigen_method == "dense" and lanczos.eigen_method == "lanczos"
    scale = abs(dense.max_eigenvalue)
    assert lanczos.max_eigenvalue == pytest.approx(dense.max_eigenvalue, rel=1e-8)
    assert lanczos.min_eigenvalue == pytest.approx(dense.min_eigenvalue, abs=1e-8 * scale)
    assert lanczos.kind == dense.kind


def test_theorem1_holds_for_a_softplus_network_fitting_a_teacher():
    """Softplus networks on random targets creep with growing weights (see SMOOTH_MINIMA); on
    soft labels from a softplus teacher training reaches a critical point and Theorem 1 holds."""
    rng = np.random.default_rng(0)
    model = gb.MLP([3, 3, 3], "softplus")
    X = rng.normal(size=(M, 3))
    F = model.forward(model.init(seed=7) + 0.3 * rng.normal(size=model.num_params), X)
    Y = np.exp(F) / np.exp(F).sum(axis=1, keepdims=True)
    obj = gb.Objective(model, "cross_entropy", X, Y)
    fit = gb.minimize(obj, model.init(seed=0), method="lbfgs+newton", gtol=1e-10, max_iter=1000)
    assert fit.gradient_norm <= 1e-8
    result = gb.theorem1(obj, fit.theta)
    assert result.verdict == gb.Verdict.HOLDS, str(result)
    assert result.lower >= result.loss_value - result.tol
