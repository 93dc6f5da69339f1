"""The table of bad inputs: one row per (public entry point, bad input) and the error it gets.

Every row calls one entry point with one bad input and expects a GradbasisError subclass whose
message contains a phrase that names the problem; the few inputs that are converted or judged
rather than rejected (integer arrays, a user loss that is not convex) state their outcome and
check it. Rows marked ``open`` are inputs the library does not handle yet: their test is the
behaviour it should have, marked xfail (strict) with what happens today.

docs/bad_inputs.md is rendered from ROWS (and from the rows of tests/test_bad_input.py, listed in
COVERED_ELSEWHERE), and a test compares the two, so the doc and the tests cannot drift.
Regenerate the doc after changing a row: ``python tests/test_bad_input_table.py``.
"""

from __future__ import annotations

import enum
import io
import re
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import gradbasis as gb
from gradbasis import cli
from gradbasis.datasets import DataFileError, load_data_file

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"
OTHER_TEST = Path(__file__).resolve().with_name("test_bad_input.py")


# ----------------------------------------------------------------------------- small problem
M = gb.MLP([3, 4, 2], "tanh")  # 26 parameters
THETA = M.init(seed=0) + 0.1
RNG = np.random.default_rng(7)
X = RNG.normal(size=(5, 3))
Y = RNG.normal(size=(5, 2))
ONE_HOT = np.eye(2)[[0, 1, 0, 1, 1]]
OBJ = gb.Objective(M, "squared", X, Y)
RELU = gb.MLP([3, 4, 2], "relu")
RESNET = gb.ResNet(3, 2, gb.MLP([3, 4, 3], "tanh"))
STACK = gb.PreActResidualStack(3, hidden=4, num_blocks=1, activation="tanh")
S_DIRS = np.eye(M.num_params)[:2]  # two plain directions for the perturbable basis


def nan_at(arr: np.ndarray, index, value: float = np.nan) -> np.ndarray:
    out = np.array(arr, dtype=float)
    out[index] = value
    return out


class CommandFailed(Exception):
    """``gradbasis certify`` exited with a non-zero status; the message is what it printed."""


def certify(tmp: Path, *argv: str) -> int:
    """Run ``gradbasis certify --quiet ARGV`` in-process; raise CommandFailed on a non-zero exit."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            rc = cli.main(["certify", "--quiet", "--output", str(tmp / "report.json"), *argv])
        except SystemExit as exc:  # argparse rejects an option
            rc = exc.code
    if rc != 0:
        raise CommandFailed(f"exit status {rc}: {err.getvalue().strip()}")
    return rc


def write_npz(tmp: Path, **arrays) -> Path:
    path = tmp / "data.npz"
    np.savez(path, **arrays)
    return path


def write_text(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


class NonConvexLoss:
    """l(q) = -||q||^2 + ||q||^4 / 100: smooth, and concave near 0."""

    def value(self, Q, Y):
        r = (np.asarray(Q) ** 2).sum(axis=1)
        return -r + r**2 / 100

    def gradient(self, Q, Y):
        Q = np.asarray(Q)
        r = (Q**2).sum(axis=1, keepdims=True)
        return -2 * Q + 4 * r * Q / 100


class NaNLoss:
    """A user loss that returns NaN everywhere."""

    def value(self, Q, Y):
        return np.full(np.asarray(Q).shape[0], np.nan)

    def gradient(self, Q, Y):
        return np.full(np.asarray(Q).shape, np.nan)


class ConvexUserLoss:
    """The squared loss, as a user would write it."""

    def value(self, Q, Y):
        return ((np.asarray(Q) - Y) ** 2).sum(axis=1)

    def gradient(self, Q, Y):
        return 2 * (np.asarray(Q) - Y)


class ValueOnlyLoss:
    def value(self, Q, Y):
        return (np.asarray(Q) ** 2).sum(axis=1)


def assert_violated(result, phrase: str) -> None:
    assert result.verdict == gb.Verdict.VIOLATED, result
    assert phrase in result.reason, result.reason


def same_as_float(call: Callable[[object], np.ndarray], ints: np.ndarray) -> None:
    np.testing.assert_array_equal(call(ints), call(ints.astype(np.float64)))


# ----------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class Row:
    """One bad input to one entry point.

    ``expect``: the error is an instance of every class listed, and its message contains
    ``phrase``. Rows without ``expect`` are not errors: ``outcome`` says what happens and
    ``call`` asserts it. ``now`` is set while the library fails the row (what it does today).
    """

    entry: str
    bad: str
    call: Callable[[Path], object]
    expect: tuple[type, ...] = ()
    phrase: str = ""
    outcome: str = ""
    now: str | None = None

    @property
    def id(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.=+-]+", "-", f"{self.entry}:{self.bad}").strip("-")


ROWS: list[Row] = []


def row(entry, bad, call, expect=(), phrase="", *, outcome="", now=None) -> None:
    expect = expect if isinstance(expect, tuple) else (expect,)
    ROWS.append(Row(entry, bad, call, expect, phrase, outcome, now))


# Families of bad arrays. Each entry: key -> (description, value, error, phrase template).
def theta_family(n: int = M.num_params, name: str = "theta", good: np.ndarray = THETA):
    return {
        "short": (
            f"{name} of the wrong length ({n - 1} for {n} parameters)",
            good[:-1],
            gb.ShapeError,
            f"expected ({n},)",
        ),
        "2d": (f"{name} 2-D ({n}, 1)", good[:, None], gb.ShapeError, f"{name} has shape ({n}, 1)"),
        "scalar": (f"{name} a scalar", np.float64(1.0), gb.ShapeError, f"so expected ({n},)"),
        "nan": (
            f"{name} with a NaN",
            nan_at(good, 3),
            gb.NonFiniteError,
            f"{name} holds 1 NaN/inf value(s), the first at index (3,)",
        ),
        "inf": (
            f"{name} with +inf",
            nan_at(good, 5, np.inf),
            gb.NonFiniteError,
            f"{name} holds 1 NaN/inf",
        ),
        "complex": (
            f"{name} complex",
            good.astype(complex),
            gb.DTypeError,
            f"{name} has dtype complex128",
        ),
        "bool": (f"{name} bool", good > 0, gb.DTypeError, f"{name} has dtype bool"),
        "object": (
            f"{name} object array",
            good.astype(object),
            gb.DTypeError,
            f"{name} has dtype object",
        ),
        "str": (f"{name} strings", good.astype(str), gb.DTypeError, f"{name} has dtype <U"),
    }


def samples_family(d: int = 3, name: str = "X", good: np.ndarray = X):
    m = good.shape[0]
    return {
        "columns": (
            f"{name} with {d + 1} columns for {d}",
            np.hstack([good, good[:, :1]]),
            gb.ShapeError,
            f"{name} has {d + 1} columns; expected {d}",
        ),
        "1d": (f"{name} 1-D (one sample)", good[0], gb.ShapeError, "reshape(1, -1)"),
        "3d": (f"{name} 3-D", good[None], gb.ShapeError, f"{name} must be 2-D"),
        "empty": (
            f"{name} with no samples (m = 0)",
            good[:0],
            gb.ShapeError,
            f"{name} has no samples",
        ),
        "nan": (
            f"{name} with a NaN",
            nan_at(good, (1, 0)),
            gb.NonFiniteError,
            f"{name} holds 1 NaN/inf value(s), the first at index (1, 0)",
        ),
        "inf": (
            f"{name} with -inf",
            nan_at(good, (m - 1, d - 1), -np.inf),
            gb.NonFiniteError,
            f"index ({m - 1}, {d - 1})",
        ),
        "bool": (f"{name} bool", good > 0, gb.DTypeError, f"{name} has dtype bool"),
        "complex": (
            f"{name} complex",
            good.astype(complex),
            gb.DTypeError,
            f"{name} has dtype complex128",
        ),
        "object": (
            f"{name} object array",
            good.astype(object),
            gb.DTypeError,
            f"{name} has dtype object",
        ),
        "str": (f"{name} strings", good.astype(str), gb.DTypeError, f"{name} has dtype <U"),
    }


def add_family(
    entry: str, family: dict, call: Callable[[object], object], keys=None, skip=()
) -> None:
    for key, (bad, value, error, phrase) in family.items():
        if (keys is None or key in keys) and key not in skip:
            row(entry, bad, lambda _t, value=value: call(value), error, phrase)


# --- model methods: theta and X families on every method that takes them ---------------------
# MLP.forward's theta length, NaN and X columns/1-D/empty/NaN/complex/object rows are in test_bad_input.py.
add_family("Model.forward", theta_family(), lambda t: M.forward(t, X), skip=("short", "nan"))
add_family(
    "Model.forward",
    samples_family(),
    lambda x: M.forward(THETA, x),
    skip=("columns", "1d", "empty", "nan", "complex", "object"),
)
for name, method in [
    ("Model.jacobian", M.jacobian),
    ("Model.gram", M.gram),
    ("Model.gram_diagonal", M.gram_diagonal),
    ("Model.gram_trace", M.gram_trace),
    ("Model.kink_margin", M.kink_margin),
]:
    add_family(name, theta_family(), lambda t, method=method: method(t, X))
    add_family(name, samples_family(), lambda x, method=method: method(THETA, x))
add_family(
    "Model.node_values",
    theta_family(),
    lambda t: M.node_values(t, X, 1),
    keys=("short", "nan", "complex"),
)
add_family(
    "Model.node_values",
    samples_family(),
    lambda x: M.node_values(THETA, x, 1),
    keys=("columns", "empty", "inf", "bool"),
)
add_family(
    "Model.jvp",
    theta_family(),
    lambda t: M.jvp(t, X, THETA),
    keys=("short", "nan", "complex", "str"),
)
add_family(
    "Model.jvp",
    samples_family(),
    lambda x: M.jvp(THETA, x, THETA),
    keys=("columns", "1d", "empty", "nan", "bool", "object"),
)
add_family("Model.jvp", theta_family(name="v"), lambda v: M.jvp(THETA, X, v), skip=("short",))
add_family(
    "Model.vjp", theta_family(), lambda t: M.vjp(t, X, Y), keys=("short", "nan", "complex", "bool")
)
add_family(
    "Model.vjp",
    samples_family(),
    lambda x: M.vjp(THETA, x, Y),
    keys=("columns", "1d", "empty", "inf", "object"),
)
add_family("Model.vjp", samples_family(2, "U", Y), lambda u: M.vjp(THETA, X, u))
add_family("Model.homogeneity", theta_family(), lambda t: M.homogeneity(t))
add_family("Model.unflatten", theta_family(), lambda t: M.unflatten(t))
add_family(
    "Model.gram",
    samples_family(name="X2"),
    lambda x: M.gram(THETA, X, x),
    keys=("columns", "1d", "empty", "nan", "complex"),
)

row(
    "Model.jacobian",
    "out float32",
    lambda _: M.jacobian(THETA, X, out=np.empty((10, 26), np.float32)),
    gb.ShapeError,
    "float64 array of shape (10, 26)",
)
row(
    "Model.jacobian",
    "out read-only",
    lambda _: M.jacobian(THETA, X, out=np.broadcast_to(np.empty(26), (10, 26))),
    gb.ShapeError,
    "writeable",
)
row(
    "Model.jacobian",
    "out not an array (list)",
    lambda _: M.jacobian(THETA, X, out=[[0.0] * 26] * 10),
    gb.ShapeError,
    "out must be",
)
row(
    "Model.jacobian",
    "memory_budget NaN",
    lambda _: M.jacobian(THETA, X, memory_budget=float("nan")),
    gb.InvalidOptionError,
    "memory_budget",
)
row(
    "Model.jacobian",
    "memory_budget negative",
    lambda _: M.jacobian(THETA, X, memory_budget=-1),
    gb.MemoryBudgetError,
    "memory_budget",
)
row(
    "Model.gram",
    "memory_budget tiny (100 bytes)",
    lambda _: M.gram(THETA, X, memory_budget=100),
    gb.MemoryBudgetError,
    "the Gram matrix 10 x 10",
)
row(
    "Model.gram",
    "huge m (200000 samples: K would be 1.3 TB)",
    lambda _: M.gram(THETA, np.zeros((200_000, 3))),
    gb.MemoryBudgetError,
    "the Gram matrix 400000 x 400000",
)
row(
    "Model.gram",
    "out of the wrong shape",
    lambda _: M.gram(THETA, X, out=np.empty((10, 9))),
    gb.ShapeError,
    "shape (10, 10)",
)
row(
    "Model.gram",
    "weights naming an unknown block",
    lambda _: M.gram(THETA, X, weights={"W9": 1.0}),
    gb.UnknownNameError,
    "W9",
)
row(
    "Model.gram",
    "a negative block weight",
    lambda _: M.gram(THETA, X, weights={"W1": -1.0}),
    gb.InvalidOptionError,
    "'W1' must be a finite number >= 0",
)
row(
    "Model.gram",
    "a NaN block weight",
    lambda _: M.gram(THETA, X, weights={"b2": float("nan")}),
    gb.InvalidOptionError,
    "'b2'",
)
row(
    "Model.gram_diagonal",
    "a NaN block weight",
    lambda _: M.gram_diagonal(THETA, X, weights={"W2": np.nan}),
    gb.InvalidOptionError,
    "'W2'",
)
row(
    "Model.gram_trace",
    "weights naming an unknown block",
    lambda _: M.gram_trace(THETA, X, weights={"bias": 1.0}),
    gb.UnknownNameError,
    "bias",
)
row(
    "Model.forward",
    "huge m: a broadcast X of 10^16 samples (copy of 213 PiB)",
    lambda _: M.forward(THETA, np.broadcast_to(X[:1], (10**16, 3))),
    gb.MemoryBudgetError,
    "X",
)
row(
    "Model.forward",
    "integer X (int64)",
    lambda _: same_as_float(lambda x: M.forward(THETA, x), np.arange(15).reshape(5, 3) % 4),
    outcome="accepted: converted to float64, same result as the float input",
)
row(
    "Model.jacobian",
    "integer theta (int32)",
    lambda _: same_as_float(lambda t: M.jacobian(t, X), (np.arange(26) % 3).astype(np.int32)),
    outcome="accepted: converted to float64, same result as the float input",
)
row(
    "Model.forward",
    "n_threads = -1",
    lambda _: M.forward(THETA, X, n_threads=-1),
    (gb.GradbasisError, ValueError),
    "n_threads",
)
row(
    "Model.gram",
    "n_threads = 2.5",
    lambda _: M.gram(THETA, X, n_threads=2.5),
    (gb.GradbasisError, ValueError),
    "n_threads",
)
row(
    "Model.node_values",
    "node index out of range (99)",
    lambda _: M.node_values(THETA, X, 99),
    (gb.GradbasisError, ValueError),
    "node",
)
row(
    "Model.node_values",
    "node index True (a bool)",
    lambda _: M.node_values(THETA, X, True),
    (gb.GradbasisError, ValueError),
    "node",
)
row(
    "Model.flatten",
    "a block holding NaN",
    lambda _: M.flatten({**M.unflatten(THETA), "b2": np.array([0.0, np.nan])}),
    gb.NonFiniteError,
    "holds 1 NaN",
)
row(
    "Model.flatten",
    "a complex block",
    lambda _: M.flatten({**M.unflatten(THETA), "b1": np.zeros(4, complex)}),
    gb.DTypeError,
    "b1 has dtype complex128",
)
row(
    "Model.flatten",
    "an extra block name",
    lambda _: M.flatten({**M.unflatten(THETA), "W3": np.zeros(2)}),
    gb.ShapeError,
    "unknown ['W3']",
)
row(
    "Model.flatten",
    "a block of strings",
    lambda _: M.flatten({**M.unflatten(THETA), "b2": np.array(["a", "b"])}),
    gb.DTypeError,
    "b2 has dtype <U1",
)
row("Model.init", "seed = -1", lambda _: M.init(seed=-1), (gb.GradbasisError, ValueError), "seed")
row(
    "Model.init",
    "a model too large for memory (10^16 parameters)",
    lambda _: gb.MLP([10**8, 10**8, 1], "tanh").init(),
    gb.MemoryBudgetError,
    "parameters",
)
row(
    "Model.homogeneity",
    "PreActResidualStack (no block f is linear in)",
    lambda _: STACK.homogeneity(STACK.init()),
    (gb.GradbasisError, NotImplementedError),
    "Assumption 2",
)

# --- model constructors -------------------------------------------------------------------------
row(
    "MLP",
    "a negative layer size",
    lambda _: gb.MLP([3, -4, 2]),
    gb.ShapeError,
    "layer_sizes[1] must be a positive integer",
)
row("MLP", "a float layer size", lambda _: gb.MLP([3, 4.5, 2]), gb.ShapeError, "layer_sizes[1]")
row("MLP", "a bool layer size", lambda _: gb.MLP([True, 4, 2]), gb.ShapeError, "layer_sizes[0]")
row(
    "MLP",
    "layer_sizes a string",
    lambda _: gb.MLP("342"),
    gb.ShapeError,
    "layer_sizes must be a sequence",
)
row(
    "MLP",
    "activation not a string (3)",
    lambda _: gb.MLP([3, 4, 2], 3),
    gb.UnknownNameError,
    "activation must be a name",
)
row(
    "MLP",
    "unreadable leaky_relu slope",
    lambda _: gb.MLP([3, 4, 2], "leaky_relu(abc)"),
    gb.UnknownNameError,
    "cannot read the slope",
)
row(
    "MLP",
    "3 activation names for 1 hidden layer",
    lambda _: gb.MLP([3, 4, 2], ["tanh"] * 3),
    (gb.GradbasisError, ValueError),
    "3 activations for 1 hidden",
)
row(
    "MLP",
    "negative_slope NaN",
    lambda _: gb.MLP([3, 4, 2], "leaky_relu", negative_slope=float("nan")),
    (gb.GradbasisError, ValueError),
    "negative_slope",
)
row(
    "MLP",
    "Activation('swish') built directly",
    lambda _: gb.MLP([3, 4, 2], gb.Activation("swish")),
    gb.UnknownNameError,
    "swish",
)
row(
    "MLP",
    "Activation('leaky_relu', nan) built directly",
    lambda _: gb.MLP([3, 4, 2], gb.Activation("leaky_relu", float("nan"))).forward(THETA, X),
    gb.InvalidOptionError,
    "negative_slope",
)
row(
    "SkipMLP",
    "skip_from = [-1]",
    lambda _: gb.SkipMLP([3, 4, 2], skip_from=[-1]),
    (gb.GradbasisError, ValueError),
    "skip_from",
)
row(
    "SkipMLP",
    "unknown activation",
    lambda _: gb.SkipMLP([3, 4, 2], activation="swish"),
    gb.UnknownNameError,
    "swish",
)
row(
    "SkipMLP", "a zero layer size", lambda _: gb.SkipMLP([3, 0, 2]), gb.ShapeError, "layer_sizes[1]"
)
row(
    "ResNet",
    "residual not a model (a string)",
    lambda _: gb.ResNet(3, 2, "mlp"),
    (gb.GradbasisError, TypeError),
    "residual must be",
)
row(
    "ResNet",
    "residual input 4 for input_dim 3",
    lambda _: gb.ResNet(3, 2, gb.MLP([4, 4, 3])),
    (gb.GradbasisError, ValueError),
    "input_dim",
)
row(
    "ResNet",
    "output_dim 0",
    lambda _: gb.ResNet(3, 0, gb.MLP([3, 4, 3])),
    gb.ShapeError,
    "output_dim must be a positive integer",
)
row(
    "BasisModel",
    "num_features 0",
    lambda _: gb.BasisModel(0, 2),
    gb.ShapeError,
    "num_features must be a positive integer",
)
row(
    "BasisModel",
    "output_dim a string",
    lambda _: gb.BasisModel(3, "2"),
    gb.ShapeError,
    "output_dim",
)
row(
    "PreActResidualStack",
    "hidden 0",
    lambda _: gb.PreActResidualStack(3, 0),
    gb.ShapeError,
    "hidden must be a positive integer",
)
row(
    "PreActResidualStack",
    "num_blocks 2.5",
    lambda _: gb.PreActResidualStack(3, 4, 2.5),
    gb.ShapeError,
    "num_blocks",
)
row(
    "PreActResidualStack",
    "unknown activation",
    lambda _: gb.PreActResidualStack(3, 4, activation="mish"),
    gb.UnknownNameError,
    "mish",
)

# --- losses ---------------------------------------------------------------------------------------
SQ, CE, HINGE = gb.SquaredLoss(), gb.CrossEntropyLoss(), gb.SmoothedHingeLoss()
PM1 = np.array([[1.0], [-1.0], [1.0], [1.0], [-1.0]])
row(
    "get_loss",
    "unknown name 'huber2'",
    lambda _: gb.get_loss("huber2"),
    gb.UnknownNameError,
    "unknown loss 'huber2'",
)
row(
    "get_loss",
    "not a name (None)",
    lambda _: gb.get_loss(None),
    gb.UnknownNameError,
    "unknown loss None",
)
row(
    "SmoothedHingeLoss",
    "p = NaN",
    lambda _: gb.SmoothedHingeLoss(p=float("nan")),
    (gb.GradbasisError, ValueError),
    "p >= 2",
)
for method in ("value", "gradient", "hessian", "conjugate"):
    entry = f"Loss.{method}"
    fn = getattr(SQ, method)
    qname = "S" if method == "conjugate" else "Q"
    add_family(
        entry,
        samples_family(2, qname, Y),
        lambda q, fn=fn: fn(q, Y),
        keys=("columns", "empty", "nan", "complex"),
    )
    add_family(
        entry, samples_family(2, "Y", Y), lambda y, fn=fn: fn(Y, y), keys=("empty", "inf", "object")
    )
    row(
        entry,
        f"{qname} with 4 rows for 5 targets",
        lambda _, fn=fn: fn(Y[:4], Y),
        gb.ShapeError,
        f"{qname} has 4 rows; expected 5",
    )
row(
    "Loss.value",
    "cross-entropy targets not summing to 1",
    lambda _: CE.value(Y, ONE_HOT * 0.5),
    gb.InvalidLabelError,
    "sums to 0.5",
)
row(
    "Loss.gradient",
    "cross-entropy with one class (d_y = 1)",
    lambda _: CE.gradient(Y[:, :1], ONE_HOT[:, :1]),
    gb.InvalidLabelError,
    "d_y >= 2",
)
row(
    "Loss.hessian",
    "smoothed hinge label 0",
    lambda _: HINGE.hessian(PM1, nan_at(PM1, (2, 0), 0.0)),
    gb.InvalidLabelError,
    "Y[2] = 0.0",
)
row(
    "Loss.conjugate",
    "smoothed hinge with 2 outputs",
    lambda _: HINGE.conjugate(Y, ONE_HOT),
    gb.InvalidLabelError,
    "one output (d_y = 1)",
)
row(
    "Loss.conjugate",
    "S outside the conjugate's domain",
    lambda _: (lambda c: np.testing.assert_array_equal(c, np.inf))(
        CE.conjugate(np.full((5, 2), 3.0), ONE_HOT)
    ),
    outcome="not an error: +inf, as documented (l* is +inf outside its domain)",
)
row(
    "Loss.check_targets",
    "Y with 3 columns for output_dim 2",
    lambda _: SQ.check_targets(np.zeros((5, 3)), output_dim=2),
    gb.ShapeError,
    "Y has 3 columns; expected 2",
)
row(
    "Loss.check_targets",
    "Y with 4 rows for num_samples 5",
    lambda _: SQ.check_targets(Y[:4], num_samples=5),
    gb.ShapeError,
    "Y has 4 rows; expected 5",
)
row(
    "Loss.check_targets",
    "cross-entropy targets with NaN",
    lambda _: CE.check_targets(nan_at(ONE_HOT, (0, 1))),
    gb.NonFiniteError,
    "Y holds 1 NaN",
)
row(
    "Loss.check_targets",
    "Y 1-D for 2 outputs",
    lambda _: SQ.check_targets(Y[:, 0], output_dim=2),
    gb.ShapeError,
    "Y must be 2-D",
)
row(
    "Loss.check_targets",
    "cross-entropy targets bool",
    lambda _: CE.check_targets(ONE_HOT > 0),
    gb.DTypeError,
    "Y has dtype bool",
)

# --- Objective --------------------------------------------------------------------------------------
row(
    "Objective",
    "model not a gradbasis model",
    lambda _: gb.Objective("mlp", "squared", X, Y),
    (gb.GradbasisError, TypeError),
    "model must be a gradbasis model",
)
row(
    "Objective",
    "a user loss object",
    lambda _: gb.Objective(M, NonConvexLoss(), X, Y),
    gb.UnknownNameError,
    "unknown loss",
)
add_family(
    "Objective",
    samples_family(),
    lambda x: gb.Objective(M, "squared", x, Y),
    keys=("columns", "empty", "inf", "bool", "str"),
)
add_family(
    "Objective",
    samples_family(2, "Y", Y),
    lambda y: gb.Objective(M, "squared", X, y),
    keys=("columns", "3d", "complex", "object"),
)
row(
    "Objective",
    "Y with 3 columns for 2 outputs",
    lambda _: gb.Objective(M, "squared", X, np.zeros((5, 3))),
    gb.ShapeError,
    "Y has 3 columns; expected 2",
)
row(
    "Objective",
    "cross-entropy targets with NaN",
    lambda _: gb.Objective(M, "cross_entropy", X, nan_at(ONE_HOT, (3, 0))),
    gb.NonFiniteError,
    "Y holds 1 NaN",
)
row(
    "Objective",
    "cross-entropy with one output",
    lambda _: gb.Objective(gb.MLP([3, 4, 1]), "cross_entropy", X, np.ones((5, 1))),
    gb.InvalidLabelError,
    "d_y >= 2",
)
row(
    "Objective",
    "smoothed hinge label 2",
    lambda _: gb.Objective(gb.MLP([3, 4, 1]), "smoothed_hinge", X, nan_at(PM1, (4, 0), 2.0)),
    gb.InvalidLabelError,
    "Y[4] = 2.0",
)
row(
    "Objective",
    "weights negative",
    lambda _: gb.Objective(M, "squared", X, Y, -np.ones(5)),
    gb.InvalidWeightsError,
    "weights[0] = -1.0",
)
row(
    "Objective",
    "weights NaN",
    lambda _: gb.Objective(M, "squared", X, Y, nan_at(np.ones(5), 1)),
    gb.NonFiniteError,
    "weights holds 1 NaN",
)
row(
    "Objective",
    "weights +inf",
    lambda _: gb.Objective(M, "squared", X, Y, nan_at(np.ones(5), 2, np.inf)),
    gb.NonFiniteError,
    "weights holds 1 NaN/inf",
)
row(
    "Objective",
    "weights 2-D (5, 1)",
    lambda _: gb.Objective(M, "squared", X, Y, np.ones((5, 1))),
    gb.ShapeError,
    "weights has shape (5, 1)",
)
row(
    "Objective",
    "weights bool",
    lambda _: gb.Objective(M, "squared", X, Y, np.ones(5, bool)),
    gb.DTypeError,
    "weights has dtype bool",
)
row(
    "Objective",
    "n_threads = 0",
    lambda _: gb.Objective(M, "squared", X, Y, n_threads=0),
    (gb.GradbasisError, ValueError),
    "n_threads",
)
for method in ("value", "value_and_gradient", "gradient", "residual_duals"):
    add_family(
        f"Objective.{method}",
        theta_family(),
        lambda t, method=method: getattr(OBJ, method)(t),
        keys=("short", "nan", "complex", "bool"),
    )
add_family(
    "Objective.hessian_vector",
    theta_family(),
    lambda t: OBJ.hessian_vector(t, THETA),
    keys=("short", "nan", "object"),
)
add_family(
    "Objective.hessian_vector",
    theta_family(name="v"),
    lambda v: OBJ.hessian_vector(THETA, v),
    keys=("nan", "inf", "complex", "2d"),
)

# --- induced_minimum ---------------------------------------------------------------------------------
J = M.jacobian(THETA, X)
add_family(
    "induced_minimum",
    samples_family(26, "basis", J),
    lambda b: gb.induced_minimum(b, "squared", Y),
    keys=("nan", "inf", "complex", "bool", "object", "str"),
)
row(
    "induced_minimum",
    "basis with 9 rows for m*d_y = 10",
    lambda _: gb.induced_minimum(J[:9], "squared", Y),
    gb.ShapeError,
    "m*d_y = 10 rows",
)
row(
    "induced_minimum",
    "basis 1-D",
    lambda _: gb.induced_minimum(J[:, 0], "squared", Y),
    gb.ShapeError,
    "basis must be 2-D",
)
row(
    "induced_minimum",
    "basis with no columns",
    lambda _: gb.induced_minimum(J[:, :0], "squared", Y),
    gb.ShapeError,
    "basis has no columns",
)
row(
    "induced_minimum",
    "empty data (m = 0)",
    lambda _: gb.induced_minimum(J[:0], "squared", Y[:0]),
    gb.ShapeError,
    "Y has no samples",
)
row(
    "induced_minimum",
    "unknown loss",
    lambda _: gb.induced_minimum(J, "hinge", Y),
    gb.UnknownNameError,
    "unknown loss 'hinge'",
)
row(
    "induced_minimum",
    "cross-entropy targets negative",
    lambda _: gb.induced_minimum(J, "cross_entropy", ONE_HOT - 0.5),
    gb.InvalidLabelError,
    "negative entry",
)
row(
    "induced_minimum",
    "weights zero",
    lambda _: gb.induced_minimum(J, "squared", Y, np.zeros(5)),
    gb.InvalidWeightsError,
    "weights must be positive",
)
row(
    "induced_minimum",
    "weights of the wrong length",
    lambda _: gb.induced_minimum(J, "squared", Y, np.ones(4)),
    gb.ShapeError,
    "weights has shape (4,)",
)
row(
    "induced_minimum",
    "rank_tol = 1",
    lambda _: gb.induced_minimum(J, "squared", Y, rank_tol=1.0),
    gb.InvalidOptionError,
    "rank_tol must be a relative cut in [0, 1)",
)
row(
    "induced_minimum",
    "rank_tol = -1e-3",
    lambda _: gb.induced_minimum(J, "squared", Y, rank_tol=-1e-3),
    gb.InvalidOptionError,
    "rank_tol",
)
row(
    "induced_minimum",
    "rank_tol NaN",
    lambda _: gb.induced_minimum(J, "squared", Y, rank_tol=float("nan")),
    gb.InvalidOptionError,
    "rank_tol",
)
row(
    "induced_minimum",
    "a cut of 2",
    lambda _: gb.induced_minimum(J, "squared", Y, cuts=[1e-6, 2.0]),
    gb.InvalidOptionError,
    "cuts must be a relative cut",
)
row(
    "induced_minimum",
    "tol = 0",
    lambda _: gb.induced_minimum(J, "squared", Y, tol=0.0),
    gb.InvalidOptionError,
    "tol must lie in (0, 1)",
)
row(
    "induced_minimum",
    "tol NaN",
    lambda _: gb.induced_minimum(J, "squared", Y, tol=float("nan")),
    gb.InvalidOptionError,
    "tol must lie in (0, 1)",
)
row(
    "induced_minimum",
    "max_iter = 0",
    lambda _: gb.induced_minimum(J, "squared", Y, max_iter=0),
    gb.InvalidOptionError,
    "max_iter must be positive",
)

# --- strategies ---------------------------------------------------------------------------------------
row(
    "gradient_basis_minimum",
    "unknown strategy",
    lambda _: gb.gradient_basis_minimum(OBJ, THETA, strategy="sparse"),
    gb.UnknownNameError,
    "unknown strategy 'sparse'",
)
row(
    "gradient_basis_minimum",
    "memory_budget tiny, strategy auto",
    lambda _: gb.gradient_basis_minimum(OBJ, THETA, memory_budget=10),
    gb.MemoryBudgetError,
    "no strategy fits",
)
row(
    "gradient_basis_minimum",
    "memory_budget tiny, strategy dense",
    lambda _: gb.gradient_basis_minimum(OBJ, THETA, strategy="dense", memory_budget=10),
    gb.MemoryBudgetError,
    "strategy 'dense' does not fit",
)
row(
    "gradient_basis_minimum",
    "memory_budget NaN",
    lambda _: gb.gradient_basis_minimum(OBJ, THETA, memory_budget=float("nan")),
    gb.InvalidOptionError,
    "memory_budget",
)
add_family(
    "gradient_basis_minimum",
    theta_family(),
    lambda t: gb.gradient_basis_minimum(OBJ, t),
    keys=("short", "nan", "complex"),
)
row(
    "gradient_basis_minimum",
    "rank_tol = 2, strategy dense",
    lambda _: gb.gradient_basis_minimum(OBJ, THETA, strategy="dense", rank_tol=2.0),
    gb.InvalidOptionError,
    "rank_tol",
)
row(
    "gradient_basis_minimum",
    "rank_tol = 2, strategy gram",
    lambda _: gb.gradient_basis_minimum(OBJ, THETA, strategy="gram", rank_tol=2.0),
    gb.InvalidOptionError,
    "rank_tol",
)
row(
    "gradient_basis_minimum",
    "tol = -1, strategy matrix_free",
    lambda _: gb.gradient_basis_minimum(OBJ, THETA, strategy="matrix_free", tol=-1.0),
    gb.InvalidOptionError,
    "tol",
)
row(
    "gradient_basis_minimum",
    "a cut of NaN, strategy gram",
    lambda _: gb.gradient_basis_minimum(OBJ, THETA, strategy="gram", cuts=[float("nan")]),
    gb.InvalidOptionError,
    "cuts",
)
row(
    "gradient_basis_minimum",
    "obj not an Objective",
    lambda _: gb.gradient_basis_minimum((M, "squared", X, Y), THETA),
    (gb.GradbasisError, TypeError),
    "Objective",
)
row(
    "choose_strategy",
    "memory_budget 0",
    lambda _: gb.choose_strategy(OBJ, 0),
    gb.MemoryBudgetError,
    "no strategy fits",
)
row(
    "choose_strategy",
    "obj not an Objective",
    lambda _: gb.choose_strategy(M),
    (gb.GradbasisError, TypeError),
    "Objective",
)
row(
    "memory_estimate",
    "memory_budget a string",
    lambda _: gb.memory_estimate(OBJ, "8GB"),
    gb.InvalidOptionError,
    "memory_budget",
)

# --- checks of the paper ------------------------------------------------------------------------------
row(
    "assumption1",
    "a user loss that is not convex",
    lambda _: assert_violated(gb.assumption1(NonConvexLoss()), "midpoint convexity fails"),
    outcome="verdict `violated`: 'user loss is not convex/differentiable: midpoint convexity fails ...'",
)
row(
    "assumption1",
    "a user loss returning NaN",
    lambda _: gb.assumption1(NaNLoss()),
    gb.NonFiniteError,
    "NaN",
)
row(
    "assumption1",
    "a user loss without gradient()",
    lambda _: gb.assumption1(ValueOnlyLoss()),
    (gb.GradbasisError, TypeError),
    "gradient",
)
row(
    "assumption1",
    "probes = 0",
    lambda _: gb.assumption1(NonConvexLoss(), probes=0),
    gb.InvalidOptionError,
    "probes",
)
row(
    "assumption1",
    "tol = -1",
    lambda _: gb.assumption1(ConvexUserLoss(), tol=-1.0),
    gb.InvalidOptionError,
    "tol",
)
row(
    "assumption2",
    "tol NaN",
    lambda _: gb.assumption2(M, THETA, X, tol=float("nan")),
    gb.InvalidOptionError,
    "tol",
)
add_family("assumption2", theta_family(), lambda t: gb.assumption2(M, t, X), keys=("short", "nan"))
add_family(
    "assumption2",
    samples_family(),
    lambda x: gb.assumption2(M, THETA, x),
    keys=("columns", "empty", "inf"),
)
row(
    "assumption2",
    "model not a gradbasis model",
    lambda _: gb.assumption2("mlp", THETA, X),
    (gb.GradbasisError, TypeError),
    "model",
)
row("lemma2", "tol = -1", lambda _: gb.lemma2(OBJ, THETA, tol=-1.0), gb.InvalidOptionError, "tol")
add_family("lemma2", theta_family(), lambda t: gb.lemma2(OBJ, t), keys=("short", "inf"))
row(
    "classify_point",
    "grad_tol NaN",
    lambda _: gb.classify_point(OBJ, THETA, grad_tol=float("nan")),
    gb.InvalidOptionError,
    "grad_tol",
)
row(
    "classify_point",
    "curvature_tol = -1",
    lambda _: gb.classify_point(OBJ, THETA, curvature_tol=-1.0),
    gb.InvalidOptionError,
    "curvature_tol",
)
add_family(
    "classify_point",
    theta_family(),
    lambda t: gb.classify_point(OBJ, t),
    keys=("short", "nan", "str"),
)
row(
    "classify_point",
    "obj not an Objective",
    lambda _: gb.classify_point(M, THETA),
    (gb.GradbasisError, TypeError),
    "Objective",
)
row(
    "theorem1",
    "rtol = -1",
    lambda _: gb.theorem1(OBJ, THETA, rtol=-1.0),
    gb.InvalidOptionError,
    "rtol",
)
row(
    "theorem1",
    "rtol NaN",
    lambda _: gb.theorem1(OBJ, THETA, rtol=float("nan")),
    gb.InvalidOptionError,
    "rtol",
)
row(
    "theorem1",
    "grad_tol NaN",
    lambda _: gb.theorem1(OBJ, THETA, grad_tol=float("nan")),
    gb.InvalidOptionError,
    "grad_tol",
)
row(
    "theorem1",
    "rank_tol = 1.5",
    lambda _: gb.theorem1(OBJ, THETA, rank_tol=1.5),
    gb.InvalidOptionError,
    "rank_tol must be a relative cut",
)
row(
    "theorem1",
    "cuts with -1",
    lambda _: gb.theorem1(OBJ, THETA, cuts=[-1.0]),
    gb.InvalidOptionError,
    "cuts",
)
row(
    "theorem1",
    "jacobian of the wrong shape",
    lambda _: gb.theorem1(OBJ, THETA, jacobian=J[:, :5].T),
    gb.ShapeError,
    "jacobian",
)
row(
    "theorem1",
    "jacobian with NaN",
    lambda _: gb.theorem1(OBJ, THETA, jacobian=nan_at(J, (0, 0))),
    gb.NonFiniteError,
    "jacobian",
)
row(
    "theorem1",
    "unknown strategy",
    lambda _: gb.theorem1(OBJ, THETA, strategy="fast"),
    gb.UnknownNameError,
    "unknown strategy 'fast'",
)
row(
    "theorem1",
    "memory_budget tiny (dense)",
    lambda _: gb.theorem1(OBJ, THETA, memory_budget=16),
    gb.MemoryBudgetError,
    "dense Jacobian 10 x 26",
)
row(
    "theorem1",
    "memory_budget tiny (auto)",
    lambda _: gb.theorem1(OBJ, THETA, strategy="auto", memory_budget=16),
    gb.MemoryBudgetError,
    "no strategy fits",
)
add_family("theorem1", theta_family(), lambda t: gb.theorem1(OBJ, t), keys=("short", "nan", "bool"))
row(
    "theorem1",
    "a model without Assumption 2 (PreActResidualStack)",
    lambda _: gb.theorem1(gb.Objective(STACK, "squared", X, Y[:, :1].repeat(3, 1)), STACK.init()),
    (gb.GradbasisError, NotImplementedError),
    "Assumption 2",
)
row(
    "representation_bound",
    "rtol = -1",
    lambda _: gb.representation_bound(OBJ, THETA, rtol=-1.0),
    gb.InvalidOptionError,
    "rtol",
)
add_family(
    "representation_bound",
    theta_family(),
    lambda t: gb.representation_bound(OBJ, t),
    keys=("short", "nan"),
)
row(
    "representation_bound",
    "PreActResidualStack model",
    lambda _: gb.representation_bound(
        gb.Objective(STACK, "squared", X, Y[:, :1].repeat(3, 1)), STACK.init()
    ),
    (gb.GradbasisError, NotImplementedError),
    "Assumption 2",
)

# --- local minima: perturbations, perturbable basis, Theorems 2-4 --------------------------------------
PD = gb.perturbation_directions
row(
    "perturbation_directions",
    "eps = 0",
    lambda _: PD(M, THETA, X, eps=0.0),
    gb.InvalidOptionError,
    "eps must be a positive finite step",
)
row(
    "perturbation_directions",
    "eps = -0.1",
    lambda _: PD(M, THETA, X, eps=-0.1),
    gb.InvalidOptionError,
    "eps must be a positive",
)
row(
    "perturbation_directions",
    "eps NaN",
    lambda _: PD(M, THETA, X, eps=float("nan")),
    gb.InvalidOptionError,
    "eps must be",
)
row(
    "perturbation_directions",
    "eps +inf",
    lambda _: PD(M, THETA, X, eps=float("inf")),
    gb.InvalidOptionError,
    "eps must be",
)
row(
    "perturbation_directions",
    "unknown kind",
    lambda _: PD(M, THETA, X, kinds=["null"]),
    gb.UnknownNameError,
    "['null']",
)
row(
    "perturbation_directions",
    "kinds a string",
    lambda _: PD(M, THETA, X, kinds="layer_null"),
    gb.UnknownNameError,
    "unknown perturbation kinds",
)
row(
    "perturbation_directions",
    "budget = -1",
    lambda _: PD(M, THETA, X, budget=-1),
    gb.InvalidOptionError,
    "budget must be a non-negative integer",
)
row(
    "perturbation_directions",
    "budget = 2.5",
    lambda _: PD(M, THETA, X, budget=2.5),
    gb.InvalidOptionError,
    "budget",
)
row(
    "perturbation_directions",
    "combinations = -3",
    lambda _: PD(M, THETA, X, combinations=-3),
    gb.InvalidOptionError,
    "combinations",
)
row(
    "perturbation_directions",
    "margin NaN",
    lambda _: PD(M, THETA, X, margin=float("nan")),
    gb.InvalidOptionError,
    "margin must be finite",
)
row(
    "perturbation_directions",
    "tol = -1",
    lambda _: PD(M, THETA, X, tol=-1.0),
    gb.InvalidOptionError,
    "tol must be finite and >= 0",
)
row(
    "perturbation_directions",
    "null_rtol NaN",
    lambda _: PD(M, THETA, X, null_rtol=float("nan")),
    gb.InvalidOptionError,
    "null_rtol",
)
row(
    "perturbation_directions",
    "null_rtol = 2",
    lambda _: PD(M, THETA, X, null_rtol=2.0),
    gb.InvalidOptionError,
    "null_rtol",
)
add_family(
    "perturbation_directions",
    theta_family(),
    lambda t: PD(M, t, X),
    keys=("short", "nan", "complex"),
)
add_family(
    "perturbation_directions",
    samples_family(),
    lambda x: PD(M, THETA, x),
    keys=("columns", "empty", "nan"),
)
PB = gb.perturbable_basis
row(
    "perturbable_basis",
    "S of the wrong width",
    lambda _: PB(M, THETA, X, S_DIRS[:, :5], 1e-2),
    gb.ShapeError,
    "S must be (k, num_params = 26)",
)
row(
    "perturbable_basis",
    "S 1-D",
    lambda _: PB(M, THETA, X, S_DIRS[0], 1e-2),
    gb.ShapeError,
    "S must be",
)
row(
    "perturbable_basis",
    "S with NaN",
    lambda _: PB(M, THETA, X, nan_at(S_DIRS, (1, 1)), 1e-2),
    gb.NonFiniteError,
    "S holds",
)
row(
    "perturbable_basis",
    "S complex",
    lambda _: PB(M, THETA, X, S_DIRS.astype(complex), 1e-2),
    gb.DTypeError,
    "S",
)
row(
    "perturbable_basis",
    "S of strings",
    lambda _: PB(M, THETA, X, S_DIRS.astype(str), 1e-2),
    gb.DTypeError,
    "S",
)
row(
    "perturbable_basis",
    "eps missing for a plain array S",
    lambda _: PB(M, THETA, X, S_DIRS),
    gb.InvalidOptionError,
    "eps is required",
)
row(
    "perturbable_basis",
    "eps = 0",
    lambda _: PB(M, THETA, X, S_DIRS, 0.0),
    gb.InvalidOptionError,
    "eps must be a positive finite step",
)
row(
    "perturbable_basis",
    "batch = 0",
    lambda _: PB(M, THETA, X, S_DIRS, 1e-2, batch=0),
    gb.InvalidOptionError,
    "batch must be a positive integer",
)
row(
    "perturbable_basis",
    "unknown strategy",
    lambda _: PB(M, THETA, X, S_DIRS, 1e-2, strategy="auto"),
    gb.UnknownNameError,
    "'dense' or 'gram'",
)
row(
    "perturbable_basis",
    "rank_tol = 1",
    lambda _: PB(M, THETA, X, S_DIRS, 1e-2, rank_tol=1.0),
    gb.InvalidOptionError,
    "rank_tol must be a relative cut",
)
row(
    "perturbable_basis",
    "memory_budget tiny",
    lambda _: PB(M, THETA, X, S_DIRS, 1e-2, memory_budget=64),
    gb.MemoryBudgetError,
    "the perturbable basis",
)
row(
    "perturbable_basis",
    "memory_budget tiny (gram)",
    lambda _: PB(M, THETA, X, S_DIRS, 1e-2, strategy="gram", memory_budget=64),
    gb.MemoryBudgetError,
    "Gram matrix",
)
add_family(
    "perturbable_basis",
    samples_family(),
    lambda x: PB(M, THETA, x, S_DIRS, 1e-2),
    keys=("columns", "empty", "inf"),
)
row(
    "lemma1",
    "S2 of the wrong width",
    lambda _: gb.lemma1(M, THETA, X, S_DIRS, S_DIRS[:, :3], 1e-2),
    gb.ShapeError,
    "num_params = 26",
)
row(
    "lemma1",
    "eps = 0",
    lambda _: gb.lemma1(M, THETA, X, S_DIRS, S_DIRS, 0.0),
    gb.InvalidOptionError,
    "eps must be a positive",
)
row(
    "lemma1",
    "rank_tol = 1",
    lambda _: gb.lemma1(M, THETA, X, S_DIRS, S_DIRS, 1e-2, rank_tol=1.0),
    gb.InvalidOptionError,
    "rank_tol",
)
row(
    "lemma1",
    "tol NaN",
    lambda _: gb.lemma1(M, THETA, X, S_DIRS, S_DIRS, 1e-2, tol=float("nan")),
    gb.InvalidOptionError,
    "tol",
)
row(
    "lemma3",
    "S of the wrong width",
    lambda _: gb.lemma3(OBJ, THETA, S_DIRS[:, :4], 1e-2),
    gb.InvalidOptionError,
    "S must be (k, num_params = 26)",
)
row(
    "lemma3",
    "eps missing for a plain array S",
    lambda _: gb.lemma3(OBJ, THETA, S_DIRS),
    gb.InvalidOptionError,
    "eps is required",
)
row(
    "lemma3",
    "eps = -1",
    lambda _: gb.lemma3(OBJ, THETA, S_DIRS, -1.0),
    gb.InvalidOptionError,
    "eps must be a positive",
)
row(
    "lemma3",
    "S with +inf",
    lambda _: gb.lemma3(OBJ, THETA, nan_at(S_DIRS, (0, 2), np.inf), 1e-2),
    gb.NonFiniteError,
    "S holds",
)
row(
    "lemma3",
    "grad_tol = -1",
    lambda _: gb.lemma3(OBJ, THETA, S_DIRS, 1e-2, grad_tol=-1.0),
    gb.InvalidOptionError,
    "grad_tol",
)
row(
    "theorem2",
    "S a plain array",
    lambda _: gb.theorem2(OBJ, THETA, S=S_DIRS),
    (gb.GradbasisError, TypeError),
    "PerturbationSet",
)
row(
    "theorem2",
    "eps = 0",
    lambda _: gb.theorem2(OBJ, THETA, eps=0.0),
    gb.InvalidOptionError,
    "eps must be a positive",
)
row(
    "theorem2",
    "unknown kind",
    lambda _: gb.theorem2(OBJ, THETA, kinds=["dead"]),
    gb.UnknownNameError,
    "['dead']",
)
row(
    "theorem2",
    "unknown strategy",
    lambda _: gb.theorem2(OBJ, THETA, strategy="matrix_free"),
    gb.UnknownNameError,
    "'dense' or 'gram'",
)
row(
    "theorem2",
    "rtol = 0",
    lambda _: gb.theorem2(OBJ, THETA, rtol=0.0),
    gb.InvalidOptionError,
    "rtol",
)
add_family("theorem2", theta_family(), lambda t: gb.theorem2(OBJ, t), keys=("short", "nan"))
OBJ_RES = gb.Objective(RESNET, "squared", X, Y)
row(
    "theorem3",
    "a model that is not a ResNet",
    lambda _: gb.theorem3(OBJ, THETA),
    (gb.GradbasisError, TypeError),
    "ResNet",
)
row(
    "theorem3",
    "eps NaN",
    lambda _: gb.theorem3(OBJ_RES, RESNET.init(), eps=float("nan")),
    gb.InvalidOptionError,
    "eps must be",
)
add_family(
    "theorem3",
    theta_family(RESNET.num_params, good=RESNET.init() + 0.1),
    lambda t: gb.theorem3(OBJ_RES, t),
    keys=("short", "nan"),
)
OBJ_LIN = gb.Objective(gb.MLP([3, 4, 2], "identity"), "squared", X, Y)
row(
    "theorem4",
    "t = 5 for H = 1",
    lambda _: gb.theorem4(OBJ_LIN, THETA, 5),
    gb.InvalidOptionError,
    "t must be an integer in 0..H = 0..1",
)
row(
    "theorem4",
    "t = True",
    lambda _: gb.theorem4(OBJ_LIN, THETA, True),
    gb.InvalidOptionError,
    "t must be an integer",
)
row(
    "theorem4",
    "t = -1",
    lambda _: gb.theorem4(OBJ_LIN, THETA, -1),
    gb.InvalidOptionError,
    "t must be an integer",
)
row(
    "theorem4",
    "margin = -1",
    lambda _: gb.theorem4(OBJ_LIN, THETA, 0, margin=-1.0),
    gb.InvalidOptionError,
    "margin must be finite",
)
row(
    "theorem4",
    "a model that is not an MLP (ResNet)",
    lambda _: gb.theorem4(OBJ_RES, RESNET.init(), 0),
    (gb.GradbasisError, TypeError),
    "MLP",
)
add_family("theorem4", theta_family(), lambda t: gb.theorem4(OBJ_LIN, t, 0), keys=("short", "nan"))
row(
    "linear_unit_sets",
    "margin NaN",
    lambda _: gb.linear_unit_sets(RELU, THETA, X, margin=float("nan")),
    gb.InvalidOptionError,
    "margin must be finite",
)
row(
    "linear_unit_sets",
    "a SkipMLP",
    lambda _: gb.linear_unit_sets(gb.SkipMLP([3, 4, 2]), THETA, X),
    (gb.GradbasisError, TypeError),
    "MLP",
)
add_family(
    "linear_unit_sets",
    theta_family(),
    lambda t: gb.linear_unit_sets(RELU, t, X),
    keys=("short", "inf"),
)
add_family(
    "linear_unit_sets",
    samples_family(),
    lambda x: gb.linear_unit_sets(RELU, THETA, x),
    keys=("columns", "empty"),
)
row(
    "in_theta_nt",
    "t = 2 for H = 1",
    lambda _: gb.in_theta_nt(RELU, THETA, X, 1, 2),
    gb.InvalidOptionError,
    "t must lie in 0..H = 0..1",
)
row(
    "in_theta_nt",
    "n = -1",
    lambda _: gb.in_theta_nt(RELU, THETA, X, -1, 0),
    gb.InvalidOptionError,
    "n",
)
row(
    "hidden_features",
    "layer 7 of a 1-hidden-layer MLP",
    lambda _: gb.hidden_features(RELU, THETA, X, [7]),
    gb.InvalidOptionError,
    "layers",
)
row(
    "hidden_features",
    "theta with NaN",
    lambda _: gb.hidden_features(RELU, nan_at(THETA, 0), X, [0, 1]),
    gb.NonFiniteError,
    "theta holds 1 NaN",
)
row(
    "residual_features",
    "a model that is not a ResNet",
    lambda _: gb.residual_features(M, THETA, X),
    (gb.GradbasisError, TypeError),
    "ResNet",
)
row(
    "residual_features",
    "X with 2 columns for 3",
    lambda _: gb.residual_features(RESNET, RESNET.init(), X[:, :2]),
    gb.ShapeError,
    "X has 2 columns; expected 3",
)

# --- training and constructions -------------------------------------------------------------------------
row(
    "show_progress",
    "enabled not true or false",
    lambda _: gb.show_progress("yes").__enter__(),
    gb.InvalidOptionError,
    "enabled must be true or false",
)
row(
    "minimize",
    "unknown method",
    lambda _: gb.minimize(OBJ, THETA, method="adam"),
    gb.UnknownNameError,
    "unknown method 'adam'",
)
row(
    "minimize",
    "gtol = 0",
    lambda _: gb.minimize(OBJ, THETA, gtol=0.0),
    (gb.GradbasisError, ValueError),
    "gtol",
)
row(
    "minimize",
    "gtol NaN",
    lambda _: gb.minimize(OBJ, THETA, gtol=float("nan")),
    (gb.GradbasisError, ValueError),
    "gtol",
)
row(
    "minimize",
    "max_iter = 0",
    lambda _: gb.minimize(OBJ, THETA, max_iter=0),
    (gb.GradbasisError, ValueError),
    "max_iter",
)
row(
    "minimize",
    "obj not an Objective",
    lambda _: gb.minimize(M, THETA),
    (gb.GradbasisError, TypeError),
    "Objective",
)
add_family(
    "minimize",
    theta_family(name="theta0"),
    lambda t: gb.minimize(OBJ, t),
    keys=("short", "nan", "complex"),
)
OI = gb.overparameterized_init
XU = X / np.linalg.norm(X, axis=1, keepdims=True)
row(
    "overparameterized_init",
    "a hidden layer narrower than m",
    lambda _: OI(XU, [4], 2),
    gb.ShapeError,
    "width 4 < m = 5",
)
row(
    "overparameterized_init",
    "no hidden layer",
    lambda _: OI(XU, [], 2),
    gb.ShapeError,
    "hidden_sizes is empty",
)
row(
    "overparameterized_init",
    "hidden_sizes a string",
    lambda _: OI(XU, "88", 2),
    gb.ShapeError,
    "hidden_sizes must be a list",
)
row(
    "overparameterized_init",
    "output_dim 0",
    lambda _: OI(XU, [8], 0),
    gb.ShapeError,
    "layer_sizes[2]",
)
row(
    "overparameterized_init",
    "duplicated samples",
    lambda _: OI(np.vstack([XU, XU[:1]]), [8], 2),
    gb.IndistinctSamplesError,
    "not distinct",
)
row(
    "overparameterized_init",
    "a zero sample",
    lambda _: OI(nan_at(XU, (2, slice(None)), 0.0), [8], 2),
    gb.IndistinctSamplesError,
    "sample 2 is the zero vector",
)
row(
    "overparameterized_init",
    "bias=False with a non-constant last column",
    lambda _: OI(XU, [8], 2, bias=False),
    gb.ShapeError,
    "one nonzero constant",
)
add_family(
    "overparameterized_init",
    samples_family(good=XU),
    lambda x: OI(x, [8], 2),
    keys=("3d", "empty", "nan", "complex", "object"),
)
row(
    "overparameterized_init",
    "X 1-D",
    lambda _: OI(XU[0], [8], 2),
    gb.ShapeError,
    "X must be 2-D (samples, features); got shape (3,)",
)


# --- distributed (Dask; no client: local threads) ----------------------------------------------------------
def dask_array(a: np.ndarray, rows: int = 2):
    import dask.array as da

    return da.from_array(a, chunks=(rows, a.shape[1]))


DJ, DG, DIM = gb.distributed_jacobian, gb.distributed_gram, gb.distributed_induced_minimum
row(
    "distributed_jacobian",
    "chunk_size = 0",
    lambda _: DJ(M, THETA, X, chunk_size=0),
    gb.InvalidOptionError,
    "chunk_size must be a positive number",
)
row(
    "distributed_jacobian",
    "a Dask X with 2 columns for 3",
    lambda _: DJ(M, THETA, dask_array(X[:, :2])),
    gb.ShapeError,
    "X must be 2-D (samples, 3)",
)
row(
    "distributed_jacobian",
    "a Dask X with NaN",
    lambda _: DJ(M, THETA, dask_array(nan_at(X, (4, 2)))).compute(),
    gb.NonFiniteError,
    "X holds 1 NaN",
)
add_family("distributed_jacobian", theta_family(), lambda t: DJ(M, t, X), keys=("short", "nan"))
add_family(
    "distributed_jacobian",
    samples_family(),
    lambda x: DJ(M, THETA, x),
    keys=("columns", "empty", "inf", "bool"),
)
row(
    "distributed_gram",
    "chunk_size = -2",
    lambda _: DG(M, THETA, X, chunk_size=-2),
    gb.InvalidOptionError,
    "chunk_size",
)
row(
    "distributed_gram",
    "n_threads = 0",
    lambda _: DG(M, THETA, X, n_threads=0),
    (gb.GradbasisError, ValueError),
    "n_threads",
)
add_family("distributed_gram", theta_family(), lambda t: DG(M, t, X), keys=("short", "complex"))
add_family("distributed_gram", samples_family(), lambda x: DG(M, THETA, x), keys=("1d", "nan"))
row(
    "distributed_induced_minimum",
    "unknown method",
    lambda _: DIM(OBJ, THETA, method="svd"),
    gb.UnknownNameError,
    "unknown method 'svd'",
)
row(
    "distributed_induced_minimum",
    "tsqr with cross-entropy",
    lambda _: DIM((M, "cross_entropy", X, ONE_HOT), THETA),
    gb.InvalidOptionError,
    "squared loss only",
)
row(
    "distributed_induced_minimum",
    "problem a list, not a tuple",
    lambda _: DIM([M, "squared", X, Y], THETA),
    (gb.GradbasisError, TypeError),
    "Objective or a tuple",
)
row(
    "distributed_induced_minimum",
    "negative weights (NumPy)",
    lambda _: DIM((M, "squared", X, Y, -np.ones(5)), THETA),
    gb.InvalidWeightsError,
    "weights must be positive",
)
row(
    "distributed_induced_minimum",
    "negative weights (Dask)",
    lambda _: DIM((M, "squared", X, Y, dask_array(-np.ones((5, 1)))), THETA),
    gb.InvalidWeightsError,
    "weights must be positive",
)
row(
    "distributed_induced_minimum",
    "targets with NaN (gram)",
    lambda _: DIM((M, "squared", X, nan_at(Y, (0, 0))), THETA, method="gram"),
    gb.NonFiniteError,
    "Y holds 1 NaN",
)
row(
    "distributed_induced_minimum",
    "rank_tol = 1 (tsqr)",
    lambda _: DIM(OBJ, THETA, rank_tol=1.0),
    gb.InvalidOptionError,
    "rank_tol must be a relative cut in [0, 1)",
)
row(
    "distributed_induced_minimum",
    "memory_budget tiny (gram)",
    lambda _: DIM(OBJ, THETA, method="gram", memory_budget=8),
    gb.MemoryBudgetError,
    "Gram matrix 10 x 10",
)
add_family(
    "distributed_induced_minimum", theta_family(), lambda t: DIM(OBJ, t), keys=("short", "nan")
)
add_family(
    "distributed_induced_minimum",
    samples_family(2, "Y", Y),
    lambda y: DIM((M, "squared", X, y), THETA),
    keys=("columns", "inf"),
)

# --- data files and the command line ------------------------------------------------------------------------
row(
    "load_data_file",
    "a file that does not exist",
    lambda t: load_data_file(t / "nope.npz"),
    DataFileError,
    "does not exist",
)
row(
    "load_data_file",
    "an unsupported suffix",
    lambda t: load_data_file(write_text(t, "d.json", "{}")),
    DataFileError,
    "unsupported data file 'd.json'",
)
row(
    "load_data_file",
    ".npz without X",
    lambda t: load_data_file(write_npz(t, y=np.arange(4))),
    DataFileError,
    "no array named 'X'",
)
row(
    "load_data_file",
    ".npz without y or Y",
    lambda t: load_data_file(write_npz(t, X=X)),
    DataFileError,
    "needs labels 'y' or targets 'Y'",
)
row(
    "load_data_file",
    ".npz X with NaN",
    lambda t: load_data_file(write_npz(t, X=nan_at(X, (3, 1)), y=np.arange(5) % 2)),
    gb.NonFiniteError,
    "X holds 1 NaN",
)
row(
    "load_data_file",
    ".npz Y with +inf",
    lambda t: load_data_file(write_npz(t, X=X, Y=nan_at(Y, (0, 1), np.inf))),
    gb.NonFiniteError,
    "Y holds 1 NaN/inf",
)
row(
    "load_data_file",
    ".npz X 1-D",
    lambda t: load_data_file(write_npz(t, X=X[:, 0], y=np.arange(5) % 2)),
    gb.ShapeError,
    "X must be (m, d_x)",
)
row(
    "load_data_file",
    ".npz with m = 0",
    lambda t: load_data_file(write_npz(t, X=X[:0], y=np.arange(0))),
    gb.ShapeError,
    "X must be (m, d_x)",
)
row(
    "load_data_file",
    ".npz y of the wrong length",
    lambda t: load_data_file(write_npz(t, X=X, y=np.arange(4) % 2)),
    gb.ShapeError,
    "one label/target row per sample",
)
row(
    "load_data_file",
    ".npz with a single class",
    lambda t: load_data_file(write_npz(t, X=X, y=np.zeros(5))),
    gb.InvalidLabelError,
    "single class",
)
row(
    "load_data_file",
    ".npz X complex",
    lambda t: load_data_file(write_npz(t, X=X.astype(complex), y=np.arange(5) % 2)),
    gb.DTypeError,
    "X has dtype complex128",
)
row(
    "load_data_file",
    ".npz X an object array",
    lambda t: load_data_file(write_npz(t, X=X.astype(object), y=np.arange(5) % 2)),
    DataFileError,
    "X",
)
row(
    "load_data_file",
    "a .npz that is not a zip file",
    lambda t: load_data_file(write_text(t, "d.npz", "not a zip")),
    DataFileError,
    "d.npz",
)
row(
    "load_data_file",
    ".csv with a non-numeric feature",
    lambda t: load_data_file(write_text(t, "d.csv", "a,b,label\n1,x,0\n2,3,1\n")),
    DataFileError,
    "must be numeric",
)
row(
    "load_data_file",
    ".csv with only a header",
    lambda t: load_data_file(write_text(t, "d.csv", "a,label\n")),
    DataFileError,
    "needs a header row and at least one sample",
)
row(
    "load_data_file",
    ".csv with rows of different lengths",
    lambda t: load_data_file(write_text(t, "d.csv", "a,b,label\n1,2,0\n3,1\n")),
    DataFileError,
    "2 columns",
)
row(
    "load_data_file",
    ".csv with NaN",
    lambda t: load_data_file(write_text(t, "d.csv", "a,label\n1,0\nnan,1\n")),
    gb.NonFiniteError,
    "X holds 1 NaN",
)
row(
    "gradbasis certify",
    "--data that does not exist",
    lambda t: certify(t, "--data", str(t / "missing.csv")),
    CommandFailed,
    "exit status 2: gradbasis: error: data file",
)
row(
    "gradbasis certify",
    "--activation swish",
    lambda t: certify(t, "--activation", "swish"),
    CommandFailed,
    "exit status 2: gradbasis: error: unknown activation 'swish'",
)
row(
    "gradbasis certify",
    "--loss huber",
    lambda t: certify(t, "--loss", "huber"),
    CommandFailed,
    "exit status 2: gradbasis: error: unknown loss 'huber'",
)
row(
    "gradbasis certify",
    "--loss smoothed_hinge on 3 classes",
    lambda t: certify(t, "--loss", "smoothed_hinge"),
    CommandFailed,
    "exit status 2: gradbasis: error: the smoothed hinge loss is binary",
)
row(
    "gradbasis certify",
    "--widths 0",
    lambda t: certify(t, "--widths", "0"),
    CommandFailed,
    "exit status 2: gradbasis: error: layer_sizes[1]",
)
row(
    "gradbasis certify",
    "--method adam",
    lambda t: certify(t, "--method", "adam"),
    CommandFailed,
    "exit status 2: gradbasis: error: unknown method 'adam'",
)
row(
    "gradbasis certify",
    "--model cnn",
    lambda t: certify(t, "--model", "cnn"),
    CommandFailed,
    "exit status 2: usage:",
)
row(
    "gradbasis certify",
    "--seed abc",
    lambda t: certify(t, "--seed", "abc"),
    CommandFailed,
    "invalid int value: 'abc'",
)
row(
    "gradbasis certify",
    "--data with NaN",
    lambda t: certify(t, "--data", str(write_text(t, "d.csv", "a,label\n1,0\nnan,1\n"))),
    CommandFailed,
    "exit status 2: gradbasis: error: X holds 1 NaN",
)
row(
    "gradbasis certify",
    "--gtol -1",
    lambda t: certify(t, "--gtol", "-1"),
    CommandFailed,
    "exit status 2: gradbasis: error: gtol",
)
row(
    "gradbasis certify",
    "--max-samples -1",
    lambda t: certify(t, "--max-samples", "-1"),
    CommandFailed,
    "exit status 2: gradbasis: error: max-samples",
)
row(
    "gradbasis certify",
    "--rtol -1",
    lambda t: certify(t, "--rtol", "-1", "--max-samples", "20", "--max-iter", "5"),
    CommandFailed,
    "exit status 2: gradbasis: error: rtol",
)


# ----------------------------------------------------------------------------- rows of test_bad_input.py
#: (entry point, bad input, error, message contains) of the rows in tests/test_bad_input.py, which
#: this table does not repeat; test_doc_lists_the_rows_of_the_other_file checks the phrases there.
COVERED_ELSEWHERE = [
    ("Model.forward", "theta of the wrong length", "ShapeError", r"expected \(26,\)"),
    ("Model.forward", "X with 2 columns for 3", "ShapeError", "expected 3"),
    ("Model.forward", "X 1-D (one sample)", "ShapeError", "reshape"),
    ("Model.forward", "X with no samples (m = 0)", "ShapeError", "no samples"),
    ("Model.forward", "theta with a NaN", "NonFiniteError", r"theta .*index \(4,\)"),
    ("Model.forward", "X with a NaN", "NonFiniteError", r"X .*\(2, 1\)"),
    ("Model.forward", "X complex", "DTypeError", "complex"),
    ("Model.forward", "X object array", "DTypeError", "object"),
    ("Model.forward", "n_threads = 0", "ValueError", "n_threads"),
    (
        "Model.forward",
        "float32, integer, Fortran-ordered, strided inputs",
        "accepted (converted)",
        "test_convertible_arrays_are_accepted",
    ),
    ("Model.jvp", "v of the wrong length", "ShapeError", "v has shape"),
    ("Model.vjp", "U with 4 rows for 5 samples", "ShapeError", "U has 4 rows"),
    ("Model.jacobian", "memory_budget tiny", "MemoryBudgetError", "memory_budget"),
    (
        "Model.jacobian",
        "a Jacobian of 8 TB (default budget)",
        "MemoryBudgetError",
        "dense Jacobian 1000000 x 2002000",
    ),
    ("Model.jacobian", "out Fortran-ordered", "ShapeError", "C-contiguous"),
    ("Model.jacobian", "out of the wrong shape", "ShapeError", "shape"),
    ("MLP", "unknown activation 'swish'", "UnknownNameError", "swish"),
    ("MLP", "2 activation names for 1 hidden layer", "ValueError", "2 activations for 1 hidden"),
    ("MLP", "only one layer size", "ShapeError", "at least input and output"),
    ("MLP", "a zero layer size", "ShapeError", r"layer_sizes\[1\]"),
    ("SkipMLP", "skip_from = [5]", "ValueError", "skip_from"),
    ("ResNet", "residual input 3 for input_dim 4", "ValueError", "input_dim"),
    ("Model.flatten", "a missing block", "ShapeError", "missing"),
    ("Model.flatten", "a block of the wrong shape", "ShapeError", "W1 has shape"),
    ("Objective", "Y with 4 rows for 5 samples", "ShapeError", "Y has 4 rows"),
    ("Objective", "Y with a NaN", "NonFiniteError", "Y"),
    ("Objective", "a zero weight", "InvalidWeightsError", r"weights\[2\]"),
    ("Objective", "weights of the wrong length", "ShapeError", "weights"),
    ("Objective", "cross-entropy targets not summing to 1", "InvalidLabelError", "sums to"),
    ("Objective", "cross-entropy targets negative", "InvalidLabelError", "negative"),
    ("Objective", "smoothed hinge with 2 outputs", "InvalidLabelError", "one output"),
    ("Objective", "smoothed hinge label 0.5", "InvalidLabelError", r"Y\[3\]"),
    ("SmoothedHingeLoss", "p = 1.5", "ValueError", "p >= 2"),
    ("Objective", "unknown loss 'huber'", "UnknownNameError", "huber"),
    ("Objective.hessian_vector", "v of the wrong length", "ShapeError", "v"),
]


def _param(r: Row):
    marks = [pytest.mark.xfail(strict=True, reason=r.now)] if r.now else []
    return pytest.param(r, id=r.id, marks=marks)


#: Entry points whose rows write files (a temporary directory is made only for them: it is slow).
WRITES_FILES = ("load_data_file", "gradbasis certify")


@pytest.mark.parametrize("r", [_param(r) for r in ROWS])
def test_bad_input(r: Row, request: pytest.FixtureRequest) -> None:
    tmp_path = request.getfixturevalue("tmp_path") if r.entry in WRITES_FILES else None
    if not r.expect:
        r.call(tmp_path)  # asserts the documented outcome itself
        return
    with pytest.raises(Exception) as info:  # noqa: PT011 - the classes are checked below
        r.call(tmp_path)
    err = info.value
    assert all(isinstance(err, cls) for cls in r.expect), f"{type(err).__name__}: {err}"
    assert r.phrase in str(err), f"{r.phrase!r} not in {str(err)!r}"
    if CommandFailed not in r.expect:
        assert isinstance(err, gb.GradbasisError)


def test_row_ids_are_unique() -> None:
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


def test_every_public_function_has_a_row() -> None:
    """Every callable in gradbasis.__all__ except the error and result classes appears in the table."""
    listed = {r.entry.split(".")[0] for r in ROWS} | {
        e.split(".")[0] for e, *_ in COVERED_ELSEWHERE
    }
    listed |= (
        {"Model", "Loss"} if any(r.entry.startswith(("Model.", "Loss.")) for r in ROWS) else set()
    )
    not_entry_points = {
        name
        for name in gb.__all__
        if not callable(getattr(gb, name))
        or (
            isinstance(getattr(gb, name), type)
            and issubclass(getattr(gb, name), (BaseException, enum.Enum))  # enums: named values
        )
        or name.endswith(
            ("Result", "Bound", "Report", "Set", "Sets", "Basis", "Estimate", "Entry", "Class")
        )
    }
    not_entry_points |= {
        "SquaredLoss",
        "CrossEntropyLoss",
        "Activation",
    }  # no arguments to get wrong / via MLP
    missing = sorted(set(gb.__all__) - not_entry_points - listed)
    assert not missing, f"public entry points without a row: {missing}"


def test_doc_lists_the_rows_of_the_other_file() -> None:
    source = OTHER_TEST.read_text()
    for entry, bad, _, phrase in COVERED_ELSEWHERE:
        assert phrase in source, f"{entry}: {bad}: {phrase!r} is no longer in test_bad_input.py"


# ----------------------------------------------------------------------------- the doc
def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_doc() -> str:
    """docs/bad_inputs.md, generated from ROWS and COVERED_ELSEWHERE."""
    open_rows = [r for r in ROWS if r.now]
    entries = sorted({r.entry for r in ROWS} | {e for e, *_ in COVERED_ELSEWHERE})
    lines = [
        "# Bad inputs and the errors they get",
        "",
        "Every public entry point is to check its inputs before any work is done and raise a subclass of",
        "`gradbasis.GradbasisError` whose message names the problem (the argument, the offending shape,",
        "index or value); the rows marked **open** below are where it does not yet. The subclasses also",
        "derive from the builtin exception they mean (`ShapeError` and `NonFiniteError` from `ValueError`,",
        "`DTypeError` from `TypeError`, `MemoryBudgetError` from `MemoryError`), so",
        "`except ValueError` keeps working. Integer, float32, Fortran-ordered and",
        "strided arrays are converted to C-contiguous float64; complex, boolean, object and string",
        "arrays are rejected. `gradbasis certify` prints `gradbasis: error: ...` and exits with status 2.",
        "",
        f"This table has {len(ROWS) + len(COVERED_ELSEWHERE)} rows over {len(entries)} entry points. Each row is one test:",
        "`tests/test_bad_input_table.py` (generated from its `ROWS`; regenerate this file with",
        "`python tests/test_bad_input_table.py`) or `tests/test_bad_input.py`.",
        f"{len(open_rows)} rows are **open**: the library does not yet give the error in the table; the",
        "last column says what it does instead, and the row's test is marked xfail (strict) until it does.",
        "",
        "| entry point | bad input | error | message contains | test, status |",
        "|---|---|---|---|---|",
    ]
    body = []
    for r in ROWS:
        if r.expect:
            error = " + ".join(f"`{c.__name__}`" for c in r.expect)
            phrase = f"`{_cell(r.phrase)}`"
        else:
            error, phrase = _cell(r.outcome), ""
        status = f"table; **open**: {_cell(r.now)}" if r.now else "table"
        body.append((r.entry, f"| `{r.entry}` | {_cell(r.bad)} | {error} | {phrase} | {status} |"))
    for entry, bad, error, phrase in COVERED_ELSEWHERE:
        status = "test_bad_input.py"
        if error == "ValueError":
            status += "; accepts a plain `ValueError`: the open rows of this entry point ask for a GradbasisError"
        body.append(
            (entry, f"| `{entry}` | {_cell(bad)} | `{error}` | `{_cell(phrase)}` | {status} |")
        )
    order = {e: i for i, e in enumerate(dict.fromkeys(r.entry for r in ROWS))}
    body.sort(key=lambda item: order.get(item[0], len(order)))
    lines += [text for _, text in body]
    return "\n".join(lines) + "\n"


def test_doc_is_rendered_from_the_rows() -> None:
    assert DOC.read_text() == render_doc(), (
        "docs/bad_inputs.md differs from the rows; regenerate it with "
        "python tests/test_bad_input_table.py"
    )


if __name__ == "__main__":
    DOC.write_text(render_doc())
    print(f"wrote {DOC} ({len(ROWS)} + {len(COVERED_ELSEWHERE)} rows)")
