"""Oracle tests: gradbasis versus an independent PyTorch implementation.

Every torch function below is written from the mathematical definitions in the
API contract (docs / API.md), NOT from gradbasis code.  The only thing taken
from gradbasis is ``model.unflatten(theta)`` (names -> arrays), which is how
weights are moved into torch.  The parameter order of theta is checked
separately against the documented order (names + column-major vec).

Conventions checked (from the contract):
  * theta = layer by layer, vec(W) column-major (W.reshape(-1, order="F")),
    then the bias;
  * Jacobian row i*d_y + k is d f_k(x_i; theta) / d theta.

All computations are float64.  Sizes are tiny (m = 7, widths 3..6) so the
whole module runs in a few seconds.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch.func import grad as tgrad
from torch.func import jacrev, vmap  # noqa: E402

import gradbasis  # noqa: E402

DT = torch.float64
M = 7  # number of samples (odd on purpose: uneven thread partitions)

# --------------------------------------------------------------------------
# Tolerances.
#
# forward: both sides evaluate the same composition of a few small mat-vecs and
#   elementwise functions in float64; differences are a handful of ulps per
#   operation, so rtol 1e-12 with an absolute floor of 1e-13 * max(1, |f|max)
#   (to cover entries that cancel to ~0) is generous but still tight.
# jacobian / jvp / vjp: derivatives go through longer chains (products of
#   layer Jacobians, activation derivatives such as gelu' = Phi + x*phi), so we
#   allow rtol 1e-10 with absolute floor 1e-12 * max(1, |J|max).
# objective gradient / Hessian-vector: sums over samples of products of the
#   above; rtol 1e-9, absolute floor 1e-11 * scale.
# loss methods: closed-form scalar functions (softmax, powers); rtol 1e-11,
#   absolute floor 1e-13 * scale.
# --------------------------------------------------------------------------
FWD_RTOL, FWD_ATOL = 1e-12, 1e-13
JAC_RTOL, JAC_ATOL = 1e-10, 1e-12
OBJ_RTOL, OBJ_ATOL = 1e-9, 1e-11
LOSS_RTOL, LOSS_ATOL = 1e-11, 1e-13

# Minimum distance of any kinked pre-activation (relu / leaky_relu) or hinge
# margin from its kink.  The data are random so exact ties have probability 0,
# but we assert it so a failure can never be blamed on a kink.
KINK_GUARD = 1e-6


def assert_close(actual, expected, rtol, atol_scale, what=""):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    scale = max(1.0, float(np.max(np.abs(expected))) if expected.size else 1.0)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol_scale * scale, err_msg=what)


@pytest.fixture(autouse=True)
def _float64_default():
    """float64 default dtype for the duration of each test only."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def T(a):
    return torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=DT)


# --------------------------------------------------------------------------
# Activations (torch, from the math)
# --------------------------------------------------------------------------
KINKED = {"relu", "leaky_relu"}


def parse_act(name: str, default_slope: float = 0.01):
    """'leaky_relu(0.2)' -> ('leaky_relu', 0.2); others -> (name, default_slope)."""
    mt = re.fullmatch(r"leaky_relu\(([^)]*)\)", name)
    if mt:
        return "leaky_relu", float(mt.group(1))
    return name, default_slope


def t_act(z, name: str, slope: float, rec: list | None):
    if rec is not None and name in KINKED:
        rec.append(z.detach().reshape(-1))
    if name == "identity":
        return z
    if name == "relu":
        return torch.relu(z)
    if name == "leaky_relu":
        return torch.where(z > 0, z, slope * z)
    if name == "tanh":
        return torch.tanh(z)
    if name == "sigmoid":
        return torch.sigmoid(z)
    if name == "softplus":
        # log(1 + e^z) exactly (no threshold switch as in F.softplus).
        return torch.logaddexp(z, torch.zeros_like(z))
    if name == "gelu":
        return F.gelu(z)  # exact erf form: z * Phi(z)
    raise ValueError(name)


# --------------------------------------------------------------------------
# Model descriptions.  Each case knows (a) how to build the gradbasis model,
# (b) the documented parameter names/shapes, (c) the torch function.
# Torch functions take a params dict and x of shape (d_x,) or (m, d_x) and use
# `h @ W.T` so they work both batched and under vmap.
# --------------------------------------------------------------------------


@dataclasses.dataclass
class BasisCase:
    d_x: int
    d_y: int

    def build(self):
        return gradbasis.BasisModel(self.d_x, self.d_y)

    def names_shapes(self, prefix=""):
        return [(prefix + "W", (self.d_y, self.d_x))]

    def torch_fn(self, p, x, prefix="", rec=None):
        return x @ p[prefix + "W"].T

    @property
    def input_dim(self):
        return self.d_x

    @property
    def output_dim(self):
        return self.d_y


@dataclasses.dataclass
class MLPCase:
    sizes: Sequence[int]
    activation: object = "tanh"  # what is passed to gradbasis
    bias: bool = True
    negative_slope: float | None = None  # passed to gradbasis if not None

    @property
    def H(self):
        return len(self.sizes) - 2

    @property
    def input_dim(self):
        return self.sizes[0]

    @property
    def output_dim(self):
        return self.sizes[-1]

    def acts(self):
        default = 0.01 if self.negative_slope is None else self.negative_slope
        act = self.activation
        names = [act] * self.H if isinstance(act, str) else list(act)
        assert len(names) == self.H
        return [parse_act(n, default) for n in names]

    def build(self):
        kw = dict(activation=self.activation, bias=self.bias)
        if self.negative_slope is not None:
            kw["negative_slope"] = self.negative_slope
        return gradbasis.MLP(list(self.sizes), **kw)

    def names_shapes(self, prefix=""):
        out = []
        for l in range(1, self.H + 2):
            out.append((f"{prefix}W{l}", (self.sizes[l], self.sizes[l - 1])))
            if self.bias:
                out.append((f"{prefix}b{l}", (self.sizes[l],)))
        return out

    def torch_fn(self, p, x, prefix="", rec=None):
        h = x
        for l, (name, slope) in enumerate(self.acts(), start=1):
            z = h @ p[f"{prefix}W{l}"].T
            if self.bias:
                z = z + p[f"{prefix}b{l}"]
            h = t_act(z, name, slope, rec)
        L = self.H + 1
        out = h @ p[f"{prefix}W{L}"].T
        if self.bias:
            out = out + p[f"{prefix}b{L}"]
        return out


@dataclasses.dataclass
class SkipCase:
    sizes: Sequence[int]
    skip_from: Sequence[int]
    activation: object = "tanh"
    bias: bool = True

    @property
    def H(self):
        return len(self.sizes) - 2

    @property
    def input_dim(self):
        return self.sizes[0]

    @property
    def output_dim(self):
        return self.sizes[-1]

    def _mlp(self):
        return MLPCase(self.sizes, self.activation, self.bias)

    def build(self):
        return gradbasis.SkipMLP(
            list(self.sizes),
            skip_from=tuple(self.skip_from),
            activation=self.activation,
            bias=self.bias,
        )

    def skips(self):
        return sorted(l for l in set(self.skip_from) if l < self.H)

    def names_shapes(self, prefix=""):
        H, s = self.H, self.sizes
        out = []
        for l in range(1, H + 1):
            out.append((f"{prefix}W{l}", (s[l], s[l - 1])))
            if self.bias:
                out.append((f"{prefix}b{l}", (s[l],)))
        for l in self.skips():
            out.append((f"{prefix}S{l}", (s[-1], s[l])))
        out.append((f"{prefix}W{H + 1}", (s[-1], s[H])))
        if self.bias:
            out.append((f"{prefix}b{H + 1}", (s[-1],)))
        return out

    def torch_fn(self, p, x, prefix="", rec=None):
        hs = [x]
        h = x
        for l, (name, slope) in enumerate(self._mlp().acts(), start=1):
            z = h @ p[f"{prefix}W{l}"].T
            if self.bias:
                z = z + p[f"{prefix}b{l}"]
            h = t_act(z, name, slope, rec)
            hs.append(h)
        H = self.H
        out = hs[H] @ p[f"{prefix}W{H + 1}"].T
        for l in self.skips():
            out = out + hs[l] @ p[f"{prefix}S{l}"].T
        if self.bias:
            out = out + p[f"{prefix}b{H + 1}"]
        return out


@dataclasses.dataclass
class PreActCase:
    dim: int
    hidden: int
    num_blocks: int
    activation: str = "relu"
    bias: bool = True

    @property
    def input_dim(self):
        return self.dim

    @property
    def output_dim(self):
        return self.dim

    def build(self):
        return gradbasis.PreActResidualStack(
            dim=self.dim,
            hidden=self.hidden,
            num_blocks=self.num_blocks,
            activation=self.activation,
            bias=self.bias,
        )

    def names_shapes(self, prefix=""):
        out = []
        for b in range(1, self.num_blocks + 1):
            out.append((f"{prefix}U{b}", (self.hidden, self.dim)))
            if self.bias:
                out.append((f"{prefix}c{b}", (self.hidden,)))
            out.append((f"{prefix}V{b}", (self.dim, self.hidden)))
            if self.bias:
                out.append((f"{prefix}e{b}", (self.dim,)))
        return out

    def torch_fn(self, p, x, prefix="", rec=None):
        name, slope = parse_act(self.activation)
        h = x
        for b in range(1, self.num_blocks + 1):
            a = t_act(h, name, slope, rec)
            z = a @ p[f"{prefix}U{b}"].T
            if self.bias:
                z = z + p[f"{prefix}c{b}"]
            r = t_act(z, name, slope, rec) @ p[f"{prefix}V{b}"].T
            if self.bias:
                r = r + p[f"{prefix}e{b}"]
            h = h + r
        return h


@dataclasses.dataclass
class ResNetCase:
    d_x: int
    d_y: int
    residual: object  # MLPCase or PreActCase

    @property
    def input_dim(self):
        return self.d_x

    @property
    def output_dim(self):
        return self.d_y

    def build(self):
        return gradbasis.ResNet(self.d_x, self.d_y, self.residual.build())

    def names_shapes(self, prefix=""):
        d_z = self.residual.output_dim
        own = [(prefix + "W", (self.d_y, self.d_x)), (prefix + "R", (self.d_x, d_z))]
        return own + self.residual.names_shapes(prefix + "u.")

    def torch_fn(self, p, x, prefix="", rec=None):
        z = self.residual.torch_fn(p, x, prefix + "u.", rec)
        return (x + z @ p[prefix + "R"].T) @ p[prefix + "W"].T


ACTS = ["identity", "relu", "leaky_relu(0.2)", "tanh", "sigmoid", "softplus", "gelu"]


def _model_cases():
    S4 = [4, 5, 6, 3]  # depth 2
    S5 = [4, 5, 3, 6, 2]  # depth 3
    raw = [("basis-4x3", BasisCase(4, 3)), ("basis-5x1", BasisCase(5, 1))]
    for act in ACTS:
        for bias in (True, False):
            raw.append((f"mlp-{act}-{'bias' if bias else 'nobias'}", MLPCase(S4, act, bias)))
    raw += [
        ("mlp-leaky_relu-default-slope", MLPCase(S4, "leaky_relu")),
        ("mlp-leaky_relu-kwarg-slope0.2", MLPCase(S4, "leaky_relu", negative_slope=0.2)),
        ("mlp-depth0-linear", MLPCase([4, 3], [])),
        ("mlp-depth1-tanh", MLPCase([4, 6, 3], "tanh")),
        ("mlp-depth1-relu-nobias", MLPCase([4, 6, 3], "relu", bias=False)),
        ("mlp-depth3-tanh", MLPCase(S5, "tanh")),
        ("mlp-depth3-relu", MLPCase(S5, "relu")),
        ("mlp-depth3-mixed-relu-gelu-softplus", MLPCase(S5, ["relu", "gelu", "softplus"])),
        (
            "mlp-depth3-mixed-leaky-sigmoid-identity-nobias",
            MLPCase([3, 6, 4, 5, 3], ["leaky_relu(0.2)", "sigmoid", "identity"], bias=False),
        ),
        ("mlp-depth2-mixed-tanh-relu-dy1", MLPCase([4, 5, 6, 1], ["tanh", "relu"])),
        # SkipMLP (H = 2 for S4, H = 3 for S5)
        ("skip-from0-relu", SkipCase(S4, (0,), "relu")),
        ("skip-from1-tanh", SkipCase(S4, (1,), "tanh")),
        ("skip-from01-gelu", SkipCase(S4, (0, 1), "gelu")),
        ("skip-from01-tanh-nobias", SkipCase(S4, (0, 1), "tanh", bias=False)),
        ("skip-from012-incl-H-softplus", SkipCase(S4, (0, 1, 2), "softplus")),
        ("skip-depth3-from02-mixed", SkipCase(S5, (0, 2), ["relu", "sigmoid", "leaky_relu(0.2)"])),
        ("skip-empty-tanh", SkipCase(S4, (), "tanh")),
        # ResNet
        ("resnet-mlp-tanh-dz6", ResNetCase(4, 3, MLPCase([4, 5, 6], "tanh"))),
        ("resnet-mlp-relu-nobias", ResNetCase(4, 2, MLPCase([4, 5, 4], "relu", bias=False))),
        ("resnet-mlp-depth2-mixed", ResNetCase(4, 3, MLPCase([4, 5, 3, 4], ["gelu", "softplus"]))),
        ("resnet-preact-relu-2blocks", ResNetCase(4, 3, PreActCase(4, 5, 2, "relu", True))),
        ("resnet-preact-tanh-1block-nobias", ResNetCase(4, 1, PreActCase(4, 3, 1, "tanh", False))),
        ("resnet-preact-gelu-3blocks", ResNetCase(3, 2, PreActCase(3, 4, 3, "gelu", True))),
        ("resnet-preact-leaky0.2", ResNetCase(4, 3, PreActCase(4, 5, 2, "leaky_relu(0.2)", True))),
    ]
    return [pytest.param(case, id=cid) for cid, case in raw]


MODEL_CASES = _model_cases()


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def make_data(case, seed, scale=0.5):
    """Random theta (all parameters, biases included, nonzero) and X."""
    rng = np.random.default_rng(seed)
    model = case.build()
    P = sum(int(np.prod(s)) for _, s in case.names_shapes())
    assert model.num_params == P
    theta = scale * rng.standard_normal(P)
    X = rng.standard_normal((M, case.input_dim))
    return model, theta, X


def params_to_torch(model, theta):
    d = model.unflatten(theta)
    return {k: T(v) for k, v in d.items()}


def torch_unflatten_flat(theta_t, names_shapes):
    """Flat torch theta -> dict following the DOCUMENTED order (column-major vec)."""
    out, off = {}, 0
    for name, shape in names_shapes:
        n = int(np.prod(shape))
        seg = theta_t[off : off + n]
        if len(shape) == 2:
            seg = seg.reshape(shape[1], shape[0]).T  # column-major
        out[name] = seg
        off += n
    assert off == theta_t.shape[0]
    return out


def check_kinks(case, p, X):
    rec = []
    with torch.no_grad():
        case.torch_fn(p, T(X), rec=rec)
    if rec:
        mn = float(torch.cat(rec).abs().min())
        assert mn > KINK_GUARD, f"test data too close to a kink ({mn}); pick another seed"


def torch_jacobian(case, p, X, names):
    """vmap(jacrev) Jacobian arranged in gradbasis' documented layout."""

    def f1(params, x):
        return case.torch_fn(params, x)

    blocks = vmap(jacrev(f1, argnums=0), in_dims=(None, 0))(p, T(X))
    m, d_y = X.shape[0], case.output_dim
    cols = []
    for name in names:
        blk = blocks[name]
        if blk.dim() == 4:  # (m, d_y, d_out, d_in) -> vec column-major: a + b*d_out
            blk = blk.permute(0, 1, 3, 2)
        cols.append(blk.reshape(m, d_y, -1))
    return torch.cat(cols, dim=2).reshape(m * d_y, -1).numpy()


_JAC_CACHE: dict = {}


def _jacobian_setup(case, seed=3):
    """Model, data and the torch Jacobian; cached so the two tests share one vmap(jacrev)."""
    key = (id(case), seed)
    if key not in _JAC_CACHE:
        model, theta, X = make_data(case, seed)
        p = params_to_torch(model, theta)
        check_kinks(case, p, X)
        names = [n for n, _ in case.names_shapes()]
        _JAC_CACHE[key] = (theta, X, p, torch_jacobian(case, p, X, names))
    theta, X, p, Jt = _JAC_CACHE[key]
    return case.build(), theta.copy(), X.copy(), p, Jt.copy()


# --------------------------------------------------------------------------
# Model tests
# --------------------------------------------------------------------------


@pytest.mark.parametrize("case", MODEL_CASES)
def test_unflatten_names_order_and_roundtrip(case):
    model, theta, _ = make_data(case, seed=1)
    expected = case.names_shapes()
    d = model.unflatten(theta)
    assert list(d.keys()) == [n for n, _ in expected]
    for name, shape in expected:
        assert tuple(np.shape(d[name])) == shape, name
    # theta order = concatenation of column-major vecs in the unflatten order
    cat = np.concatenate([np.asarray(d[n]).reshape(-1, order="F") for n, _ in expected])
    np.testing.assert_array_equal(cat, theta)
    back = model.flatten(d)
    np.testing.assert_array_equal(np.asarray(back), theta)
    assert model.input_dim == case.input_dim and model.output_dim == case.output_dim


@pytest.mark.parametrize("case", MODEL_CASES)
def test_forward_matches_torch(case):
    model, theta, X = make_data(case, seed=2)
    p = params_to_torch(model, theta)
    check_kinks(case, p, X)
    with torch.no_grad():
        ref = case.torch_fn(p, T(X)).numpy()
    out = model.forward(theta, X)
    assert_close(out, ref, FWD_RTOL, FWD_ATOL, "forward")
    out2 = model.forward(theta, X, n_threads=2)
    assert_close(out2, ref, FWD_RTOL, FWD_ATOL, "forward n_threads=2")


@pytest.mark.parametrize("case", MODEL_CASES)
def test_jacobian_jvp_vjp_match_torch(case):
    model, theta, X, p, Jt = _jacobian_setup(case)
    assert Jt.shape == (M * case.output_dim, model.num_params)

    J = model.jacobian(theta, X)
    assert_close(J, Jt, JAC_RTOL, JAC_ATOL, "jacobian")
    J2 = model.jacobian(theta, X, n_threads=2)
    assert_close(J2, Jt, JAC_RTOL, JAC_ATOL, "jacobian n_threads=2")

    rng = np.random.default_rng(33)
    v = rng.standard_normal(model.num_params)
    U = rng.standard_normal((M, case.output_dim))
    jv_ref = (Jt @ v).reshape(M, case.output_dim)
    assert_close(model.jvp(theta, X, v), jv_ref, JAC_RTOL, JAC_ATOL, "jvp")
    assert_close(model.vjp(theta, X, U), Jt.T @ U.reshape(-1), JAC_RTOL, JAC_ATOL, "vjp")


@pytest.mark.parametrize("case", MODEL_CASES)
def test_homogeneity_direction_against_torch_jacobian(case):
    # homogeneity(theta) = g with J g = f_X(theta); verified with torch's J and f.
    model, theta, X, p, Jt = _jacobian_setup(case)
    with torch.no_grad():
        f = case.torch_fn(p, T(X)).numpy().reshape(-1)
    g = np.asarray(model.homogeneity(theta))
    assert g.shape == (model.num_params,)
    assert_close(Jt @ g, f, JAC_RTOL, JAC_ATOL, "J g = f")


def test_skipmlp_empty_equals_mlp():
    sizes = [4, 5, 6, 3]
    skip = gradbasis.SkipMLP(sizes, skip_from=(), activation="gelu", bias=True)
    mlp = gradbasis.MLP(sizes, activation="gelu", bias=True)
    assert skip.num_params == mlp.num_params
    rng = np.random.default_rng(5)
    theta = 0.5 * rng.standard_normal(mlp.num_params)
    X = rng.standard_normal((M, 4))
    np.testing.assert_array_equal(skip.forward(theta, X), mlp.forward(theta, X))
    np.testing.assert_array_equal(skip.jacobian(theta, X), mlp.jacobian(theta, X))


def test_leaky_relu_slope_spellings_agree():
    a = gradbasis.MLP([4, 5, 3], activation="leaky_relu(0.2)")
    b = gradbasis.MLP([4, 5, 3], activation="leaky_relu", negative_slope=0.2)
    rng = np.random.default_rng(6)
    theta = 0.5 * rng.standard_normal(a.num_params)
    X = rng.standard_normal((M, 4))
    np.testing.assert_array_equal(a.forward(theta, X), b.forward(theta, X))


# --------------------------------------------------------------------------
# Losses (torch, per sample: q, y of shape (d_y,))
# --------------------------------------------------------------------------


def t_squared(q, y):
    return ((q - y) ** 2).sum()


def t_cross_entropy(q, y):
    return -(y * torch.log_softmax(q, dim=-1)).sum()


def t_hinge(p):
    def f(q, y):
        return (torch.clamp(1.0 - y * q, min=0.0) ** p).sum()

    return f


@dataclasses.dataclass
class LossCase:
    name: str
    make: Callable
    torch_loss: Callable
    d_y: int
    hinge: bool = False

    def labels(self, rng, m):
        if self.name == "squared":
            return rng.standard_normal((m, self.d_y))
        if self.name == "ce":
            return rng.dirichlet(np.ones(self.d_y), size=m)  # soft labels
        y = rng.choice([-1.0, 1.0], size=(m, 1))
        y[0, 0], y[1, 0] = 1.0, -1.0  # both labels present
        return y


LOSS_CASES = [
    pytest.param(
        LossCase("squared", lambda: gradbasis.SquaredLoss(), t_squared, 3),
        id="squared",
    ),
    pytest.param(
        LossCase("ce", lambda: gradbasis.CrossEntropyLoss(), t_cross_entropy, 3),
        id="cross_entropy",
    ),
    pytest.param(
        LossCase("hinge2", lambda: gradbasis.SmoothedHingeLoss(p=2), t_hinge(2), 1, True),
        id="hinge_p2",
    ),
    pytest.param(
        LossCase("hinge3", lambda: gradbasis.SmoothedHingeLoss(p=3), t_hinge(3), 1, True),
        id="hinge_p3",
    ),
]


def check_hinge_margins(Q, Y):
    margins = 1.0 - Y * Q
    mn = float(np.min(np.abs(margins)))
    assert mn > KINK_GUARD, f"hinge margin too close to the kink ({mn}); pick another seed"
    return margins


@pytest.mark.parametrize("lc", LOSS_CASES)
def test_loss_methods_match_torch(lc):
    rng = np.random.default_rng(10)
    m = 11
    Q = 1.5 * rng.standard_normal((m, lc.d_y))
    Y = lc.labels(rng, m)
    if lc.hinge:
        margins = check_hinge_margins(Q, Y)
        # both the zero region and the active region must be exercised
        assert (margins > 0).any() and (margins < 0).any()
    loss = lc.make()
    Qt, Yt = T(Q), T(Y)
    val = vmap(lc.torch_loss)(Qt, Yt).numpy()
    g = vmap(tgrad(lc.torch_loss, argnums=0))(Qt, Yt).numpy()
    # reverse-over-reverse (torch.func.hessian would use forward AD, whose lazy
    # decomposition loading emits a torch.jit DeprecationWarning -> error here)
    h = vmap(jacrev(jacrev(lc.torch_loss, argnums=0), argnums=0))(Qt, Yt).numpy()
    assert_close(loss.value(Q, Y), val, LOSS_RTOL, LOSS_ATOL, "value")
    assert_close(loss.gradient(Q, Y), g, LOSS_RTOL, LOSS_ATOL, "gradient")
    assert_close(loss.hessian(Q, Y), h, LOSS_RTOL, LOSS_ATOL, "hessian")


@pytest.mark.parametrize("lc", LOSS_CASES)
def test_loss_conjugate_fenchel_young_at_torch_gradient(lc):
    # For convex l(., y): l(q) + l*(s) = <s, q> exactly when s = grad l(q).
    # s is taken from torch autograd, so this pins conjugate() against the oracle.
    rng = np.random.default_rng(12)
    m = 9
    Q = 1.5 * rng.standard_normal((m, lc.d_y))
    Y = lc.labels(rng, m)
    if lc.hinge:
        check_hinge_margins(Q, Y)
    loss = lc.make()
    Qt, Yt = T(Q), T(Y)
    val = vmap(lc.torch_loss)(Qt, Yt).numpy()
    S = vmap(tgrad(lc.torch_loss, argnums=0))(Qt, Yt).numpy()
    conj = np.asarray(loss.conjugate(S, Y))
    assert_close(conj, np.sum(S * Q, axis=1) - val, 1e-10, 1e-12, "Fenchel-Young")


# --------------------------------------------------------------------------
# Objective: gradient / Hessian-vector vs torch autograd of the same loss
# --------------------------------------------------------------------------


def _objective_models(d_y):
    return [
        ("mlp-tanh", MLPCase([3, 5, 4, d_y], "tanh")),
        ("mlp-mixed-gelu-softplus", MLPCase([3, 5, 4, d_y], ["gelu", "softplus"])),
        ("mlp-relu-nobias", MLPCase([3, 6, 5, d_y], "relu", bias=False)),
        ("skip-from01-sigmoid", SkipCase([3, 5, 4, d_y], (0, 1), "sigmoid")),
        ("resnet-preact-relu", ResNetCase(3, d_y, PreActCase(3, 4, 2, "relu", True))),
        ("resnet-mlp-tanh", ResNetCase(3, d_y, MLPCase([3, 4, 5], "tanh"))),
    ]


OBJ_CASES = [
    pytest.param(lc.values[0], mid, idx, id=f"{lc.id}-{mid}")
    for lc in LOSS_CASES
    for idx, (mid, _) in enumerate(_objective_models(1))
]


def _objective_setup(lc, idx, seed, uniform=False):
    mcase = _objective_models(lc.d_y)[idx][1]
    model, theta, X = make_data(mcase, seed)
    rng = np.random.default_rng(seed + 100)
    Y = lc.labels(rng, M)
    w = rng.uniform(0.2, 2.0, size=M)  # non-uniform, not normalised
    weights = None if uniform else w
    w_eff = np.full(M, 1.0 / M) if uniform else w
    p = params_to_torch(model, theta)
    check_kinks(mcase, p, X)
    if lc.hinge:
        with torch.no_grad():
            check_hinge_margins(mcase.torch_fn(p, T(X)).numpy(), Y)
    obj = gradbasis.Objective(model, lc.make(), X, Y, weights=weights)
    names_shapes = mcase.names_shapes()
    Xt, Yt, wt = T(X), T(Y), T(w_eff)

    def L(theta_t):
        params = torch_unflatten_flat(theta_t, names_shapes)
        Qt = mcase.torch_fn(params, Xt)
        return (wt * vmap(lc.torch_loss)(Qt, Yt)).sum()

    return mcase, model, obj, theta, X, Y, w_eff, L


@pytest.mark.parametrize("lc,mid,idx", OBJ_CASES)
def test_objective_gradient_and_hvp_match_torch(lc, mid, idx):
    mcase, model, obj, theta, X, Y, w, L = _objective_setup(lc, idx, seed=20 + idx)
    th = T(theta).requires_grad_(True)
    val = L(th)
    (g,) = torch.autograd.grad(val, th)
    g = g.numpy()
    val = float(val.detach())

    assert_close(obj.value(theta), val, OBJ_RTOL, OBJ_ATOL, "value")
    assert_close(obj.gradient(theta), g, OBJ_RTOL, OBJ_ATOL, "gradient")
    v2, g2 = obj.value_and_gradient(theta)
    assert_close(v2, val, OBJ_RTOL, OBJ_ATOL, "value_and_gradient value")
    assert_close(g2, g, OBJ_RTOL, OBJ_ATOL, "value_and_gradient gradient")

    rng = np.random.default_rng(7)
    for _ in range(2):
        v = rng.standard_normal(model.num_params)
        _, hv = torch.autograd.functional.hvp(L, T(theta), T(v))
        assert_close(obj.hessian_vector(theta, v), hv.numpy(), OBJ_RTOL, OBJ_ATOL, "hessian_vector")


@pytest.mark.parametrize("lc", LOSS_CASES)
def test_objective_residual_duals_match_torch(lc):
    # u_i = w_i * grad loss(f(x_i), y_i) = dL/dQ_i
    mcase, model, obj, theta, X, Y, w, _ = _objective_setup(lc, 0, seed=40)
    p = params_to_torch(model, theta)
    with torch.no_grad():
        Q = mcase.torch_fn(p, T(X))
    Qt = Q.clone().requires_grad_(True)
    Lq = (T(w) * vmap(lc.torch_loss)(Qt, T(Y))).sum()
    (u,) = torch.autograd.grad(Lq, Qt)
    assert_close(obj.residual_duals(theta), u.numpy(), OBJ_RTOL, OBJ_ATOL, "residual_duals")


@pytest.mark.parametrize("lc", LOSS_CASES)
def test_objective_default_weights_are_uniform(lc):
    mcase, model, obj, theta, X, Y, w, L = _objective_setup(lc, 1, seed=50, uniform=True)
    th = T(theta).requires_grad_(True)
    val = L(th)
    (g,) = torch.autograd.grad(val, th)
    val = float(val.detach())
    assert_close(obj.value(theta), val, OBJ_RTOL, OBJ_ATOL, "value (default weights)")
    assert_close(obj.gradient(theta), g.numpy(), OBJ_RTOL, OBJ_ATOL, "gradient (default weights)")
