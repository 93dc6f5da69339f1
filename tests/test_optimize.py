"""minimize: reaches the 2-norm gradient tolerance, reports the returned point exactly."""

from __future__ import annotations

import dataclasses
import functools
import sys
import types

import numpy as np
import pytest

import gradbasis as gb
from gradbasis.optimize import METHODS, MinimizeResult, minimize


def tanh_problem(seed: int = 0) -> tuple[gb.Objective, np.ndarray]:
    """20 samples, a [3, 6, 5, 2] tanh MLP (71 parameters > 40 outputs), squared loss."""
    rng = np.random.default_rng(seed)
    X, Y = rng.normal(size=(20, 3)), rng.normal(size=(20, 2))
    model = gb.MLP([3, 6, 5, 2], "tanh")
    # One thread: tiny problems, where OpenMP start-up would cost more than the work.
    return gb.Objective(model, gb.SquaredLoss(), X, Y, n_threads=1), model.init(seed)


@functools.cache
def polished(seed: int) -> MinimizeResult:
    obj, theta0 = tanh_problem(seed)
    return minimize(obj, theta0, method="lbfgs+newton", gtol=1e-8)


@pytest.mark.parametrize("seed", [0, 1])
def test_lbfgs_newton_reaches_1e_8(seed):
    obj, theta0 = tanh_problem(seed)
    res = polished(seed)
    assert isinstance(res, MinimizeResult)
    assert res.converged, str(res)
    assert res.gradient_norm <= 1e-8
    assert res.value < obj.value(theta0)
    assert res.method == "lbfgs+newton" and res.iterations > 0
    assert res.evaluations > res.iterations // 2
    assert res.hessian_vector_products > 0 and res.seconds >= 0


def test_reported_numbers_describe_the_returned_theta():
    obj, theta0 = tanh_problem(0)
    res = minimize(obj, theta0, method="lbfgs", max_iter=30)
    value, grad = obj.value_and_gradient(res.theta)
    # Recomputed at the returned point, so equal to the last bit (the core is deterministic).
    assert res.gradient_norm == float(np.linalg.norm(obj.gradient(res.theta)))
    assert res.gradient_norm == float(np.linalg.norm(grad))
    assert res.value == value
    assert res.converged == (res.gradient_norm <= res.gtol)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_decreases_the_loss(method):
    obj, theta0 = tanh_problem(2)
    res = minimize(obj, theta0, method=method, max_iter=40)
    assert np.all(np.isfinite(res.theta)) and res.theta.shape == theta0.shape
    assert res.value < 0.5 * obj.value(theta0)
    assert res.method == method and res.message


def test_tight_tolerance_returns_instead_of_raising():
    """trust-krylov to gtol 1e-10: trlib breaks down (hands NaN vectors to the Hessian-vector
    product) or stalls near rounding-level gradients, and where depends on the build's rounding
    (the Release build breaks down after ~1900 iterations at ||grad|| ~ 2e-9; a -O1 build stalls
    after 39 at 2.3e-4). Whatever the path, minimize returns a finite point no worse than theta0,
    describes it exactly, and says why when it is not converged."""
    obj, theta0 = tanh_problem(0)
    res = minimize(obj, theta0, method="trust-krylov", gtol=1e-10, max_iter=3000)
    assert res.theta.shape == theta0.shape and np.all(np.isfinite(res.theta))
    assert np.isfinite(res.value) and np.isfinite(res.gradient_norm)
    assert res.value <= obj.value(theta0)
    # Recomputed at the returned point by another sweep of the same sum: equal to rounding.
    assert res.value == pytest.approx(obj.value(res.theta), rel=1e-12, abs=1e-300)
    assert res.gradient_norm == float(np.linalg.norm(obj.gradient(res.theta)))
    if res.converged:
        assert res.gradient_norm <= res.gtol
    else:
        assert res.gradient_norm > res.gtol and "NOT converged" in str(res)
        # The optimiser's own reason (trlib's breakdown, a failed prediction, max_iter), not ours.
        assert res.message and "gradient 2-norm <=" not in res.message


def test_start_at_a_critical_point_takes_no_step():
    obj, _ = tanh_problem(0)
    start = polished(0).theta
    res = minimize(obj, start, method="trust-ncg", gtol=1e-6)
    assert res.iterations == 0 and res.converged
    np.testing.assert_array_equal(res.theta, start)


def test_bad_arguments():
    obj, theta0 = tanh_problem(0)
    with pytest.raises(gb.UnknownNameError, match="newton-cg"):
        minimize(obj, theta0, method="bfgs")
    with pytest.raises(ValueError):  # UnknownNameError is also a ValueError
        minimize(obj, theta0, method="LBFGS")
    with pytest.raises(ValueError, match="gtol"):
        minimize(obj, theta0, gtol=0.0)
    with pytest.raises(ValueError, match="max_iter"):
        minimize(obj, theta0, max_iter=0)
    with pytest.raises(gb.ShapeError):
        minimize(obj, theta0[:-1])
    with pytest.raises(TypeError):
        minimize(lambda t: 0.0, theta0)


def test_result_is_frozen_and_prints():
    obj, theta0 = tanh_problem(0)
    res = minimize(obj, theta0, method="lbfgs", max_iter=5, gtol=1e-12)
    assert not res.converged
    text = str(res)
    assert "NOT converged" in text and "lbfgs" in text and "||grad||" in text
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.value = 0.0


class _FakeBar:
    instances: list[_FakeBar] = []

    def __init__(self, total, desc, unit, **options):  # delay, leave: display only
        self.total, self.desc, self.updates, self.postfix, self.closed = total, desc, 0, None, False
        _FakeBar.instances.append(self)

    def update(self, n):
        self.updates += n

    def set_postfix(self, refresh=True, **kwargs):
        self.postfix = kwargs

    def close(self):
        self.closed = True


def test_progress_bar_when_tqdm_is_there(monkeypatch):
    fake = types.ModuleType("tqdm.auto")
    fake.tqdm = _FakeBar
    monkeypatch.setitem(sys.modules, "tqdm", types.ModuleType("tqdm"))
    monkeypatch.setitem(sys.modules, "tqdm.auto", fake)
    obj, theta0 = tanh_problem(0)
    res = minimize(obj, theta0, method="newton-cg", max_iter=10, progress=True)
    bar = _FakeBar.instances[-1]
    assert bar.closed and bar.updates == res.iterations > 0
    assert set(bar.postfix) == {"value", "grad"}


def test_progress_without_tqdm_is_silent(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `import tqdm...` fail
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    obj, theta0 = tanh_problem(0)
    res = minimize(obj, theta0, method="lbfgs", max_iter=5, progress=True)
    assert res.iterations > 0
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
