"""Evidence that the perturbable-basis checks measure something: each test sets up a point whose
answer is known independently of the library (exact spans of deep linear nets, a direction that
leaves J unchanged, a dead relu unit a large step revives, a direction outside V, a broken
gradient) and shows the check gets it right where the naive version gets it wrong."""

from __future__ import annotations

import numpy as np
import pytest

import gradbasis as gb
from gradbasis.theory import theorem2 as theorem2_module
from gradbasis.theory.perturbation import same_activation_region

EPS = np.finfo(np.float64).eps


def old_rank(J, D_list):
    """dim T~ as counted before: SVD of [J, D_1, ...] at numpy's rounding cut max(n, P) eps sigma_max."""
    s = np.linalg.svd(np.hstack([J, *D_list]), compute_uv=False)
    return int(np.sum(s > max(J.shape) * EPS * s[0]))


def quotients(model, theta, X, V, eps):
    J = model.jacobian(theta, X)
    return J, [(model.jacobian(theta + eps * v, X) - J) / eps for v in V]


# ----------------------------------------------------------------------------- A: dim T~
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("eps", [1e-2, 1e-4])
def test_deep_linear_perturbable_span_is_exactly_dx_times_dy(seed, eps):
    """Every Jacobian column of W3 W2 W1 x, at any theta, is (A x_i)_i for some 2 x 3 matrix A,
    so dim T~ <= d_x d_y = 6 whatever the directions, and 6 is reached (dim T is 6 here)."""
    model = gb.MLP([3, 3, 3, 2], activation="identity", bias=False)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(20, 3))
    Y = rng.normal(size=(20, 2))
    theta = model.init(seed)
    S = gb.perturbation_directions(model, theta, X, eps=eps)
    assert len(S) > 6
    pb = gb.perturbable_basis(model, theta, X, S)
    J = model.jacobian(theta, X)
    assert pb.dim_T == np.linalg.matrix_rank(J) == 6  # numpy's own rank of J, computed here
    assert pb.dim_T_tilde == 6
    # The returned basis is already truncated: a rounding-level SVD of it gives dim T~ exactly.
    assert np.linalg.matrix_rank(pb.basis) == 6 and pb.basis.shape[1] == 6
    # The squared-loss infimum over T~ cannot beat the best linear model Y ~ X A^T (no bias).
    Q = np.linalg.svd(pb.basis, full_matrices=False)[0]
    y = Y.reshape(-1)
    inf_T_tilde = float(np.sum((y - Q @ (Q.T @ y)) ** 2))
    A = np.linalg.lstsq(X, Y, rcond=None)[0]
    linear_min = float(np.sum((Y - X @ A) ** 2))
    assert inf_T_tilde >= linear_min * (1 - 1e-10)
    # The cut sits well above the rounding it removes (measured margin ~1e3; 10 holds anywhere
    # because both scale with eps_mach ||J|| / eps), and the removed values are rounding.
    assert pb.largest_discarded * 10 < pb.noise_cut
    assert pb.noise_cut_relative < 1e-6  # far below any real direction (smallest kept ~0.03)
    d = pb.to_dict()
    assert d["noise_cut"] == pb.noise_cut and d["dim_T_tilde"] == 6
    if eps == 1e-4:  # the naive cut counts rounding of the quotients as span
        assert old_rank(*quotients(model, theta, X, S.directions, eps)) > 6


@pytest.mark.parametrize("eps", [1e-2, 1e-4])
def test_deep_linear_bottleneck_grows_to_exactly_six(eps):
    """W3 W2 W1 with a width-1 bottleneck: dim T = 4 < 6 (J's columns, from numpy), while
    Jacobians at other points reach every (A x_i)_i: dim T~ = 6, never more, for any
    directions (these are random, not in V: the span claim holds for every theta')."""
    model = gb.MLP([3, 1, 1, 2], activation="identity", bias=False)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(15, 3))
    theta = model.init(5)
    V = rng.normal(size=(10, model.num_params))
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    pb = gb.perturbable_basis(model, theta, X, V, eps)
    assert pb.dim_T == np.linalg.matrix_rank(model.jacobian(theta, X)) == 4
    assert pb.dim_T_tilde == 6 and pb.growth[-1] == 6


@pytest.mark.parametrize("eps", [1e-4, 1e-6])
def test_directions_that_leave_J_unchanged_add_nothing(eps):
    """W1 += eps a b^T with b orthogonal to every [x_i; 1] leaves every pre-activation, hence J
    (for any activation), unchanged: only rounding differs, and it must not enter T~."""
    model = gb.MLP([6, 8, 1, 3], "tanh")
    rng = np.random.default_rng(3)
    X = rng.normal(size=(4, 6))
    theta = model.init(3) + 0.1 * rng.normal(size=model.num_params)
    N = np.linalg.svd(np.hstack([X, np.ones((4, 1))]))[2][4:].T  # null basis of [X, 1], by numpy
    layer = model.dense_layers()[0]
    V = []
    for _ in range(8):
        M = np.outer(rng.normal(size=8), N @ rng.normal(size=N.shape[1]))
        M /= np.linalg.norm(M)
        v = np.zeros(model.num_params)
        v[layer.weight.offset : layer.weight.offset + layer.weight.size] = M[:, :6].reshape(
            -1, order="F"
        )
        v[layer.bias.offset : layer.bias.offset + 8] = M[:, 6]
        V.append(v)
    V = np.array(V)
    J, D = quotients(model, theta, X, V, eps)
    rank_J = np.linalg.matrix_rank(J)
    assert rank_J < J.shape[0]  # room for spurious directions
    assert max(np.abs(d).max() for d in D) > 0  # the quotients are rounding, not exact zeros
    assert old_rank(J, D) > rank_J  # ...which the naive cut counts
    pb = gb.perturbable_basis(model, theta, X, V, eps)
    assert pb.dim_T == rank_J and pb.dim_T_tilde == rank_J


def test_gram_variant_reports_its_floor():
    model = gb.MLP([3, 3, 3, 2], activation="identity", bias=False)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    theta = model.init(0)
    S = gb.perturbation_directions(model, theta, X, eps=1e-4)
    pb = gb.perturbable_basis(model, theta, X, S, strategy="gram", duals=np.ones((20, 2)))
    assert pb.strategy == "gram" and pb.dim_T_tilde == 6 and pb.dim_T == 6
    assert (
        pb.noise_cut_relative == pb.rank_tol > 1e-5
    )  # the Gram floor (n eps)^(1/4), far above rounding
    assert pb.noise_cut == pytest.approx(pb.rank_tol * pb.singular_values[0])
    assert np.isnan(pb.lemma3_cosine) and pb.to_dict()["lemma3_cosine"] is None


# ----------------------------------------------------------------------------- B: activation region
def dead_relu_point(m=12, seed=0):
    """A relu net [2, 3, 1] at a local minimum of squared loss with a nonzero residual: units 0
    and 1 active on every sample (bias 10) carry the least-squares affine fit, unit 2 is dead by
    margin exactly 1e-3 on every sample and has outgoing weight 0. Any step of the dead unit's
    incoming weights by more than ~1e-3 revives it without moving f_X."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, 2))
    y = X @ np.array([0.7, -1.2]) + 0.4 + 0.3 * rng.normal(size=m)
    beta = np.linalg.lstsq(np.hstack([X, np.ones((m, 1))]), y, rcond=None)[0]
    model = gb.MLP([2, 3, 1], "relu")
    w_dead = np.array([0.8, -0.5])
    b1 = np.array([10.0, 10.0, -1e-3 - (X @ w_dead).max()])
    p = {
        "W1": np.array([[beta[0], 0.0], [0.0, beta[1]], w_dead]),
        "b1": b1,
        "W2": np.array([[1.0, 1.0, 0.0]]),
        "b2": np.array([beta[2] - 20.0]),
    }
    return gb.Objective(model, "squared", X, y[:, None]), model.flatten(p)


def test_dead_relu_directions_stay_in_the_activation_region():
    obj, theta = dead_relu_point()
    model, X = obj.model, obj.X
    u = obj.residual_duals(theta)
    assert np.linalg.norm(obj.gradient(theta)) <= 1e-12 and np.linalg.norm(u) > 0.05
    assert model.kink_margin(theta, X) == pytest.approx(1e-3, rel=1e-9)

    # The hazard: the dead unit's bias direction at eps = 1e-2 leaves f_X unchanged but
    # revives the unit, and its Lemma 3 residual says "no local minimum".
    spec = {s.name: s for s in model.param_specs}
    v = np.zeros(model.num_params)
    v[spec["b1"].offset + 2] = 1.0
    assert np.abs(model.forward(theta + 1e-2 * v, X) - model.forward(theta, X)).max() == 0.0
    assert not same_activation_region(model, theta, theta + 1e-2 * v, X)
    assert gb.perturbable_basis(model, theta, X, v[None], 1e-2, duals=u).lemma3_cosine > 0.1

    S = gb.perturbation_directions(model, theta, X, eps=1e-2)
    assert S.shrunk > 0 and S.to_dict()["shrunk"] == S.shrunk and not S.rejected
    assert S.counts().get("dead_units", 0) == 3
    for w in S.directions:
        assert np.linalg.norm(w) <= 1 + 1e-12
        assert same_activation_region(model, theta, theta + S.eps * w, X)
    pb = gb.perturbable_basis(model, theta, X, S, duals=u)
    # Rounding level: |D^T u| on columns above the noise level is ~1e-13 of ||D col|| ||u|| here;
    # 1e-8 leaves five orders of margin and is still far below the 0.6 of the revived unit.
    assert pb.lemma3_cosine <= 1e-8 and pb.lemma3_residual <= 1e-8
    assert pb.dim_T_tilde == pb.dim_T
    assert gb.lemma3(obj, theta, S).holds
    # Without shrinking, the candidates that leave the region are rejected, with the reason.
    S0 = gb.perturbation_directions(model, theta, X, eps=1e-2, shrink_steps=0)
    assert len(S0.rejected) == S.shrunk
    assert all("activation region" in r.reason for r in S0.rejected)
    # At eps = 1e-4 (below Lemma 3's eps_0 here) nothing needs shrinking.
    assert gb.perturbation_directions(model, theta, X, eps=1e-4).shrunk == 0


def test_same_activation_region_helper():
    obj, theta = dead_relu_point()
    model, X = obj.model, obj.X
    assert same_activation_region(model, theta, theta, X)
    assert not same_activation_region(model, theta, -theta, X)
    smooth = gb.MLP([2, 3, 1], "tanh")
    assert same_activation_region(smooth, theta, -theta, X)  # no kinks: one region
    with pytest.raises(gb.ShapeError):
        same_activation_region(model, theta, theta[:-1], X)


# ----------------------------------------------------------------------------- C: Lemma 1
def lemma1_point():
    """f = w2 tanh(w1 x) at w2 = 0 on 9 samples: T is a line; moving w1 (free since w2 = 0)
    adds directions at every order of eps, so 1 < dim T~ < 9 with weak directions near the cut."""
    model = gb.MLP([1, 1, 1], "tanh", bias=False)
    return model, np.array([0.7, 0.0]), np.linspace(0.3, 2.0, 9)[:, None]


# At these eps the singular values of T~ leave the cut clear on both sides (>= 8x; the ladder of
# orders of eps puts some real direction near the cut at other eps, e.g. 4.6x below it at 1e-2).
@pytest.mark.parametrize("eps", [1e-3, 1e-4])
def test_lemma1_holds_on_a_verified_set(eps):
    model, theta, X = lemma1_point()
    S = gb.perturbation_directions(model, theta, X, eps=eps)
    D = S.directions
    r = gb.lemma1(model, theta, X, D[:5], D[5:], eps)
    pb = gb.perturbable_basis(model, theta, X, S)
    assert r.holds, r.reason
    assert r.outside_V == 0 and r.dim_union == r.dim_sum == pb.dim_T_tilde
    assert 1 < r.dim_union < 9  # neither T alone nor everything: the comparison has content
    assert r.max_sine <= r.sine_tol < 0.05
    assert gb.lemma1(model, theta, X, D[:5], D[5:], eps).to_dict()["reason"] == r.reason


def test_lemma1_rejects_a_direction_that_moves_f():
    model = gb.MLP([2, 6, 5, 1], "tanh")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 2))
    theta = model.init(0)
    eps = 0.05
    S = gb.perturbation_directions(model, theta, X, eps=eps, budget=8, combinations=1).directions
    bad = np.zeros(model.num_params)
    bad[model.param_specs[-1].offset] = 1.0  # the output bias: f_X moves by eps = 0.05
    r = gb.lemma1(model, theta, X, S, bad[None], eps)
    assert not r.holds and r.outside_V == 1
    assert "S2[0]" in r.reason and "moves f_X" in r.reason
    assert r.max_change == pytest.approx(0.05, rel=1e-12)
    assert gb.lemma1(model, theta, X, S[:3], S[3:], eps).holds  # the control: a verified split


def test_lemma1_compares_independent_computations(monkeypatch):
    """The left side does not go through perturbable_basis: if that drops what the quotients
    add, the two sides disagree and the result says so."""
    model, theta, X = lemma1_point()
    S = gb.perturbation_directions(model, theta, X, eps=1e-3).directions
    real = theorem2_module.perturbable_span

    def jacobian_only(*args, **kwargs):
        pb = real(*args, **kwargs)
        return type(pb)(**{**vars(pb), "basis": pb.jacobian_basis})

    monkeypatch.setattr(theorem2_module, "perturbable_span", jacobian_only)
    r = gb.lemma1(model, theta, X, S[:5], S[5:], 1e-3)
    assert not r.holds and r.dim_sum == 1 < r.dim_union and "dimensions differ" in r.reason


# ----------------------------------------------------------------------------- C: Lemma 2
def normal_point(act="tanh"):
    model = gb.MLP([3, 8, 8, 2], act)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(20, 3)), rng.normal(size=(20, 2))
    return gb.Objective(model, "squared", X, Y), model.init(1)


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_lemma2_holds_with_independent_errors_small(act):
    obj, theta = normal_point(act)
    r = gb.lemma2(obj, theta)
    assert r.verdict == gb.Verdict.HOLDS, r.reason
    assert r.probes == 4 and r.jacobian_path == "dense"
    # Exact sums agree to ~1e-17 of ||J||_F ||u||; the finite differences to ~1e-11 (measured),
    # inside their stated allowance, which is itself small enough to catch a wrong gradient.
    assert r.jacobian_error <= 1e-13 and r.relative_error <= 1e-13
    assert r.fd_error <= r.fd_tol <= 1e-6
    assert np.linalg.norm(obj.gradient(theta)) > 0.1  # not a critical point: J^T u is not ~0


def first_layer(model):
    spec = model.param_specs[0]
    return slice(spec.offset, spec.offset + spec.size)


def test_lemma2_catches_a_vjp_that_drops_a_layer(monkeypatch):
    obj, theta = normal_point()
    model, cols = obj.model, first_layer(obj.model)
    real_vjp = model.vjp

    def broken_vjp(*args, **kwargs):
        out = real_vjp(*args, **kwargs)
        out[cols] = 0.0
        return out

    monkeypatch.setattr(model, "vjp", broken_vjp)
    r = gb.lemma2(obj, theta)
    assert r.verdict == gb.Verdict.VIOLATED and r.jacobian_error > 1e-3 and r.fd_error > 1e-4


def test_lemma2_catches_consistently_wrong_derivatives(monkeypatch):
    """vjp, Jacobian and gradient all drop the first layer (agreeing with each other): only
    the finite differences of L can tell, and they do."""
    obj, theta = normal_point()
    model, cols = obj.model, first_layer(obj.model)
    real_vjp, real_jac, real_grad = model.vjp, model.jacobian, obj.gradient

    def drop(fn, axis):
        def wrapped(*args, **kwargs):
            out = fn(*args, **kwargs)
            if axis == 0:
                out[cols] = 0.0
            else:
                out[:, cols] = 0.0
            return out

        return wrapped

    monkeypatch.setattr(model, "vjp", drop(real_vjp, 0))
    monkeypatch.setattr(model, "jacobian", drop(real_jac, 1))
    monkeypatch.setattr(obj, "gradient", drop(real_grad, 0))
    r = gb.lemma2(obj, theta)
    assert r.relative_error <= 1e-13 and r.jacobian_error <= 1e-13  # the broken paths agree
    assert r.verdict == gb.Verdict.VIOLATED and "finite differences" in r.reason
    assert r.fd_error > 100 * r.fd_tol
