"""Models, losses and objectives survive pickling (they travel to Dask workers that way)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import ZOO, random_point

import gradbasis as gb


def round_trip(obj):
    return pickle.loads(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


@pytest.mark.parametrize("name", sorted(ZOO))
def test_model_round_trip_is_exact(name, rng):
    model = ZOO[name]
    copy = round_trip(model)
    assert type(copy) is type(model)
    assert copy.param_specs == model.param_specs
    assert repr(copy) == repr(model)
    theta, X = random_point(model, rng)
    # The same graph is rebuilt, so the numbers agree bit for bit, not just to rounding.
    np.testing.assert_array_equal(copy.forward(theta, X), model.forward(theta, X))
    np.testing.assert_array_equal(copy.jacobian(theta, X), model.jacobian(theta, X))
    np.testing.assert_array_equal(copy.homogeneity(theta), model.homogeneity(theta))


def test_round_trip_keeps_leaky_slope_and_no_bias():
    model = gb.MLP([3, 4, 2], "leaky_relu", negative_slope=0.3, bias=False)
    copy = round_trip(model)
    assert copy.activations == model.activations and copy.bias is False
    assert copy.activations[0].negative_slope == 0.3


def test_residual_stack_on_its_own():
    stack = gb.PreActResidualStack(3, hidden=4, num_blocks=3, activation="gelu", bias=False)
    copy = round_trip(stack)
    assert copy.param_specs == stack.param_specs
    theta, X = stack.init(1), np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_array_equal(copy.jacobian(theta, X), stack.jacobian(theta, X))


def test_subclass_without_its_own_init_pickles_as_itself():
    class Wide(gb.MLP):  # defined at module level in real code; pickled by reference
        pass

    model = Wide([2, 3, 1])
    reduce = model.__reduce__()
    rebuilt = reduce[0](*reduce[1])
    assert type(rebuilt) is Wide and rebuilt.param_specs == model.param_specs


def test_subclass_with_new_init_must_say_how_to_rebuild():
    class Fixed(gb.MLP):
        def __init__(self, width):
            super().__init__([2, width, 1])

    with pytest.raises(TypeError, match="_constructor_arguments"):
        pickle.dumps(Fixed(3))


@pytest.mark.parametrize(
    "loss", [gb.SquaredLoss(), gb.CrossEntropyLoss(), gb.SmoothedHingeLoss(3.5)]
)
def test_loss_round_trip(loss, rng):
    copy = round_trip(loss)
    assert type(copy) is type(loss) and repr(copy) == repr(loss)
    d = 1 if loss.name == "smoothed_hinge" else 3
    Q = rng.normal(size=(6, d))
    Y = np.sign(rng.normal(size=(6, 1))) if d == 1 else rng.dirichlet(np.ones(d), size=6)
    for what in ("value", "gradient", "hessian", "conjugate"):
        np.testing.assert_array_equal(getattr(copy, what)(Q, Y), getattr(loss, what)(Q, Y))


def test_objective_round_trip(rng):
    model = ZOO["resnet-mlp"]
    theta, X = random_point(model, rng)
    Y = rng.dirichlet(np.ones(model.output_dim), size=X.shape[0])
    obj = gb.Objective(model, "cross_entropy", X, Y, weights=rng.uniform(0.5, 2.0, X.shape[0]))
    copy = round_trip(obj)
    assert copy.loss.name == "cross_entropy"
    np.testing.assert_array_equal(copy.weights, obj.weights)
    value, grad = obj.value_and_gradient(theta)
    value2, grad2 = copy.value_and_gradient(theta)
    assert value2 == value
    np.testing.assert_array_equal(grad2, grad)
