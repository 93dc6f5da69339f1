"""Losses: values, derivatives and conjugates from their definitions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

import gradbasis as gb


def test_squared_loss_matches_definition(rng):
    Q, Y = rng.normal(size=(2, 6, 3))
    loss = gb.SquaredLoss()
    np.testing.assert_allclose(loss.value(Q, Y), ((Q - Y) ** 2).sum(1), rtol=1e-15)
    np.testing.assert_allclose(loss.gradient(Q, Y), 2 * (Q - Y), rtol=1e-15)
    np.testing.assert_array_equal(loss.hessian(Q, Y), np.broadcast_to(2 * np.eye(3), (6, 3, 3)))


def test_cross_entropy_matches_definition(rng):
    Q = 30 * rng.normal(size=(6, 4))  # large logits exercise the shifted log-sum-exp
    Y = rng.dirichlet(np.ones(4), size=6)
    loss = gb.CrossEntropyLoss()
    logp = Q - Q.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    np.testing.assert_allclose(loss.value(Q, Y), -(Y * logp).sum(1), rtol=1e-12)
    p = np.exp(logp)
    np.testing.assert_allclose(loss.gradient(Q, Y), p - Y, rtol=1e-12, atol=1e-15)
    expected = np.stack([np.diag(pi) - np.outer(pi, pi) for pi in p])
    np.testing.assert_allclose(loss.hessian(Q, Y), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("p", [2.0, 2.5, 3.0])
def test_smoothed_hinge_derivatives(p, rng):
    loss = gb.SmoothedHingeLoss(p)
    Q = rng.normal(size=(40, 1))
    Y = rng.choice([-1.0, 1.0], size=(40, 1))
    slack = np.maximum(0.0, 1 - Y * Q)
    np.testing.assert_allclose(loss.value(Q, Y), slack[:, 0] ** p, rtol=1e-14)
    h = 1e-6
    fd = (loss.value(Q + h, Y) - loss.value(Q - h, Y)) / (2 * h)
    np.testing.assert_allclose(loss.gradient(Q, Y)[:, 0], fd, rtol=1e-7, atol=1e-8)
    fd2 = (loss.gradient(Q + h, Y) - loss.gradient(Q - h, Y))[:, 0] / (2 * h)
    away = np.abs(1 - Y * Q)[:, 0] > 1e-3  # l'' jumps at the margin for p = 2
    np.testing.assert_allclose(loss.hessian(Q, Y)[away, 0, 0], fd2[away], rtol=1e-6, atol=1e-7)


def numeric_conjugate(loss, s, y):
    """sup_q s q - l(q, y) for one output by bounded scalar search (for the hinge check)."""
    res = minimize_scalar(
        lambda q: -(s * q - loss.value([[q]], [[y]])[0]),
        bounds=(-50, 50),
        method="bounded",
        options={"xatol": 1e-12},
    )
    return -res.fun


@pytest.mark.parametrize("p", [2.0, 3.0])
def test_hinge_conjugate_is_the_supremum(p):
    loss = gb.SmoothedHingeLoss(p)
    for y in (-1.0, 1.0):
        for s in (-3.0, -0.7, -0.01, 0.0):
            s = s * y  # inside the domain r = y s <= 0
            assert loss.conjugate([[s]], [[y]])[0] == pytest.approx(
                numeric_conjugate(loss, s, y), abs=1e-8
            )
        assert loss.conjugate([[0.5 * y]], [[y]])[0] == np.inf


def test_fenchel_young_equality_at_the_gradient(rng):
    """l(q) + l*(grad l(q)) = <grad l(q), q>: the equality the dual certificates rely on."""
    cases = [
        (gb.SquaredLoss(), rng.normal(size=(8, 3)), rng.normal(size=(8, 3))),
        (gb.CrossEntropyLoss(), rng.normal(size=(8, 3)), rng.dirichlet(np.ones(3), size=8)),
        (gb.SmoothedHingeLoss(3), rng.normal(size=(8, 1)), rng.choice([-1.0, 1.0], size=(8, 1))),
    ]
    for loss, Q, Y in cases:
        G = loss.gradient(Q, Y)
        np.testing.assert_allclose(
            loss.value(Q, Y) + loss.conjugate(G, Y), (G * Q).sum(1), rtol=1e-10, atol=1e-12
        )


def test_fenchel_young_inequality_off_the_gradient(rng):
    """l(q) + l*(s) >= <s, q> for any s (weak duality), +inf outside the domain."""
    loss = gb.CrossEntropyLoss()
    Y = rng.dirichlet(np.ones(3), size=50)
    Q = rng.normal(size=(50, 3))
    S = rng.dirichlet(np.ones(3), size=50) - Y  # s + y in the simplex
    assert (loss.value(Q, Y) + loss.conjugate(S, Y) >= (S * Q).sum(1) - 1e-12).all()
    assert np.isinf(loss.conjugate(S + 0.1, Y)).all()


def test_get_loss_by_name():
    assert isinstance(gb.get_loss("cross-entropy"), gb.CrossEntropyLoss)
    with pytest.raises(gb.UnknownNameError, match="unknown loss"):
        gb.get_loss("hinge")


def test_cross_entropy_conjugate_uses_the_targets_mass(rng):
    """Targets accepted within label_tol (rows summing to 1 + 5e-10): l(q) = M lse(q) - <y, q>
    with M = sum_k y_k, so l*(s) = sum_k p_k log(p_k / M) on {p = s + y >= 0, sum_k s_k = 0}.
    Fenchel-Young holds with equality at the gradient and the domain's sum test follows the
    mass; 1e-12 relative is ~5000 eps, a few terms of rounding with margin."""
    loss = gb.CrossEntropyLoss()
    Y = rng.dirichlet(np.ones(3), size=8) * (1 + 5e-10)
    Q = rng.normal(size=(8, 3))
    G = loss.gradient(Q, Y)
    np.testing.assert_allclose(
        loss.value(Q, Y) + loss.conjugate(G, Y), (G * Q).sum(1), rtol=1e-12, atol=1e-14
    )
    # the definition, with the mass: sum_k p_k log(p_k / M)
    S = (
        rng.dirichlet(np.ones(3), size=8) * Y.sum(1, keepdims=True) - Y
    )  # p in the simplex scaled by M
    P = S + Y
    expected = (P * np.log(P / Y.sum(1, keepdims=True))).sum(1)
    np.testing.assert_allclose(loss.conjugate(S, Y), expected, rtol=1e-12, atol=1e-14)
    # off the domain: a sum of 1e-9 is far above the rounding-level slack (~1e-14 here)
    assert np.isinf(loss.conjugate(S + np.array([1e-9, 0.0, 0.0]), Y)).all()
    S_neg = S.copy()
    S_neg[:, 0] = np.nextafter(-Y[:, 0], -np.inf)  # p_0 one ulp below 0: outside, exactly
    S_neg[:, 1] -= S_neg[:, 0] - S[:, 0]  # the sum stays 0 (to rounding)
    assert np.isinf(loss.conjugate(S_neg, Y)).all()
    S_neg[:, 0] = -Y[:, 0]  # p_0 = 0 exactly: inside
    assert np.isfinite(loss.conjugate(S_neg, Y)).all()
