"""gradbasis.induced_minimum against an independent scipy solver over the same orthonormal basis.

The oracle minimises phi(c) = Phi(U c) with scipy.optimize.minimize (L-BFGS-B, analytic
gradients), U the left singular vectors of B (numpy's SVD) above the same relative cut the
solver uses, started at c = 0 and at the coordinates U^T f of a known output vector f. The
losses are written here from their definitions, in numpy only. Whatever its accuracy, the
oracle's value is Phi at a point of the span, hence an upper bound on the infimum.

Tolerances, and why they hold on any machine:

* ``lower <= oracle + SLACK``: weak duality gives lower <= inf <= oracle exactly; what is left
  is rounding: the dual point is orthogonal to the span only to ~64 eps ||u||, which moves the
  bound by ~eps ||u|| ||F*|| (< 1e-13 here), the two SVDs agree on the span to ~n eps cond
  (the bases below have cond < 1e3 where not said otherwise), and Phi is summed in a
  different order (~m eps Phi). SLACK = 1e-10 * max(1, |oracle|) is over 100x all of that.
* ``value <= oracle + SLACK`` where the infimum is attained and the solve converged: the
  solver's stopping rule gives value - lower <= tol * max(1, |value|) = 1e-12 * max(1, |value|),
  so value <= inf + 1e-12 * max(1, |value|) + rounding <= oracle + SLACK.
* ``value <= Phi(projection of start) + rounding``: Newton accepts only decreases and the
  solver falls back to the projection itself; only the order of summation differs.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

import gradbasis as gb

EPS = float(np.finfo(np.float64).eps)


def slack(x: float) -> float:
    return 1e-10 * max(1.0, abs(x))


# ---------------------------------------------------------------------------------------- oracle
def loss_parts(
    kind: str, F: np.ndarray, Y: np.ndarray, p: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample values (m,) and gradients (m, d) of the loss at F, from the definitions."""
    if kind == "squared":
        R = F - Y
        return (R**2).sum(1), 2.0 * R
    if kind == "cross_entropy":  # -sum_k y_k log softmax(F)_k, any target mass sum_k y_k
        Z = F - F.max(1, keepdims=True)
        logp = Z - np.log(np.exp(Z).sum(1, keepdims=True))
        return -(Y * logp).sum(1), np.exp(logp) * Y.sum(1, keepdims=True) - Y
    if kind == "hinge":  # max(0, 1 - y q)^p
        s = np.maximum(0.0, 1.0 - Y * F)
        return (s**p)[:, 0], -p * Y * s ** (p - 1)
    raise ValueError(kind)


def phi(kind, F, Y, w, p=2.0) -> float:
    return float(w @ loss_parts(kind, np.reshape(F, Y.shape), Y, p)[0])


def range_basis(B: np.ndarray, cut: float | None = None) -> np.ndarray:
    """Left singular vectors of B with sigma > cut * sigma_max (default cut max(n, p) eps, the
    solver's default)."""
    U, s, _ = np.linalg.svd(B, full_matrices=False)
    cut = max(B.shape) * EPS if cut is None else cut
    return U[:, s > cut * s[0]] if s.size and s[0] > 0 else U[:, :0]


def oracle(kind, B, Y, w, p=2.0, starts=(), cut=None) -> float:
    """min over c of Phi(U c) by L-BFGS-B from 0 and from each start's coordinates."""
    m, d = Y.shape
    U = range_basis(B, cut)

    def fg(c):
        F = (U @ c).reshape(m, d)
        v, g = loss_parts(kind, F, Y, p)
        return float(w @ v), U.T @ (w[:, None] * g).ravel()

    best = np.inf
    for F0 in [np.zeros(m * d), *starts]:
        c0 = U.T @ np.ravel(F0)
        res = minimize(
            fg,
            c0,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 20000, "maxcor": 30, "ftol": 1e-16, "gtol": 1e-13},
        )
        best = min(best, fg(res.x)[0], fg(c0)[0])
    return best


def gb_loss(kind, p=2.0):
    return gb.SmoothedHingeLoss(p) if kind == "hinge" else gb.get_loss(kind)


def check_point(res, B, Y, w, kind, p=2.0):
    """value is Phi at fitted (recomputed here from the definition) and fitted = B alpha."""
    m, d = Y.shape
    scale = np.linalg.norm(B, 2) * np.linalg.norm(res.alpha)
    np.testing.assert_allclose(
        res.fitted, (B @ res.alpha).reshape(m, d), rtol=1e-9, atol=1e-12 * (1 + scale)
    )
    # same point, two summation orders: a few eps relative (1e-12 is a wide margin)
    np.testing.assert_allclose(res.value, phi(kind, res.fitted, Y, w, p), rtol=1e-12, atol=1e-15)
    assert res.lower <= res.value


# -------------------------------------------------------------------------------------- problems
def targets(kind, rng, m, d, one_hot=False):
    if kind == "squared":
        return rng.normal(size=(m, d))
    if kind == "cross_entropy":
        return np.eye(d)[rng.integers(0, d, m)] if one_hot else rng.dirichlet(np.ones(d), size=m)
    return rng.choice([-1.0, 1.0], size=(m, 1))


CASES = [("squared", 2.0), ("cross_entropy", 2.0), ("hinge", 2.0), ("hinge", 3.0)]


@pytest.mark.parametrize("kind,p", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_random_problems_agree_with_the_oracle(kind, p, seed):
    rng = np.random.default_rng(100 + seed)
    d = 1 if kind == "hinge" else 3
    m, cols = 25, 7
    B = rng.normal(size=(m * d, cols))
    Y = targets(kind, rng, m, d)
    w = rng.uniform(0.2, 3.0, m)
    w /= w.sum()
    f = (B @ rng.normal(size=cols)).reshape(m, d)  # a point of the span, like f_X(theta)
    res = gb.induced_minimum(B, gb_loss(kind, p), Y, w, start=f)
    opt = oracle(kind, B, Y, w, p, starts=[f])
    check_point(res, B, Y, w, kind, p)
    assert res.converged and res.attained  # soft labels / hinge p >= 2 / squared: attained optimum
    assert res.lower <= opt + slack(opt)
    assert res.value <= opt + slack(opt)
    assert res.value <= phi(kind, f, Y, w, p) * (1 + 1e-12)


@pytest.mark.parametrize("one_hot", [False, True])
def test_cross_entropy_span_with_per_sample_constant_columns(one_hot):
    """A basis whose columns carry a large per-sample-constant part (plus such a column itself):
    cross-entropy ignores those shifts, so they must not stop the solve. (With |logit| capped
    on the raw outputs the solve stopped at the cap: soft labels unconverged with lower 0.29
    under an infimum of 0.5517, separable labels at value 1.6e-6.)"""
    rng = np.random.default_rng(7)
    m, d = 20, 3
    X = rng.normal(size=(m, 2))
    W = rng.normal(size=(d, 2))
    labels = np.argmax(X @ W.T, 1)  # linearly separable
    Y = np.eye(d)[labels] if one_hot else 0.9 * np.eye(d)[labels] + 0.1 / d
    Bx = np.kron(X, np.eye(d))  # the linear model's Jacobian
    const = np.kron(rng.normal(size=(m, 1)), np.ones((d, 1)))  # one constant per sample
    B = np.hstack([Bx + 1e4 * const @ rng.normal(size=(1, Bx.shape[1])), 1e4 * const])
    w = np.full(m, 1.0 / m)
    f = (Bx @ (3.0 * W.reshape(-1, order="F"))).reshape(m, d)  # in the span: f_X of 3 W
    opt = oracle("cross_entropy", B, Y, w, starts=[f])
    for start in (None, f):
        res = gb.induced_minimum(B, "cross_entropy", Y, w, start=start)
        if one_hot:  # separable: infimum 0, approached only at infinity
            assert not res.attained
            assert res.value <= 1e-9  # the oracle reaches ~1e-11; value must keep decreasing to ~0
        else:
            assert res.converged and res.attained
            # B's centred part is 1e-4 of its norm and its small singular directions are resolved
            # to ~eps * 2e5 (sigma_max / sigma_min): the infimum over the numerical span is
            # determined to ~1e-11, inside the slack
            assert res.value <= opt + slack(opt)
        assert res.lower <= opt + slack(opt)
        check_point(res, B, Y, w, "cross_entropy")
    assert res.value <= phi("cross_entropy", f, Y, w)
    assert res.scope.endswith("solved over the 4-dimensional centred span")  # 6 linear - 2 shifts


@pytest.mark.parametrize("kind,p", [("cross_entropy", 2.0), ("hinge", 2.0), ("hinge", 3.0)])
def test_separable_classes(kind, p):
    rng = np.random.default_rng(11)
    m, dx = 30, 3
    d = 1 if kind == "hinge" else 3
    X = rng.normal(size=(m, dx))
    W = rng.normal(size=(d, dx))
    S = X @ W.T
    Y = np.sign(S) if kind == "hinge" else np.eye(d)[np.argmax(S, 1)]
    B = np.kron(X, np.eye(d))
    w = np.full(m, 1.0 / m)
    res = gb.induced_minimum(B, gb_loss(kind, p), Y, w)
    opt = oracle(kind, B, Y, w, p)
    check_point(res, B, Y, w, kind, p)
    assert res.lower <= opt + slack(opt)
    if kind == "hinge":  # the infimum 0 is attained at a finite point (every margin >= 1)
        assert res.converged and res.attained
        assert res.value <= opt + slack(opt)
    else:  # attained only at infinity; lower stays a valid bound (0 here) and value heads to 0
        assert not res.attained
        assert res.value <= 1e-9


@pytest.mark.parametrize("kind,p", CASES)
@pytest.mark.parametrize("seed", [56, 3])
def test_duplicated_samples(kind, p, seed):
    """Every sample twice (labels drawn independently, so some pairs conflict) and a rank below
    the number of distinct samples: optima with samples exactly at the hinge margin, where the
    curvature vanishes. Seed 56 once stalled (200 iterations, lower 0, not converged)."""
    rng = np.random.default_rng(seed)
    m0, cols = 10, 12
    d = 1 if kind == "hinge" else 3
    X = rng.normal(size=(m0 * d, cols))
    B0 = (
        np.vstack([X, X])
        if d == 1
        else np.vstack([X.reshape(m0, d, cols)] * 2).reshape(2 * m0 * d, cols)
    )
    Y = targets(kind, rng, 2 * m0, d)
    B = B0 @ np.linalg.qr(rng.normal(size=(cols, cols)))[0][:, :6]
    w = np.full(2 * m0, 1.0 / (2 * m0))
    res = gb.induced_minimum(B, gb_loss(kind, p), Y, w)
    opt = oracle(kind, B, Y, w, p)
    check_point(res, B, Y, w, kind, p)
    assert res.converged and res.attained
    assert res.gap <= 1e-12 * max(1.0, res.value) * 1.01
    assert res.lower <= opt + slack(opt)
    assert res.value <= opt + slack(opt)


@pytest.mark.parametrize("kind,p", CASES)
def test_badly_scaled_columns(kind, p):
    """Columns scaled by 1e-6 and 1e6 span the same space as unscaled ones. The oracle runs on
    the unscaled basis (cond ~ 5), i.e. on the exact span. Every direction is kept (asserted),
    so the solver's span is the range of the factorisation its SVD starts from: for fewer than
    16 columns Eigen's SVD is Jacobi after column-pivoted Householder QR, which is columnwise
    backward stable (each column's rounding relative to that column), so that range is the
    exact span to ~n eps cond(B0), not eps * 1e12: the 1e-10 slack holds with a margin."""
    rng = np.random.default_rng(21)
    d = 1 if kind == "hinge" else 2
    m, cols = 20, 8
    B0 = rng.normal(size=(m * d, cols))
    D = np.where(np.arange(cols) % 2 == 0, 1e-6, 1e6)
    Y = targets(kind, rng, m, d)
    w = rng.uniform(0.5, 2.0, m)
    w /= w.sum()
    res = gb.induced_minimum(B0 * D, gb_loss(kind, p), Y, w)
    opt = oracle(kind, B0, Y, w, p)
    assert res.rank == cols and res.converged and res.attained
    assert res.lower <= opt + slack(opt)
    assert res.value <= opt + slack(opt)
    np.testing.assert_allclose(res.value, phi(kind, res.fitted, Y, w, p), rtol=1e-12)


def test_targets_summing_to_one_plus_rounding():
    """Targets whose rows sum to 1 + 5e-10 (accepted: within label_tol) at a global minimum:
    the conjugate's domain is judged with the targets' own mass, so the bound is finite and
    tight. (With the mass taken as 1 every dual point was infeasible and lower was -inf.)"""
    rng = np.random.default_rng(5)
    m, d = 6, 3
    Y = rng.dirichlet(np.ones(d), size=m) * (1 + 5e-10)
    B = np.eye(m * d)  # the span is everything: the minimum is the global one, softmax = y / M
    w = np.full(m, 1.0 / m)
    res = gb.induced_minimum(B, "cross_entropy", Y, w, start=np.log(Y))
    glob = -float(
        w @ (Y * np.log(Y / Y.sum(1, keepdims=True))).sum(1)
    )  # sum_i w_i sum_k y log(y / M)
    assert np.isfinite(res.lower)
    assert res.converged and res.attained
    assert res.lower <= glob + slack(glob) and res.value <= glob + slack(glob)
    assert res.gap <= 1e-12
    # the conjugate itself: Fenchel-Young equality at the gradient, with mass 1 + 5e-10
    Q = rng.normal(size=(m, d))
    loss = gb.CrossEntropyLoss()
    G = loss.gradient(Q, Y)
    np.testing.assert_allclose(
        loss.value(Q, Y) + loss.conjugate(G, Y), (G * Q).sum(1), rtol=1e-12, atol=1e-14
    )


def test_scope_of_a_numerically_rank_one_basis():
    """B = [e1, 1e-17 e2] has exact rank 2 but numerical rank 1: lower = 1 is right for the
    numerical span, and the scope must say that a direction was left out."""
    B = np.array([[1.0, 0.0], [0.0, 1e-17]])
    Y = np.array([[1.0], [1.0]])
    res = gb.induced_minimum(B, "squared", Y, np.ones(2))
    assert res.rank == 1
    assert res.value == pytest.approx(1.0, abs=1e-15) and res.lower == pytest.approx(1.0, abs=1e-15)
    assert res.scope == (
        "span of the 1 singular direction(s) of B with sigma > 4.4e-16 * sigma_max "
        "(numerical rank 1 of 2 columns; 1 direction(s) at or below the cut left out)"
    )
    assert res.to_dict()["scope"] == res.scope


@pytest.mark.parametrize("kind,p", CASES)
def test_value_never_exceeds_phi_at_the_start(kind, p):
    """A start in the span of the top singular directions (so in the span at every cut), solves
    cut short at one Newton step: value <= Phi(start) at the main cut and at every profile cut.
    B = U0 diag(s) V0^T with s = 1, 1, 1, 1e-2, 1e-5: every cut keeps U0's first three columns,
    which both sides resolve to an angle of ~n eps / 1e-2, so Phi at the start is the same on
    both sides to 1e-12 relative. The targets make a point of those three directions optimal
    (soft labels softmax(F*), hinge labels sign(F*)) and the start sits next to it."""
    rng = np.random.default_rng(31)
    d = 1 if kind == "hinge" else 3
    m = 20
    s = np.array([1.0, 1.0, 1.0, 1e-2, 1e-5])
    U0 = np.linalg.qr(rng.normal(size=(m * d, 5)))[0]
    V0 = np.linalg.qr(rng.normal(size=(5, 5)))[0]
    B = (U0 * s) @ V0.T
    top = U0[:, :3]
    F_star = (top @ rng.normal(size=3)).reshape(m, d)
    F_star *= 3.0 / np.abs(F_star).max()
    if kind == "squared":
        Y, F0 = F_star + 0.1 * rng.normal(size=(m, d)), F_star
    elif kind == "cross_entropy":
        Y = np.exp(F_star) / np.exp(F_star).sum(1, keepdims=True)
        F0 = F_star + 1e-3 * (top @ rng.normal(size=3)).reshape(m, d)
    else:
        Y = np.sign(F_star)
        F0 = 2.0 * F_star / np.abs(F_star).min()  # every margin >= 2: Phi(F0) = 0
    w = np.full(m, 1.0 / m)
    bound = phi(kind, F0, Y, w, p) * (1 + 1e-12) + 1e-15
    for start in (F0, F0.ravel()):  # (m, d) and flat are the same start
        res = gb.induced_minimum(B, gb_loss(kind, p), Y, w, start=start, max_iter=1)
        assert len(res.profile) == 5
        assert all(e.value <= bound for e in res.profile)
        assert res.value <= bound
    if kind != "squared":  # one Newton step from 0 does not get there by itself (the test can fail)
        assert gb.induced_minimum(B, gb_loss(kind, p), Y, w, max_iter=1, cuts=()).value > bound


def test_start_is_validated():
    rng = np.random.default_rng(0)
    B, Y = rng.normal(size=(12, 3)), rng.dirichlet(np.ones(3), size=4)
    with pytest.raises(gb.ShapeError, match="start"):
        gb.induced_minimum(B, "cross_entropy", Y, start=np.zeros((4, 2)))
    with pytest.raises(gb.ShapeError, match="start"):
        gb.induced_minimum(B, "cross_entropy", Y, start=np.zeros(11))
    bad = np.zeros((4, 3))
    bad[2, 1] = np.nan
    with pytest.raises(gb.NonFiniteError, match="start"):
        gb.induced_minimum(B, "cross_entropy", Y, start=bad)
    with pytest.raises(gb.DTypeError):
        gb.induced_minimum(B, "cross_entropy", Y, start=np.zeros((4, 3), dtype=complex))
