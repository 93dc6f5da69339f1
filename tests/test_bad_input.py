"""Every documented bad input raises a GradbasisError subclass that names the problem."""

from __future__ import annotations

import numpy as np
import pytest

import gradbasis as gb

MLP = gb.MLP([3, 4, 2], "tanh")
THETA = MLP.init(seed=0)
X = np.random.default_rng(0).normal(size=(5, 3))
Y = np.random.default_rng(1).normal(size=(5, 2))


def nan_at(arr, index):
    arr = np.array(arr, dtype=float)
    arr[index] = np.nan
    return arr


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: MLP.forward(THETA[:-1], X), gb.ShapeError, r"expected \(26,\)"),
        (lambda: MLP.forward(THETA, X[:, :2]), gb.ShapeError, "expected 3"),
        (lambda: MLP.forward(THETA, X[0]), gb.ShapeError, "reshape"),
        (lambda: MLP.forward(THETA, np.empty((0, 3))), gb.ShapeError, "no samples"),
        (lambda: MLP.forward(nan_at(THETA, 4), X), gb.NonFiniteError, r"theta .*index \(4,\)"),
        (lambda: MLP.forward(THETA, nan_at(X, (2, 1))), gb.NonFiniteError, r"X .*\(2, 1\)"),
        (lambda: MLP.forward(THETA, X.astype(complex)), gb.DTypeError, "complex"),
        (lambda: MLP.forward(THETA, X.astype(object)), gb.DTypeError, "object"),
        (lambda: MLP.jvp(THETA, X, THETA[:3]), gb.ShapeError, "v has shape"),
        (lambda: MLP.vjp(THETA, X, Y[:4]), gb.ShapeError, "U has 4 rows"),
        (lambda: MLP.jacobian(THETA, X, memory_budget=1000), gb.MemoryBudgetError, "memory_budget"),
        (
            lambda: MLP.jacobian(THETA, X, out=np.empty((10, 26), order="F")),
            gb.ShapeError,
            "C-contiguous",
        ),
        (lambda: MLP.jacobian(THETA, X, out=np.empty((9, 26))), gb.ShapeError, "shape"),
        (lambda: MLP.forward(THETA, X, n_threads=0), ValueError, "n_threads"),
        (lambda: gb.MLP([3, 4, 2], "swish"), gb.UnknownNameError, "swish"),
        (lambda: gb.MLP([3, 4, 2], ["tanh", "relu"]), ValueError, "2 activations for 1 hidden"),
        (lambda: gb.MLP([3], "tanh"), gb.ShapeError, "at least input and output"),
        (lambda: gb.MLP([3, 0, 2], "tanh"), gb.ShapeError, r"layer_sizes\[1\]"),
        (lambda: gb.SkipMLP([3, 4, 2], skip_from=[5]), ValueError, "skip_from"),
        (lambda: gb.ResNet(4, 2, gb.MLP([3, 4, 2])), ValueError, "input_dim"),
        (lambda: MLP.flatten({"W1": np.zeros((4, 3))}), gb.ShapeError, "missing"),
        (
            lambda: MLP.flatten({**MLP.unflatten(THETA), "W1": np.zeros((3, 4))}),
            gb.ShapeError,
            "W1 has shape",
        ),
        (lambda: gb.Objective(MLP, "squared", X, Y[:4]), gb.ShapeError, "Y has 4 rows"),
        (lambda: gb.Objective(MLP, "squared", X, nan_at(Y, (0, 0))), gb.NonFiniteError, "Y"),
        (
            lambda: gb.Objective(MLP, "squared", X, Y, np.r_[1.0, 1, 0, 1, 1]),
            gb.InvalidWeightsError,
            r"weights\[2\]",
        ),
        (lambda: gb.Objective(MLP, "squared", X, Y, np.ones(4)), gb.ShapeError, "weights"),
        (lambda: gb.Objective(MLP, "cross_entropy", X, np.abs(Y)), gb.InvalidLabelError, "sums to"),
        (lambda: gb.Objective(MLP, "cross_entropy", X, Y - 5), gb.InvalidLabelError, "negative"),
        (lambda: gb.Objective(MLP, "smoothed_hinge", X, Y), gb.InvalidLabelError, "one output"),
        (
            lambda: gb.Objective(gb.MLP([3, 2, 1]), "smoothed_hinge", X, np.r_[1, -1, 1, 0.5, 1]),
            gb.InvalidLabelError,
            r"Y\[3\]",
        ),
        (lambda: gb.SmoothedHingeLoss(p=1.5), ValueError, "p >= 2"),
        (lambda: gb.Objective(MLP, "huber", X, Y), gb.UnknownNameError, "huber"),
        (
            lambda: gb.Objective(MLP, "squared", X, Y).hessian_vector(THETA, THETA[:2]),
            gb.ShapeError,
            "v",
        ),
    ],
)
def test_bad_input_raises_a_named_error(call, error, match):
    with pytest.raises(error, match=match) as info:
        call()
    assert isinstance(info.value, gb.GradbasisError) or error is ValueError


def test_memory_is_checked_before_allocating():
    """A Jacobian of about 8 TB is refused at once, without trying to allocate it."""
    model = gb.MLP([1000, 1000, 1000], "relu")
    X_big = np.zeros((1000, 1000))
    with pytest.raises(gb.MemoryBudgetError, match="dense Jacobian 1000000 x 2002000"):
        model.jacobian(model.init(), X_big)


def test_convertible_arrays_are_accepted():
    """float32, integer, Fortran-ordered and strided inputs are converted, not rejected."""
    expected = MLP.forward(THETA, X)
    np.testing.assert_allclose(
        MLP.forward(THETA.astype(np.float32), X),
        MLP.forward(THETA.astype(np.float32).astype(float), X),
    )
    np.testing.assert_array_equal(MLP.forward(THETA, np.asfortranarray(X)), expected)
    wide = np.zeros((5, 6))
    wide[:, ::2] = X
    np.testing.assert_array_equal(MLP.forward(THETA, wide[:, ::2]), expected)
    ints = np.arange(15).reshape(5, 3)
    np.testing.assert_array_equal(MLP.forward(THETA, ints), MLP.forward(THETA, ints.astype(float)))
    # Labels for one output may be a flat vector.
    obj = gb.Objective(gb.MLP([3, 2, 1]), "smoothed_hinge", X, np.array([1, -1, 1, 1, -1]))
    assert obj.Y.shape == (5, 1)
