"""Determinism and thread safety.

The C++ kernels split the samples into fixed blocks of 64, group the blocks into at most 16
chunks fixed by m alone and add the chunk partials in chunk order; Gram tiles are fixed by m
and d_y. So model.forward / jacobian / jvp / vjp / gram / gram_diagonal / kink_margin and
Objective value / gradient / hessian_vector give the same bits for every ``n_threads``, every
repeat, every address of the arrays and every calling Python thread (the GIL is released in
C++). induced_minimum, theorem1 and theorem2 build on those kernels and also call LAPACK
through NumPy, whose threading gradbasis does not control: their numbers are checked to
1e-12 relative to max(1, |x|) and their verdicts and ranks exactly.

Calls below 2**20 multiply-adds run on one thread whatever ``n_threads`` says (blocks.hpp,
kMinParallelWork), so the data here are sized to cross that line: every kernel call below
really runs its parallel path.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

import numpy as np
import pytest

import gradbasis as gb
from gradbasis import _core

THREAD_COUNTS = (1, 2, 3, 8, None)  # None: the default (OpenMP's, usually the core count)
RTOL = 1e-12
PARALLEL_WORK = 2**20  # multiply-adds from which a call uses more than one thread


@dataclass
class Case:
    """A model at a point with data: m = 1100 for the reductions (18 blocks of 64 samples in
    16 chunks, so chunks hold one or two blocks and the last block is ragged), and 300 and
    130 samples for the Jacobian and the Gram matrices (several tiles each way)."""

    model: gb.Model
    loss: str
    theta: np.ndarray
    X: np.ndarray
    Y: np.ndarray
    v: np.ndarray
    U: np.ndarray
    Xg: np.ndarray
    Xg2: np.ndarray


def make_case(model: gb.Model, loss: str, seed: int) -> Case:
    rng = np.random.default_rng(seed)
    m, d_y = 1100, model.output_dim
    # The smallest calls (forward, Jacobian of 300 samples) must still run in parallel.
    assert min(m, 300 * d_y) * model.num_params >= PARALLEL_WORK
    theta = model.init(seed) + 0.1 * rng.normal(size=model.num_params)
    if loss == "cross_entropy":
        Y = rng.dirichlet(np.ones(d_y), size=m)
    else:
        Y = rng.normal(size=(m, d_y))
    return Case(
        model=model,
        loss=loss,
        theta=theta,
        X=rng.normal(size=(m, model.input_dim)),
        Y=Y,
        v=rng.normal(size=model.num_params),
        U=rng.normal(size=(m, d_y)),
        Xg=rng.normal(size=(300, model.input_dim)),
        Xg2=rng.normal(size=(130, model.input_dim)),
    )


RESNET = gb.ResNet(8, 3, gb.PreActResidualStack(8, hidden=40, num_blocks=2, activation="relu"))
CASES = {
    "resnet-preact-relu": make_case(RESNET, "squared", 1),
    "mlp-gelu": make_case(gb.MLP([4, 40, 40, 3], "gelu"), "cross_entropy", 2),
}


def kernel(name: str, c: Case, n: int | None):
    """One C++ kernel call on case c with n_threads = n."""
    model, th = c.model, c.theta
    if name in ("value", "gradient", "hessian_vector"):
        obj = gb.Objective(model, c.loss, c.X, c.Y, n_threads=n)
        if name == "value":
            return obj.value(th)
        if name == "gradient":
            return obj.value_and_gradient(th)
        return obj.hessian_vector(th, c.v)
    calls = {
        "forward": lambda: model.forward(th, c.X, n_threads=n),
        "jacobian": lambda: model.jacobian(th, c.Xg, n_threads=n),
        "jvp": lambda: model.jvp(th, c.X, c.v, n_threads=n),
        "vjp": lambda: model.vjp(th, c.X, c.U, n_threads=n),
        "gram": lambda: model.gram(th, c.Xg, n_threads=n),
        "gram_cross": lambda: model.gram(th, c.Xg, c.Xg2, n_threads=n),
        "gram_diagonal": lambda: model.gram_diagonal(th, c.X, n_threads=n),
        "kink_margin": lambda: model.kink_margin(th, c.X, n_threads=n),
    }
    return calls[name]()


KERNELS = (
    "forward", "jacobian", "jvp", "vjp", "gram", "gram_cross", "gram_diagonal", "kink_margin",
    "value", "gradient", "hessian_vector",
)  # fmt: skip


def assert_same_bits(a, b, what: str) -> None:
    if isinstance(a, tuple):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_bits(x, y, f"{what}[{i}]")
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype, what
    # Bitwise, so -0.0 vs 0.0 and NaN payloads would count: compare the raw bytes.
    assert a.tobytes() == b.tobytes(), f"{what}: max difference {np.max(np.abs(a - b)):.3g}"


def assert_close(a: float, b: float, what: str) -> None:
    if a == b:  # also equal infinities (a kink margin without kinks)
        return
    if np.isnan(a) and np.isnan(b):  # both undefined (no coefficients from the Gram path)
        return
    assert abs(a - b) <= RTOL * max(1.0, abs(a), abs(b)), f"{what}: {a!r} != {b!r}"


def shifted(a: np.ndarray, k: int) -> np.ndarray:
    """A C-contiguous copy of a whose data start k doubles into a fresh buffer (another address
    and alignment)."""
    buf = np.empty(a.size + 8)
    out = buf[k : k + a.size].reshape(a.shape)
    out[...] = a
    return out


# --------------------------------------------------------------------- thread counts
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", KERNELS)
def test_kernels_give_the_same_bits_for_every_thread_count_and_repeat(name, case):
    c = CASES[case]
    reference = kernel(name, c, 1)
    for n in THREAD_COUNTS:
        for repeat in range(2):
            assert_same_bits(kernel(name, c, n), reference, f"{name} n_threads={n} repeat {repeat}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_kernels_do_not_depend_on_where_the_arrays_lie(case):
    # Vectorised loops peel a scalar head whose length depends on alignment; results must not.
    c = CASES[case]
    reference = {name: kernel(name, c, None) for name in KERNELS}
    for k in (1, 3):  # 8 and 24 bytes off: other alignments modulo 16 and 32
        arrays = ("theta", "X", "Y", "v", "U", "Xg", "Xg2")
        moved = Case(c.model, c.loss, *(shifted(getattr(c, f), k) for f in arrays))
        for name in KERNELS:
            assert_same_bits(kernel(name, moved, None), reference[name], f"{name} shifted by {k}")
        J = shifted(np.zeros_like(reference["jacobian"]), k)
        K = shifted(np.zeros_like(reference["gram"]), k)
        c.model.jacobian(c.theta, c.Xg, out=J)
        c.model.gram(c.theta, c.Xg, out=K)
        assert_same_bits(J, reference["jacobian"], f"jacobian into out= shifted by {k}")
        assert_same_bits(K, reference["gram"], f"gram into out= shifted by {k}")


# --------------------------------------------------------------------- solvers and theorems
def critical_linear_point(m: int, seed: int, hidden: int = 12):
    """A deep linear network [4, hidden, 3] at an exact global minimum of the squared loss:
    W1 of full column rank, b1 = 0, W2 = C W1^+ and b2 = c for the least-squares fit C x + c.
    The residual is orthogonal to [X, 1], so the gradient vanishes in every block."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, 4))
    Y = X @ rng.normal(size=(4, 3)) + 0.3 * rng.normal(size=(m, 3))
    model = gb.MLP([4, hidden, 3], "identity")
    coef = np.linalg.lstsq(np.hstack([X, np.ones((m, 1))]), Y, rcond=None)[0]
    W1 = rng.normal(size=(hidden, 4)) / 2.0
    W2 = coef[:4].T @ np.linalg.pinv(W1)
    theta = model.flatten({"W1": W1, "b1": np.zeros(hidden), "W2": W2, "b2": coef[4]})
    return model, theta, X, Y


def test_critical_linear_point_is_critical():
    model, theta, X, Y = critical_linear_point(150, 0)
    assert np.linalg.norm(gb.Objective(model, "squared", X, Y).gradient(theta)) < 1e-12


@contextlib.contextmanager
def default_threads(n: int):
    """Set the core's default thread count (what n_threads=None means) for the calling thread:
    theorem1 and theorem2 run their Jacobians and Grams on the default. Without OpenMP every
    call runs on one thread and there is nothing to set."""
    if not gb.WITH_OPENMP:
        yield
        return
    before = _core.max_threads()
    _core.set_max_threads(n)
    assert _core.max_threads() == n
    try:
        yield
    finally:
        _core.set_max_threads(before)


def induced_numbers(r: gb.InducedResult) -> dict:
    out = {"value": r.value, "lower": r.lower, "gradient_norm": r.gradient_norm}
    out |= {f"sigma{i}": s for i, s in enumerate(r.singular_values)}
    out |= {f"alpha{i}": a for i, a in enumerate(r.alpha)}
    out |= {f"fitted{i}": f for i, f in enumerate(np.ravel(r.fitted))}
    for p in r.profile:
        out |= {f"profile {p.cut:g} value": p.value, f"profile {p.cut:g} lower": p.lower}
    return out


def induced_exact(r: gb.InducedResult) -> tuple:
    return (r.rank, r.attained, r.converged, tuple((p.rank, p.attained) for p in r.profile))


def assert_same_induced(a: gb.InducedResult, b: gb.InducedResult, what: str) -> None:
    assert induced_exact(a) == induced_exact(b), what
    ref = induced_numbers(b)
    for key, value in induced_numbers(a).items():
        assert_close(value, ref[key], f"{what}: {key}")


def test_induced_minimum_is_reproducible():
    c = CASES["mlp-gelu"]
    first = gb.induced_minimum(c.model.jacobian(c.theta, c.Xg[:60]), c.loss, c.Y[:60])
    for n in THREAD_COUNTS:  # J is the same bits for every n; so must the answer be, every time
        J = c.model.jacobian(c.theta, c.Xg[:60], n_threads=n)
        again = gb.induced_minimum(J, c.loss, c.Y[:60])
        assert_same_induced(again, first, f"induced_minimum n_threads={n}")


THEOREM1_FIELDS = (
    "loss_value", "lower", "value", "gap", "gradient_norm", "alpha_distance",
    "first_order_bound", "kink_margin", "resolution",
)  # fmt: skip
THEOREM2_FIELDS = (
    "loss_value", "lower", "value", "gap", "gradient_basis_value", "gradient_basis_lower",
    "gradient_norm", "lemma3_residual", "first_order_bound", "kink_margin", "min_eigenvalue",
)  # fmt: skip


def assert_same_theorem(a, b, fields: tuple[str, ...], exact: tuple[str, ...], what: str) -> None:
    for f in exact:
        assert getattr(a, f) == getattr(b, f), f"{what}: {f}"
    for f in fields:
        assert_close(getattr(a, f), getattr(b, f), f"{what}: {f}")


def theorem1_under(n: int, model, theta, X, Y, strategy: str):
    """theorem1 with n threads everywhere: the Objective's and the default."""
    with default_threads(n):
        obj = gb.Objective(model, "squared", X, Y, n_threads=n)
        return gb.theorem1(obj, theta, strategy=strategy)


@pytest.mark.parametrize("strategy", ["dense", "gram"])
@pytest.mark.parametrize("point", ["critical", "random"])
def test_theorem1_is_the_same_for_every_thread_count(point, strategy):
    model, theta, X, Y = critical_linear_point(200, 1)
    if point == "random":  # a tanh net away from any critical point: "does not apply"
        model = gb.MLP([4, 12, 3], "tanh")
        theta = model.init(4)
    results = {n: theorem1_under(n, model, theta, X, Y, strategy) for n in (1, 2, 3)}
    results["1 again"] = theorem1_under(1, model, theta, X, Y, strategy)
    if strategy == "dense":  # the point is what it claims to be
        expected = gb.Verdict.HOLDS if point == "critical" else gb.Verdict.DOES_NOT_APPLY
        assert results[1].verdict == expected
    for n, r in results.items():
        what = f"theorem1 ({strategy}) with {n} threads"
        assert_same_theorem(r, results[1], THEOREM1_FIELDS, ("verdict", "rank", "full_rank"), what)
        for p, q in zip(r.profile, results[1].profile, strict=True):
            assert p.rank == q.rank, f"{what}: profile rank at cut {q.cut:g}"
            assert_close(p.value, q.value, f"{what}: profile value at cut {q.cut:g}")
            assert_close(p.lower, q.lower, f"{what}: profile lower at cut {q.cut:g}")


def test_theorem2_is_the_same_for_every_thread_count():
    model, theta, X, Y = critical_linear_point(80, 2)
    results = {}
    for n in (1, 2, 3):
        with default_threads(n):
            obj = gb.Objective(model, "squared", X, Y, n_threads=n)
            results[n] = gb.theorem2(obj, theta, strategy="gram", budget=64, combinations=4)
    assert results[1].verdict == gb.Verdict.HOLDS
    for n, r in results.items():
        exact = ("verdict", "rank", "dim_T", "dim_T_tilde", "num_directions")
        assert_same_theorem(r, results[1], THEOREM2_FIELDS, exact, f"theorem2 with {n} threads")


# --------------------------------------------------------------------- Python threads
def run_in_threads(jobs_per_thread: list[list], work) -> list[list]:
    """Run work(job) for each thread's jobs, all threads released together; re-raise the
    first error of any thread."""
    results: list[list] = [[] for _ in jobs_per_thread]
    errors: list[BaseException] = []
    start = threading.Barrier(len(jobs_per_thread))

    def body(t: int) -> None:
        try:
            start.wait()
            for job in jobs_per_thread[t]:
                results[t].append(work(job))
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(t,)) for t in range(len(jobs_per_thread))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    return results


def test_python_threads_give_the_serial_results():
    # 8 threads x 24 calls: every kernel, on the shared cases (the same array objects and
    # models in every thread) and on inputs that two threads share (the model too), with
    # n_threads 1, 2 and default; all against serial calls with n_threads = 1.
    model = CASES["mlp-gelu"].model
    own = {f"own-{t}": make_case(model, "cross_entropy", 100 + t) for t in range(4)}
    cases = CASES | own
    serial = {(case, name): kernel(name, cases[case], 1) for case in cases for name in KERNELS}
    rng = np.random.default_rng(7)
    jobs = []
    for t in range(8):
        inputs = (*CASES, f"own-{t // 2}")
        mine = [(case, name, n) for case in inputs for name in KERNELS for n in (1, 2, None)]
        order = rng.permutation(len(mine))[:24]
        jobs.append([mine[i] for i in order])
    results = run_in_threads(jobs, lambda job: kernel(job[1], cases[job[0]], job[2]))
    assert sum(len(r) for r in results) == 8 * 24
    for t in range(8):
        for (case, name, n), got in zip(jobs[t], results[t], strict=True):
            what = f"thread {t}: {name} on {case}, n_threads={n}"
            assert_same_bits(got, serial[(case, name)], what)


def test_python_threads_solve_and_certify_like_serial_calls():
    model, theta, X, Y = critical_linear_point(150, 3)
    c = CASES["mlp-gelu"]
    J = c.model.jacobian(c.theta, c.Xg[:40])
    serial_induced = gb.induced_minimum(J, c.loss, c.Y[:40])
    serial_t1 = gb.theorem1(gb.Objective(model, "squared", X, Y), theta)

    def work(job):
        if job == "induced":
            return gb.induced_minimum(J, c.loss, c.Y[:40])
        return gb.theorem1(gb.Objective(model, "squared", X, Y, n_threads=2), theta)

    orders = (["theorem1", "induced", "theorem1"], ["induced", "theorem1", "induced"])
    jobs = [orders[t % 2] for t in range(6)]
    results = run_in_threads(jobs, work)
    for t in range(6):
        for job, got in zip(jobs[t], results[t], strict=True):
            if job == "induced":
                assert_same_induced(got, serial_induced, f"thread {t}: induced_minimum")
            else:
                exact = ("verdict", "rank", "full_rank")
                assert_same_theorem(got, serial_t1, THEOREM1_FIELDS, exact, f"thread {t}: theorem1")
