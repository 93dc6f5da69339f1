"""Fuzzing the Python-C++ boundary with Hypothesis.

Random architectures (MLP with random widths, depths, per-layer activations and bias; SkipMLP;
ResNet with an MLP or a pre-activation residual stack; the basis model), random shapes, dtypes
(float64/32/16, int64/32, uint8, bool, object, complex, str), memory orders (C, Fortran, strided
slices, negative strides, nested lists) and values (NaN, +-inf, scales 1e+-150) go into forward,
jacobian, jvp, vjp, gram, the objective and induced_minimum. Every call either returns a correct
result, checked against NumPy (an independent NumPy forward pass; J v = jvp, J^T u = vjp,
J J^T = gram, J g = f; the losses and J^T u for the objective; bounds and least squares for the
induced minimum), or raises the GradbasisError subclass that a bad argument calls for, with that
argument named in the message. Any other exception, a crash or a hang fails the run.

Tolerances: results agree with NumPy to 1e-9 relative to the magnitude of the terms summed
(e.g. |J| |v| for J v), which allows for the different summation order. Where the exact value is
beyond float64 (the NumPy reference overflows) nothing is compared: the library's handling of
overflow is pinned by tests/test_edge_cases.py; the call must still return or raise a
GradbasisError.

Profiles (tests/conftest.py): the normal suite runs a small derandomized sample per test; the
dedicated run is ``HYPOTHESIS_PROFILE=fuzz python -m pytest tests/test_fuzz.py`` (thousands of
examples per test; add ``--hypothesis-show-statistics`` for the counts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import scipy.special
from hypothesis import event, given, settings
from hypothesis import strategies as st

import gradbasis as gb

FUZZ = settings.get_current_profile_name() == "fuzz"
# The normal suite runs the same small sample every time; the fuzz profile draws afresh.
boundary_settings = settings(derandomize=not FUZZ)

Bad = list[tuple[str, type]]  # (phrase the message names, error class) per bad argument


# ----------------------------------------------------------------------------- NumPy reference
def activation_np(act: gb.Activation, x: np.ndarray) -> np.ndarray:
    name = act.name
    if name == "identity":
        return x
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "leaky_relu":
        return np.where(x > 0, x, act.negative_slope * x)
    if name == "tanh":
        return np.tanh(x)
    if name == "sigmoid":
        return scipy.special.expit(x)
    if name == "softplus":
        return np.logaddexp(0.0, x)
    assert name == "gelu"
    return 0.5 * x * scipy.special.erfc(-x / np.sqrt(2.0))


def dense_np(p: dict, h: np.ndarray, w: str, b: str | None) -> np.ndarray:
    out = h @ p[w].T
    return out + p[b] if b is not None and b in p else out


def mlp_np(model: gb.MLP, p: dict, x: np.ndarray, prefix: str = "") -> np.ndarray:
    H = len(model.layer_sizes) - 2
    h = x
    for l in range(1, H + 1):
        h = activation_np(
            model.activations[l - 1], dense_np(p, h, f"{prefix}W{l}", f"{prefix}b{l}")
        )
    return dense_np(p, h, f"{prefix}W{H + 1}", f"{prefix}b{H + 1}")


def stack_np(model: gb.PreActResidualStack, p: dict, x: np.ndarray, prefix: str = "") -> np.ndarray:
    act = model.activation
    h = x
    for k in range(1, model.num_blocks + 1):
        inner = dense_np(p, activation_np(act, h), f"{prefix}U{k}", f"{prefix}c{k}")
        h = h + dense_np(p, activation_np(act, inner), f"{prefix}V{k}", f"{prefix}e{k}")
    return h


def forward_np(model: gb.Model, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """f_X(theta) from the model's named parameter blocks, written out in NumPy."""
    p = model.unflatten(theta)
    with np.errstate(all="ignore"):
        if isinstance(model, gb.BasisModel):
            return X @ p["W"].T
        if isinstance(model, gb.MLP):
            return mlp_np(model, p, X)
        if isinstance(model, gb.SkipMLP):
            H = len(model.layer_sizes) - 2
            hs = [X]
            for l in range(1, H + 1):
                hs.append(
                    activation_np(model.activations[l - 1], dense_np(p, hs[-1], f"W{l}", f"b{l}"))
                )
            f = dense_np(p, hs[H], f"W{H + 1}", f"b{H + 1}")
            for l in model.skip_from[:-1]:
                f = f + hs[l] @ p[f"S{l}"].T
            return f
        assert isinstance(model, gb.ResNet)
        r = model.residual
        z = mlp_np(r, p, X, "u.") if isinstance(r, gb.MLP) else stack_np(r, p, X, "u.")
        return (X + z @ p["R"].T) @ p["W"].T


def loss_np(name: str, power: float, Q: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, ...]:
    """(l(q_i, y_i), dl/dq) per row, each with a bound on the magnitude of the terms it is computed
    from (the rounding scale: e.g. softmax(q) - y cancels to far below softmax(q) + |y|)."""
    with np.errstate(all="ignore"):
        if name == "squared":
            scale = np.abs(Q) + np.abs(Y)
            return ((Q - Y) ** 2).sum(axis=1), (scale**2).sum(axis=1), 2 * (Q - Y), 2 * scale
        if name == "cross_entropy":
            lse = scipy.special.logsumexp(Q, axis=1)
            p = scipy.special.softmax(Q, axis=1)
            yq = (Y * Q).sum(axis=1)
            return lse - yq, np.abs(lse) + (np.abs(Y) * np.abs(Q)).sum(axis=1), p - Y, p + np.abs(Y)
        slack = np.maximum(0.0, 1.0 - Y * Q)
        scale = 1.0 + np.abs(Q)
        return (
            (slack**power)[:, 0],
            (scale**power)[:, 0],
            -power * Y * slack ** (power - 1),
            power * scale ** (power - 1),
        )


def close(
    actual: object, expected: np.ndarray, magnitude: np.ndarray, what: str, floor: float = 1e-300
) -> None:
    """|actual - expected| <= 1e-9 * magnitude + floor (elementwise), magnitude bounding the terms
    summed. Not compared where the reference or the magnitude is beyond float64."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    magnitude = np.broadcast_to(magnitude, expected.shape)
    exact = np.isfinite(expected) & np.isfinite(magnitude)
    if not exact.all():
        event(f"{what}: reference overflows")
    assert actual.shape == expected.shape, (
        f"{what}: shape {actual.shape}, expected {expected.shape}"
    )
    got, want = actual[exact], expected[exact]
    assert np.all(np.isfinite(got)), f"{what}: non-finite result where NumPy is finite"
    err = np.abs(got - want)
    bound = 1e-9 * magnitude[exact] + floor
    assert np.all(err <= bound), (
        f"{what}: max error {err.max():.3g}, allowed {bound[np.argmax(err - bound)]:.3g}"
    )


def product_close(actual: object, A: np.ndarray, b: np.ndarray, what: str) -> None:
    """actual = A @ b, with the magnitude |A| @ |b| and a floor for entries of A that underflowed
    (the library may not go through A, so its answer can be the more accurate one)."""
    with np.errstate(all="ignore"):
        close(
            actual,
            A @ b,
            np.abs(A) @ np.abs(b),
            what,
            floor=1e-300 + 1e-307 * float(np.abs(b).sum()),
        )


# ----------------------------------------------------------------------------- arguments at the boundary
DTYPES = ["float64"] * 8 + [
    "float32",
    "float16",
    "int64",
    "int32",
    "uint8",
    "bool",
    "object",
    "complex128",
    "str",
]
LAYOUTS = ["C", "C", "F", "strided", "reversed", "list"]
VALUES = ["plain"] * 6 + ["huge", "tiny", "nan", "inf", "-inf"]
MODERATE = ["plain"] * 6 + [
    "nan",
    "inf",
    "-inf",
]  # for an argument whose partner is already extreme


def cast(arr: np.ndarray, clean: np.ndarray, dtype: str) -> np.ndarray:
    """arr in dtype; integer dtypes get small integers from the clean values (no NaN in ints)."""
    with np.errstate(all="ignore"):
        if dtype in ("int64", "int32"):
            return (
                clean.astype(dtype)
                if np.array_equal(clean, np.round(clean))
                else np.round(3 * clean).astype(dtype)
            )
        if dtype == "uint8":
            return np.abs(np.round(3 * clean)).astype(np.uint8)
        if dtype == "bool":
            return clean > 0
        return arr.astype(dtype)


def layout(arr: np.ndarray, how: str) -> object:
    if how == "F":
        return np.asfortranarray(arr)
    if how == "strided" and arr.ndim:
        big = np.zeros(arr.shape[:-1] + (2 * arr.shape[-1],), dtype=arr.dtype)
        big[..., ::2] = arr
        return big[..., ::2]
    if how == "reversed":
        flip = (slice(None, None, -1),) * arr.ndim
        return arr[flip].copy()[flip]  # same values, negative strides
    if how == "list":
        return arr.tolist()
    return np.ascontiguousarray(arr)


@dataclass(frozen=True)
class Arg:
    """One argument as passed, its float64 conversion (None when bad), the error it calls for
    (a list of (phrase, class); empty when good) and whether its values were scaled to an extreme."""

    value: object
    f: np.ndarray | None
    bad: Bad
    extreme: bool


@st.composite
def argument(
    draw,
    clean: np.ndarray,
    name: str,
    wrong_shape: Callable[[np.ndarray], np.ndarray] | None = None,
    values: list[str] = VALUES,
    scale: float = 1e150,
) -> Arg:
    """One argument of a call, starting from valid float64 values ``clean``: maybe scale them by
    ``scale`` or 1 / ``scale``, or poison one entry with NaN/inf; maybe give it the wrong shape;
    cast to a dtype; lay out in memory. The error the library must raise follows its documented
    order of checks: dtype, then shape, then finite values."""
    how = draw(st.sampled_from(values))
    arr = np.array(clean, dtype=np.float64)
    if how == "huge":
        arr = arr * scale
    elif how == "tiny":
        arr = arr / scale
    elif how in ("nan", "inf", "-inf") and arr.size:
        arr.flat[draw(st.integers(0, arr.size - 1))] = float(how)
    reshaped = wrong_shape is not None and draw(st.integers(0, 11)) == 0
    if reshaped:
        arr, clean = wrong_shape(arr), wrong_shape(clean)
    value = layout(cast(arr, clean, draw(st.sampled_from(DTYPES))), draw(st.sampled_from(LAYOUTS)))
    seen = np.asarray(value)
    extreme = how in ("huge", "tiny")
    if seen.dtype.kind not in "fiu":
        return Arg(value, None, [(f"{name} has dtype", gb.DTypeError)], extreme)
    if reshaped:
        return Arg(value, None, [(name, gb.ShapeError)], extreme)
    converted = seen.astype(np.float64)
    if not np.all(np.isfinite(converted)):
        return Arg(value, None, [(f"{name} holds", gb.NonFiniteError)], extreme)
    return Arg(value, converted, [], extreme)


def theta_and_inputs(
    data, model: gb.Model, theta0: np.ndarray, X0: np.ndarray, x_shape
) -> tuple[Arg, Arg]:
    """theta and X; theta's extreme scale is 1e150 spread over the dense layers (so products along
    a path stay near 1e+-150), and at most one of the two is scaled: products beyond float64 are
    the business of tests/test_edge_cases.py."""
    per_layer = 1e150 ** (1.0 / max(1, len(model.dense_layers())))
    theta = data.draw(argument(theta0, "theta", shorter, scale=per_layer), "theta")
    X = data.draw(argument(X0, "X", x_shape, MODERATE if theta.extreme else VALUES), "X")
    return theta, X


def outcome(call: Callable[[], object], bad: Bad, may_overflow: bool = False) -> object | None:
    """The result of ``call``, or None after the error a bad argument calls for. Good arguments
    must be accepted; a bad one must raise a GradbasisError of its class naming it. Where the
    exact answer may be beyond float64 (``may_overflow``) a NonFiniteError is accepted too."""
    try:
        result = call()
    except gb.GradbasisError as err:
        if may_overflow and isinstance(err, gb.NonFiniteError):
            event("overflow reported")
            return None
        assert bad, f"{type(err).__name__} on good input: {err}"
        assert any(isinstance(err, cls) and phrase in str(err) for phrase, cls in bad), (
            f"{type(err).__name__}: {err}; expected one of {[(p, c.__name__) for p, c in bad]}"
        )
        event(f"rejected: {type(err).__name__}")
        return None
    assert not bad, f"accepted bad input, expected one of {[(p, c.__name__) for p, c in bad]}"
    event("accepted")
    return result


def overflows(*arrays: object) -> bool:
    return not all(np.all(np.isfinite(a)) for a in arrays if a is not None)


# ----------------------------------------------------------------------------- architectures
ACTIVATION = st.one_of(
    st.sampled_from(["identity", "relu", "tanh", "sigmoid", "softplus", "gelu", "leaky_relu"]),
    st.floats(0.0, 1.0).map(lambda s: f"leaky_relu({s:.3f})"),
)


@st.composite
def models(draw, d_y: int | None = None) -> gb.Model:
    kind = draw(st.sampled_from(["mlp", "mlp", "skip", "resnet-mlp", "resnet-preact", "basis"]))
    d_x = draw(st.integers(1, 4))
    d_y = draw(st.integers(1, 3)) if d_y is None else d_y
    widths = draw(st.lists(st.integers(1, 5), max_size=3))
    acts = [draw(ACTIVATION) for _ in widths]
    bias = draw(st.booleans())
    if kind == "mlp":
        return gb.MLP([d_x, *widths, d_y], acts, bias=bias)
    if kind == "skip":
        return gb.SkipMLP(
            [d_x, *widths, d_y],
            skip_from=draw(st.sets(st.integers(0, len(widths)))),
            activation=acts,
            bias=bias,
        )
    if kind == "resnet-mlp":
        return gb.ResNet(d_x, d_y, gb.MLP([d_x, *widths, draw(st.integers(1, 4))], acts, bias=bias))
    if kind == "resnet-preact":
        stack = gb.PreActResidualStack(
            d_x, draw(st.integers(1, 4)), draw(st.integers(1, 2)), draw(ACTIVATION), bias=bias
        )
        return gb.ResNet(d_x, d_y, stack)
    return gb.BasisModel(d_x, d_y)


@st.composite
def point(draw, model: gb.Model) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """Valid float64 theta and X (m = 1..6) for the model, and the generator that made them."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    theta = model.init(seed=rng) + 0.1 * rng.normal(size=model.num_params)
    return theta, rng.normal(size=(draw(st.integers(1, 6)), model.input_dim)), rng


def shorter(a: np.ndarray) -> np.ndarray:
    return a[:-1]


def extra_column(a: np.ndarray) -> np.ndarray:
    return np.hstack([a, a[:, :1]])


def no_rows(a: np.ndarray) -> np.ndarray:
    return a[:0]


# ----------------------------------------------------------------------------- model calls
@boundary_settings
@given(data=st.data())
def test_forward_and_kink_margin_match_numpy(data):
    model = data.draw(models(), "model")
    theta0, X0, _ = data.draw(point(model), "point")
    theta, X = theta_and_inputs(
        data, model, theta0, X0, data.draw(st.sampled_from([extra_column, no_rows]))
    )
    bad = theta.bad + X.bad
    # Every activation here is nondecreasing with |a(x)| <= a(|x|), so the network run on |theta|
    # and |X| bounds the magnitude of every term summed on the way to each output.
    magnitude = None if bad else forward_np(model, np.abs(theta.f), np.abs(X.f))
    f = outcome(lambda: model.forward(theta.value, X.value), bad, may_overflow=overflows(magnitude))
    margin = outcome(lambda: model.kink_margin(theta.value, X.value), bad)
    if f is None:
        return
    assert f.dtype == np.float64 and f.flags.c_contiguous
    close(f, forward_np(model, theta.f, X.f), magnitude, "forward")
    assert margin >= 0.0 and not np.isnan(margin)


@boundary_settings
@given(data=st.data())
def test_jacobian_jvp_vjp_agree_with_numpy_products(data):
    model = data.draw(models(), "model")
    theta0, X0, rng = data.draw(point(model), "point")
    theta, X = theta_and_inputs(data, model, theta0, X0, extra_column)
    v = data.draw(argument(rng.normal(size=model.num_params), "v", shorter), "v")
    U = data.draw(argument(rng.normal(size=(X0.shape[0], model.output_dim)), "U", shorter), "U")
    J = outcome(lambda: model.jacobian(theta.value, X.value), theta.bad + X.bad)
    Jv = outcome(lambda: model.jvp(theta.value, X.value, v.value), theta.bad + X.bad + v.bad)
    JtU = outcome(lambda: model.vjp(theta.value, X.value, U.value), theta.bad + X.bad + U.bad)
    if J is None:
        return
    assert J.shape == (X0.shape[0] * model.output_dim, model.num_params)
    if Jv is not None:
        product_close(Jv.ravel(), J, v.f, "jvp")
    if JtU is not None:
        product_close(JtU, J.T, U.f.ravel(), "vjp")
    product_close(forward_np(model, theta.f, X.f).ravel(), J, model.homogeneity(theta.f), "J g = f")


@boundary_settings
@given(data=st.data())
def test_gram_equals_the_jacobian_product(data):
    model = data.draw(models(), "model")
    theta0, X0, rng = data.draw(point(model), "point")
    theta, X = theta_and_inputs(data, model, theta0, X0, no_rows)
    X2 = None
    if data.draw(st.booleans(), "cross block"):
        X2 = data.draw(
            argument(
                rng.normal(size=(3, model.input_dim)),
                "X2",
                extra_column,
                MODERATE if theta.extreme else VALUES,
            ),
            "X2",
        )
    bad = theta.bad + X.bad + ([] if X2 is None else X2.bad)
    K = outcome(lambda: model.gram(theta.value, X.value, None if X2 is None else X2.value), bad)
    diag = outcome(lambda: model.gram_diagonal(theta.value, X.value), theta.bad + X.bad)
    if K is None:
        return
    J = model.jacobian(theta.f, X.f)
    J2 = J if X2 is None else model.jacobian(theta.f, X2.f)
    product_close(K, J, J2.T, "gram")
    with np.errstate(all="ignore"):
        close(diag, (J * J).sum(axis=1), (J * J).sum(axis=1), "gram_diagonal")
    if X2 is None:
        assert np.array_equal(K, K.T)


@boundary_settings
@given(data=st.data())
def test_memory_layout_gives_identical_results(data):
    """float64 inputs in any memory layout are copied to C order: results are bitwise identical."""
    model = data.draw(models(), "model")
    theta, X, _ = data.draw(point(model), "point")
    how_t, how_x = (
        data.draw(st.sampled_from(LAYOUTS), "theta layout"),
        data.draw(st.sampled_from(LAYOUTS), "X layout"),
    )
    t2, X2 = layout(theta, how_t), layout(X, how_x)
    assert np.array_equal(model.forward(t2, X2), model.forward(theta, X))
    assert np.array_equal(model.jacobian(t2, X2), model.jacobian(theta, X))
    assert np.array_equal(model.gram(t2, X2), model.gram(theta, X))


# ----------------------------------------------------------------------------- objective
LOSSES = {
    "squared": gb.SquaredLoss(),
    "cross_entropy": gb.CrossEntropyLoss(),
    "smoothed_hinge": gb.SmoothedHingeLoss(3.0),
}


def targets(loss: str, rng: np.random.Generator, m: int, d: int) -> np.ndarray:
    if loss == "squared":
        return rng.normal(size=(m, d))
    if loss == "cross_entropy":
        return (
            np.eye(d)[rng.integers(0, d, m)]
            if rng.random() < 0.5
            else rng.dirichlet(np.ones(d), size=m)
        )
    return rng.choice([-1.0, 1.0], size=(m, 1))


def label_errors(loss: str, Y: np.ndarray | None) -> Bad:
    """The documented label rules, applied to targets that passed the array checks."""
    if Y is None:
        return []
    if loss == "cross_entropy" and ((Y < 0).any() or (np.abs(Y.sum(axis=1) - 1.0) > 1e-9).any()):
        return [("cross-entropy targets", gb.InvalidLabelError)]
    if loss == "smoothed_hinge" and (np.abs(Y) != 1.0).any():
        return [("smoothed hinge labels", gb.InvalidLabelError)]
    return []


@boundary_settings
@given(data=st.data())
def test_objective_matches_numpy(data):
    loss = data.draw(st.sampled_from(sorted(LOSSES)), "loss")
    d_y = (
        1
        if loss == "smoothed_hinge"
        else data.draw(st.integers(2 if loss == "cross_entropy" else 1, 3), "d_y")
    )
    model = data.draw(models(d_y=d_y), "model")
    theta0, X0, rng = data.draw(point(model), "point")
    m = X0.shape[0]
    theta, X = theta_and_inputs(data, model, theta0, X0, extra_column)
    Y = data.draw(argument(targets(loss, rng, m, d_y), "Y", shorter, MODERATE), "Y")
    bad_y = Y.bad or label_errors(loss, Y.f)
    w0 = rng.uniform(0.1, 2.0, size=m)
    kind = data.draw(
        st.sampled_from(["default", "random", "random", "zero", "negative"]), "weights"
    )
    if kind in ("zero", "negative"):
        w0[rng.integers(m)] = 0.0 if kind == "zero" else -1.0
    w = (
        Arg(None, np.full(m, 1.0 / m), [], False)
        if kind == "default"
        else data.draw(argument(w0, "weights", shorter, MODERATE), "w")
    )
    bad_w = w.bad
    if w.f is not None and (w.f <= 0).any():  # zero, negative, or rounded to 0 by an integer dtype
        bad_w = [("weights must be positive", gb.InvalidWeightsError)]
    obj = outcome(
        lambda: gb.Objective(model, LOSSES[loss], X.value, Y.value, w.value), X.bad + bad_y + bad_w
    )
    if obj is None:
        return
    f = forward_np(model, theta.f, X.f) if not theta.bad else None
    per_sample, magnitude, dl, dl_scale = (
        loss_np(loss, 3.0, f, Y.f) if f is not None else (None,) * 4
    )
    with np.errstate(all="ignore"):
        may_overflow = f is not None and overflows(w.f @ magnitude, dl_scale)
    vg = outcome(lambda: obj.value_and_gradient(theta.value), theta.bad, may_overflow)
    if vg is None:
        return
    value, grad = vg
    if value == np.inf:  # the documented overflow answer: L = +inf, the gradient need not be finite
        assert may_overflow, "L = inf where NumPy's loss is finite"
        event("L overflows: +inf")
        return
    with np.errstate(all="ignore"):
        close(value, w.f @ per_sample, w.f @ magnitude, "L(theta)")
    J = model.jacobian(theta.f, X.f)
    with np.errstate(all="ignore"):
        u, u_scale = (w.f[:, None] * dl).ravel(), (w.f[:, None] * dl_scale).ravel()
        close(
            grad,
            J.T @ u,
            np.abs(J).T @ u_scale,
            "grad L = J^T u",
            floor=1e-300 + 1e-307 * float(u_scale.sum()),
        )
    a, b = rng.normal(size=model.num_params), rng.normal(size=model.num_params)
    Ha, Hb = obj.hessian_vector(theta.f, a), obj.hessian_vector(theta.f, b)
    with np.errstate(all="ignore"):
        scale = np.linalg.norm(a) * np.linalg.norm(Hb) + np.linalg.norm(b) * np.linalg.norm(Ha)
        if np.isfinite(scale):
            assert abs(a @ Hb - b @ Ha) <= 1e-8 * scale + 1e-300, (
                "Hessian-vector products are not symmetric"
            )
        else:
            event("hessian_vector: beyond float64")


# ----------------------------------------------------------------------------- induced minimum
@boundary_settings
@given(data=st.data())
def test_induced_minimum_is_bounded_and_exact_for_least_squares(data):
    loss = data.draw(st.sampled_from(sorted(LOSSES)), "loss")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), "seed"))
    m = data.draw(st.integers(1, 8), "m")
    d = (
        1
        if loss == "smoothed_hinge"
        else data.draw(st.integers(2 if loss == "cross_entropy" else 1, 3), "d")
    )
    p = data.draw(st.integers(1, 6), "p")
    B0 = rng.normal(size=(m * d, p))
    if p > 1 and data.draw(st.booleans(), "rank deficient"):
        B0 = B0[:, :1] @ rng.normal(size=(1, p))
    B = data.draw(argument(B0, "basis", shorter), "basis")
    Y = targets(loss, rng, m, d)
    w = rng.uniform(0.1, 2.0, size=m)
    res = outcome(lambda: gb.induced_minimum(B.value, LOSSES[loss], Y, w), B.bad)
    if res is None:
        return
    phi0 = float(w @ loss_np(loss, 3.0, np.zeros_like(Y), Y)[0])  # 0 is in every span
    slack = 1e-9 * (1.0 + phi0)
    assert np.isfinite(res.value) and not np.isnan(res.lower)
    assert -slack <= res.value <= phi0 + slack
    assert res.lower <= res.value + slack
    assert 0 <= res.rank <= min(B.f.shape)
    if loss == "squared":
        s = np.linalg.svd(B.f, compute_uv=False)
        if s[-1] > 1e-6 * s[0]:  # full column rank with a clear gap: the answer is least squares
            sw = np.sqrt(np.repeat(w, d))[:, None]
            coef = np.linalg.lstsq(sw * B.f, sw[:, 0] * Y.ravel(), rcond=None)[0]
            best = float(np.sum(np.repeat(w, d) * (B.f @ coef - Y.ravel()) ** 2))
            assert abs(res.value - best) <= 1e-8 * (1.0 + phi0)
            assert res.lower >= best - 1e-8 * (1.0 + phi0)


# ----------------------------------------------------------------------------- found by fuzzing
ONE = gb.MLP([3, 2, 2], "tanh")
ONE_THETA = ONE.init(seed=0)
ONE_X = np.ones((1, 3))


def reversed_rows(a: np.ndarray) -> np.ndarray:
    """Same values with a negative stride on the first axis; for one row NumPy flags the result
    C-contiguous although its stride is negative."""
    return np.asarray(a)[::-1]


def copied(a: np.ndarray) -> np.ndarray:
    return np.array(a)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda arrange: ONE.forward(ONE_THETA, arrange(ONE_X)), id="forward-X"),
        pytest.param(
            lambda arrange: gb.BasisModel(1, 1).forward(arrange(np.array([2.0])), [[1.0]]),
            id="forward-theta",
        ),
        pytest.param(lambda arrange: ONE.jacobian(ONE_THETA, arrange(ONE_X)), id="jacobian-X"),
        pytest.param(
            lambda arrange: ONE.vjp(ONE_THETA, ONE_X, arrange(np.ones((1, 2)))), id="vjp-U"
        ),
        pytest.param(
            lambda arrange: gb.Objective(ONE, "squared", arrange(ONE_X), [[0.5, 1.0]]).value(
                ONE_THETA
            ),
            id="objective-X",
        ),
        pytest.param(
            lambda arrange: gb.induced_minimum(arrange(np.ones((1, 2))), "squared", [[1.0]]).value,
            id="induced-basis",
        ),
        pytest.param(
            lambda arrange: (
                gb.induced_minimum(np.ones((2, 1)), "squared", arrange(np.ones((1, 2)))).value
            ),
            id="induced-Y",
        ),
    ],
)
def test_single_sample_with_a_negative_stride_is_accepted(call):
    """X[::-1] of a single sample (or theta[::-1] of one parameter) is a valid array: the result is
    the same as for a plain copy."""
    np.testing.assert_array_equal(call(reversed_rows), call(copied))


def test_induced_value_is_reached_where_the_infimum_is_at_infinity():
    """Cross-entropy over a rank-4 basis of 3 samples. Rows 2 and 3 (sample 1's two logits) are
    equal, so sample 1 costs log 2 whatever the coefficients, and the other two samples can be
    fitted ever better: the infimum is w_1 log 2, approached only as ||alpha|| -> inf. The result
    must bracket it, lower <= w_1 log 2 <= value, with value = Phi at the returned outputs, which
    lie in the span; and it must not claim the infimum is attained."""
    B = np.array(
        [
            [-1, -2, 0, 0, -1, -1],
            [1, 3, 0, 0, 2, 1],
            [1, 4, 0, 0, 3, 2],
            [1, 4, 0, 0, 3, 2],
            [4, 13, -1, -1, 10, 6],
            [-3, -10, 1, 1, -8, -4],
        ],
        dtype=float,
    )
    Y = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    w = np.array([1.0706888804864128, 1.530757394634138, 0.38105186799141744])
    infimum = w[1] * np.log(2.0)
    res = gb.induced_minimum(B, "cross_entropy", Y, w)
    assert res.lower <= infimum + 1e-12
    assert res.value >= infimum - 1e-12, f"value {res.value!r} is below the infimum {infimum!r}"
    assert res.lower <= res.value
    assert not res.attained
