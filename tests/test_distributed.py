"""The Dask path (gradbasis.solve.distributed) equals the single-machine path.

One LocalCluster with two worker processes serves the module, so every model, loss and theta
really travels to another process (pickled) and the C++ core runs there.
"""

from __future__ import annotations

import sys

import dask  # the test extra installs dask and distributed
import dask.array as da
import distributed
import numpy as np
import pytest
from conftest import ZOO, random_point

import gradbasis as gb
from gradbasis.solve.distributed import (
    distributed_gram,
    distributed_induced_minimum,
    distributed_jacobian,
)

RTOL = 1e-10


@pytest.fixture(scope="module")
def client():
    # No dashboard: it needs bokeh and a free port, neither of which the tests are about. One
    # OpenMP thread per worker, as many as the worker has: more would oversubscribe the cores.
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            env={"OMP_NUM_THREADS": "1"},
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def close(a, b, rtol=RTOL):
    """Agreement relative to the size of the reference."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = max(np.max(np.abs(b), initial=0.0), 1e-300)
    return a.shape == b.shape and np.max(np.abs(a - b), initial=0.0) <= rtol * scale


# ----------------------------------------------------------------------------- blocks
def test_blocks_equal_single_machine_for_every_model(client, rng):
    # Every model of the zoo in one round trip: K from its upper blocks, J from its row blocks.
    cases = {name: random_point(model, rng, m=11) for name, model in ZOO.items()}
    arrays = []
    for name, (theta, X) in cases.items():
        model, r = ZOO[name], ZOO[name].output_dim
        K = distributed_gram(model, theta, X, chunk_size=4)  # chunks of 4, 4 and 3 samples
        J = distributed_jacobian(model, theta, X, chunk_size=5)  # 5, 5 and 1
        assert K.chunks == ((4 * r, 4 * r, 3 * r),) * 2
        assert J.chunks == ((5 * r, 5 * r, r), (model.num_params,))
        arrays += [K, J]
    computed = iter(dask.compute(*arrays))
    for name, (theta, X) in cases.items():
        K, J = next(computed), next(computed)
        assert close(K, ZOO[name].gram(theta, X), 1e-13), name
        np.testing.assert_array_equal(
            K, K.T, err_msg=name
        )  # lower blocks: the upper ones transposed
        assert close(J, ZOO[name].jacobian(theta, X), 1e-14), name


def test_dask_input_keeps_its_chunks_and_client_persists(client, rng):
    model = ZOO["resnet-mlp"]
    theta, X = random_point(model, rng, m=13)
    Xd = da.from_array(X, chunks=(6, 2))  # split across features too: rejoined
    J = distributed_jacobian(model, theta, Xd)
    assert J.chunks[0] == tuple(c * model.output_dim for c in (6, 6, 1))
    K = distributed_gram(model, theta, Xd, client=client)  # persisted on the workers
    assert close(K.compute(), model.gram(theta, X), 1e-13)
    assert close(J.compute(), model.jacobian(theta, X), 1e-14)


# ----------------------------------------------------------------------------- infimum
def squared_problem(model, rng, m):
    theta, X = random_point(model, rng, m=m)
    return theta, X, rng.normal(size=(m, model.output_dim))


def softmax(F):
    E = np.exp(F - F.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def assert_same_infimum(res, ref):
    assert close(res.value, ref.value) and close(res.lower, ref.lower)
    assert res.rank == ref.rank and res.attained == ref.attained and res.converged
    if res.loss == "cross_entropy":
        # Shifting every output of a sample by one constant leaves cross-entropy unchanged, so
        # alpha and the fitted outputs are determined only up to such shifts (an output bias).
        assert close(softmax(res.fitted), softmax(ref.fitted), 1e-8)
    else:
        assert close(res.alpha, ref.alpha, 1e-8)  # coefficients: as well determined as the span
        assert close(res.fitted, ref.fitted, 1e-8)
    assert [p.cut for p in res.profile] == [p.cut for p in ref.profile]
    for p, q in zip(res.profile, ref.profile, strict=True):
        assert p.rank == q.rank and close(p.value, q.value) and close(p.lower, q.lower)


@pytest.mark.parametrize("name", ["mlp-tanh", "resnet-mlp"])
def test_tsqr_equals_dense_squared(name, client, rng):
    model = ZOO[name]
    theta, X, Y = squared_problem(model, rng, m=40)  # J is taller than wide: a proper cut-free span
    obj = gb.Objective(model, "squared", X, Y)
    ref = gb.gradient_basis_minimum(obj, theta, strategy="dense")
    res = distributed_induced_minimum(obj, theta, chunk_size=12, method="tsqr")
    assert_same_infimum(res, ref)
    assert close(res.singular_values, ref.singular_values, 1e-12)  # equal weights: J's own
    assert res.strategy == "distributed_tsqr" and res.details["num_chunks"] == 4


def test_tsqr_with_weights_and_dask_inputs(client, rng):
    model = ZOO["mlp-tanh"]
    theta, X, Y = squared_problem(model, rng, m=37)
    w = rng.uniform(0.2, 3.0, size=37)
    X_, Y_, w_ = (
        da.from_array(X, chunks=(10, 4)),
        da.from_array(Y, chunks=(15, 3)),
        da.from_array(w, chunks=7),
    )
    cuts = (1e-3, 1e-1)
    res = distributed_induced_minimum(
        (model, "squared", X_, Y_, w_), theta, client=client, cuts=cuts
    )
    ref = gb.gradient_basis_minimum(
        gb.Objective(model, "squared", X, Y, w), theta, strategy="dense", cuts=cuts
    )
    assert ref.profile[0].rank < ref.rank  # the profile cuts the span: J's singular values decide
    assert_same_infimum(res, ref)
    assert close(res.singular_values, ref.singular_values, 1e-12)
    assert res.details["num_chunks"] == 4 and not res.details["equal_weights"]  # X's own chunks


def test_bad_requests_fail_before_any_work(rng):
    model = ZOO["mlp-tanh"]
    theta, X = random_point(model, rng)
    Y = np.eye(3)[rng.integers(0, 3, X.shape[0])]
    with pytest.raises(gb.InvalidOptionError, match="method='gram'"):
        distributed_induced_minimum((model, "cross_entropy", X, Y), theta, method="tsqr")
    with pytest.raises(gb.UnknownNameError):
        distributed_induced_minimum((model, "cross_entropy", X, Y), theta, method="svd")
    with pytest.raises(TypeError, match="Objective or a tuple"):
        distributed_induced_minimum((X, Y), theta)
    with pytest.raises(gb.InvalidOptionError, match="chunk_size"):
        distributed_jacobian(model, theta, X, chunk_size=0)
    with pytest.raises(
        gb.MemoryBudgetError, match="method='tsqr'"
    ):  # checked before any block runs
        distributed_induced_minimum(
            (model, "cross_entropy", X, Y), theta, method="gram", memory_budget=1000
        )


def test_gram_method_equals_gram_strategy_cross_entropy(client, rng):
    # Fewer parameters (27) than outputs (3 x 60) and random labels: the infimum is attained.
    model = gb.MLP([4, 3, 3], "tanh")
    theta, X = random_point(model, rng, m=60)
    Y = np.eye(3)[rng.integers(0, 3, 60)]
    obj = gb.Objective(model, "cross_entropy", X, Y, rng.uniform(0.5, 2.0, 60))
    ref = gb.gradient_basis_minimum(obj, theta, strategy="gram")
    res = distributed_induced_minimum(obj, theta, chunk_size=16, method="gram", client=client)
    assert ref.attained
    assert_same_infimum(res, ref)
    assert close(
        softmax(model.jvp(theta, X, res.alpha)), softmax(res.fitted), 1e-8
    )  # alpha gives the fit
    assert res.rank_tol == ref.rank_tol and res.details["gram_rank"] == ref.details["gram_rank"]
    assert close(res.singular_values, ref.singular_values, 1e-12)


def test_gram_method_squared_with_dask_targets(client, rng):
    model = ZOO["skip"]
    theta, X, Y = squared_problem(model, rng, m=30)
    # Every input twice: rank J = 45 of 90 rows with a gap down to rounding, so the span at the
    # Gram cut is well determined. (Without a gap the cut falls inside a continuous spectrum and
    # K's rounding, which differs between one K and K assembled from blocks, moves the kept span
    # by up to sqrt(n eps) in angle.)
    X, Y = np.vstack([X[:15], X[:15]]), Y
    ref = gb.gradient_basis_minimum(gb.Objective(model, "squared", X, Y), theta, strategy="gram")
    assert ref.rank == 45
    problem = (
        model,
        gb.SquaredLoss(),
        da.from_array(X, chunks=(8, 4)),
        da.from_array(Y, chunks=(30, 3)),
    )
    res = distributed_induced_minimum(problem, theta, method="gram")
    assert_same_infimum(res, ref)


def test_resolved_method_gives_theorem1s_certificate(client, rng):
    """Pairs of inputs 1e-7 apart put J's singular values far below K's floor: the distributed
    certificate must find them from J products on the workers, as the single machine does."""
    model = gb.MLP([4, 12, 2], "tanh")
    theta = model.init(seed=0)
    X = np.repeat(rng.standard_normal((30, 4)), 2, axis=0)
    X[1::2] += 1e-7 * rng.standard_normal((30, 4))
    Y = rng.standard_normal((60, 2))
    obj = gb.Objective(model, "squared", X, Y)
    ref = gb.theorem1(obj, theta, strategy="gram").induced
    res = distributed_induced_minimum(obj, theta, chunk_size=16, method="resolved", client=client)
    how = res.details["resolution"]
    assert (
        how["resolved"] and how["extension_rank"] == ref.details["resolution"]["extension_rank"] > 0
    )
    assert res.rank == ref.rank
    # K assembled from blocks rounds differently from one K, and range(L) inherits a tilt of
    # about n eps cond(K_PP) <= sqrt(n eps) ~ 2e-7 here (the Cholesky cut sits at the Gram
    # floor): both answers carry it, so they agree to a modest multiple of that, not to eps.
    tol = 1e2 * np.sqrt(X.shape[0] * 2 * np.finfo(float).eps) * ref.value
    assert abs(res.value - ref.value) <= tol
    assert abs(res.lower - ref.lower) <= tol
    fit = model.jvp(theta, X, res.alpha)
    assert np.linalg.norm(fit - res.fitted) <= 1e-4 * np.linalg.norm(res.fitted)


# ----------------------------------------------------------------------------- without dask
def test_missing_dask_names_the_extra(monkeypatch, rng):
    # gradbasis.solve.distributed imports Dask only when called, so gradbasis works without it.
    monkeypatch.setitem(sys.modules, "dask", None)  # import dask now raises ImportError
    monkeypatch.setitem(sys.modules, "dask.array", None)
    model = ZOO["basis"]
    theta, X = random_point(model, rng)
    with pytest.raises(ImportError, match=r"gradbasis\[distributed\]"):
        distributed_gram(model, theta, X)
