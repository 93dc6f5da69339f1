"""gradbasis.torch.TorchModel: any nn.Module ending in an nn.Linear as a gradbasis model.

Oracles and tolerances:

* on an MLP, the C++ MLP (an independent implementation of every derivative): J, K, the
  gradient and Hessian-vector products agree to 1e-12 relative (both are exact float64
  evaluations of the same sums, a few ulps apart); Theorem 1's verdict is the same and its
  ``lower`` agrees to 1e-10 max(1, |L|) (the dense SVD of J and of J with permuted columns
  differ by rounding amplified by the solve's conditioning, ~1e-13 here);
* on a CNN, a residual block with batch norm (eval) and an embedding model, central finite
  differences of f: (f(theta + h v) - f(theta - h v)) / 2h against J v, with h = 1e-5 and
  |theta| ~ 1, whose truncation error (h^2 |f'''| ~ 1e-10) and rounding (eps |f| / h ~ 1e-11)
  are far below the 1e-7 relative tolerance, for directions that stay in theta's activation
  region (``activation_pattern`` equal at theta +- h v);
* Assumption 2: J g(theta) = f_X(theta) to 1e-12 relative.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import gradbasis as gb  # noqa: E402
from gradbasis.torch import TorchModel, UnsupportedModuleError, as_model, to_module  # noqa: E402

REL = 1e-12


def rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


# ----------------------------------------------------------------------------- modules
class SmallCNN(nn.Module):
    """conv -> relu -> max-pool -> conv -> tanh -> flatten -> linear (one-channel 8x8)."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 6, 3)
        self.fc = nn.Linear(6 * 2 * 2, classes)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = torch.tanh(self.conv2(x))
        return self.fc(x.flatten(1))


class ResidualBlockNet(nn.Module):
    """A ResNet basic block with batch norm, a skip, global average pooling, a linear head."""

    def __init__(self, classes: int = 2):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, classes)

    def forward(self, x):
        h = torch.relu(self.bn1(self.stem(x)))
        h = torch.relu(h + self.bn2(self.conv(h)))
        return self.head(h.mean(dim=(2, 3)))


class TextModel(nn.Module):
    """Embedding of 5 tokens -> flatten -> linear -> gelu -> linear."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 3)
        self.hidden = nn.Linear(15, 6)
        self.out = nn.Linear(6, 2)

    def forward(self, tokens):
        return self.out(nn.functional.gelu(self.hidden(self.embed(tokens).flatten(1))))


def with_running_stats(net: ResidualBlockNet) -> ResidualBlockNet:
    g = torch.Generator().manual_seed(3)
    for bn in (net.bn1, net.bn2):
        bn.running_mean.copy_(torch.randn(4, generator=g) * 0.3)
        bn.running_var.copy_(torch.rand(4, generator=g) + 0.5)
        bn.weight.data.copy_(torch.rand(4, generator=g) + 0.5)
        bn.bias.data.copy_(torch.randn(4, generator=g) * 0.2)
    return net.eval()


def images(m: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(m, 64))


# ----------------------------------------------------------------------------- MLP agreement
@pytest.fixture(scope="module")
def mlp_pair():
    mlp = gb.MLP([4, 6, 5, 3], "tanh")
    theta = mlp.init(1)
    seq = to_module(mlp, theta)
    tm = TorchModel(seq, 4)
    # theta_torch = theta_mlp[perm]: pass the indices through the two layouts
    idx = mlp.unflatten(np.arange(mlp.num_params, dtype=float))
    perm = np.concatenate(
        [idx[f"{k}{l}"].ravel(order="C") for l in range(1, 4) for k in ("W", "b")]
    ).astype(int)
    X = np.random.default_rng(0).normal(size=(12, 4))
    Y = np.eye(3)[np.arange(12) % 3]
    return mlp, theta, tm, perm, X, Y


def test_theta_order_is_named_parameters_row_major(mlp_pair):
    mlp, theta, tm, perm, X, Y = mlp_pair
    assert [s.name for s in tm.param_specs] == [
        "0.weight",
        "0.bias",
        "2.weight",
        "2.bias",
        "4.weight",
        "4.bias",
    ]
    np.testing.assert_array_equal(tm.theta0, theta[perm])
    vec = torch.nn.utils.parameters_to_vector(tm.module.parameters()).numpy()
    np.testing.assert_array_equal(tm.theta0, vec)
    params = tm.unflatten(tm.theta0)
    np.testing.assert_array_equal(params["2.weight"], mlp.unflatten(theta)["W2"])
    np.testing.assert_array_equal(tm.flatten(params), tm.theta0)


def test_mlp_agreement_jacobian_gram_gradient_hvp(mlp_pair):
    mlp, theta, tm, perm, X, Y = mlp_pair
    t = theta[perm]
    assert rel(tm.forward(t, X), mlp.forward(theta, X)) < REL
    assert rel(tm.jacobian(t, X), mlp.jacobian(theta, X)[:, perm]) < REL
    K = tm.gram(t, X)
    assert rel(K, mlp.gram(theta, X)) < REL
    np.testing.assert_array_equal(K, K.T)
    assert rel(tm.gram_diagonal(t, X), mlp.gram_diagonal(theta, X)) < REL
    v = np.random.default_rng(1).normal(size=mlp.num_params)
    assert rel(tm.jvp(t, X, v[perm]), mlp.jvp(theta, X, v)) < REL
    U = np.random.default_rng(2).normal(size=(12, 3))
    assert rel(tm.vjp(t, X, U), mlp.vjp(theta, X, U)[perm]) < REL
    for loss in ("squared", "cross_entropy"):
        a, b = gb.Objective(tm, loss, X, Y), gb.Objective(mlp, loss, X, Y)
        assert abs(a.value(t) - b.value(theta)) <= REL * abs(b.value(theta))
        assert rel(a.gradient(t), b.gradient(theta)[perm]) < REL
        assert rel(a.hessian_vector(t, v[perm]), b.hessian_vector(theta, v)[perm]) < REL


def test_mlp_agreement_theorem1_and_classify_point(mlp_pair):
    mlp, theta, tm, perm, X, Y = mlp_pair
    b = gb.Objective(mlp, "squared", X, Y)
    fit = gb.minimize(b, theta, gtol=1e-11)
    a = gb.Objective(tm, "squared", X, Y)
    for strategy in ("dense", "gram"):
        ra = gb.theorem1(a, fit.theta[perm], strategy=strategy)
        rb = gb.theorem1(b, fit.theta, strategy=strategy)
        assert ra.verdict == rb.verdict, (ra.reason, rb.reason)
        assert abs(ra.lower - rb.lower) <= 1e-10 * max(1.0, abs(rb.loss_value))
    pa, pb = gb.classify_point(a, fit.theta[perm]), gb.classify_point(b, fit.theta)
    assert pa.kind == pb.kind
    scale = max(abs(pb.max_eigenvalue), 1.0)
    assert abs(pa.min_eigenvalue - pb.min_eigenvalue) <= 1e-9 * scale
    assert abs(pa.max_eigenvalue - pb.max_eigenvalue) <= 1e-9 * scale


def test_as_model_prefers_the_core_for_sequential_mlps(mlp_pair):
    mlp, theta, tm, perm, X, Y = mlp_pair
    seq = to_module(mlp, theta)
    assert isinstance(as_model(seq).model, gb.MLP)
    assert isinstance(as_model(seq, prefer_core=False).model, TorchModel)
    assert isinstance(as_model(SmallCNN(), (1, 8, 8)).model, TorchModel)


# ----------------------------------------------------------------------------- other networks
def fd_check(model: TorchModel, theta: np.ndarray, X: np.ndarray, seed: int = 0) -> int:
    """J v against central differences of f along random directions in theta's region;
    returns how many directions were compared."""
    rng = np.random.default_rng(seed)
    J = model.jacobian(theta, X)
    h, used = 1e-5, 0
    region = model.activation_pattern(theta, X)
    for _ in range(8):
        v = rng.normal(size=theta.size)
        v /= np.linalg.norm(v)
        if not all(
            all(
                np.array_equal(a, b)
                for a, b in zip(region, model.activation_pattern(theta + s * h * v, X), strict=True)
            )
            for s in (1, -1)
        ):
            continue
        fd = (model.forward(theta + h * v, X) - model.forward(theta - h * v, X)).ravel() / (2 * h)
        assert rel(J @ v, fd) < 1e-7
        used += 1
    return used


def assumption2_holds(model: TorchModel, theta: np.ndarray, X: np.ndarray) -> None:
    J = model.jacobian(theta, X)
    assert rel(J @ model.homogeneity(theta), model.forward(theta, X).ravel()) < REL
    assert gb.assumption2(model, theta, X).verdict == gb.Verdict.HOLDS


def test_cnn_jacobian_against_finite_differences_and_assumption2():
    torch.manual_seed(0)
    model = TorchModel(SmallCNN(), (1, 8, 8))
    theta, X = model.theta0, images(6)
    assert model.output_layer == "fc"
    assert fd_check(model, theta, X) >= 4
    assumption2_holds(model, theta, X)
    margin, located, unknown = model.kink_report(theta, X)
    assert 0 < margin < np.inf and unknown == () and "relu" in located and "max_pool2d" in located


def test_residual_block_with_batch_norm_in_eval_mode():
    torch.manual_seed(1)
    net = with_running_stats(ResidualBlockNet())
    model = TorchModel(net, (1, 8, 8))
    theta, X = model.theta0, images(5, 1)
    with torch.no_grad():
        expected = net.double()(torch.from_numpy(X.reshape(5, 1, 8, 8))).numpy()
    assert rel(model.forward(theta, X), expected) < REL
    assert fd_check(model, theta, X, seed=1) >= 4
    assumption2_holds(model, theta, X)


def test_embedding_model_takes_token_indices():
    torch.manual_seed(2)
    model = TorchModel(TextModel(), (5,), input_dtype="long")
    X = np.random.default_rng(3).integers(0, 20, size=(7, 5)).astype(float)
    theta = model.theta0
    assert fd_check(model, theta, X) >= 4
    assumption2_holds(model, theta, X)
    assert model.kink_margin(theta, X) == np.inf  # gelu and embedding lookups are smooth in theta
    with pytest.raises(gb.DTypeError, match="whole numbers"):
        model.forward(theta, X + 0.5)


def test_gram_in_chunks_matches_jjt_and_cross_gram():
    torch.manual_seed(4)
    model = TorchModel(SmallCNN(), (1, 8, 8), chunk_size=3)
    theta, X, X2 = model.theta0, images(10, 2), images(4, 3)
    J, J2 = model.jacobian(theta, X), model.jacobian(theta, X2)
    K = model.gram(theta, X, memory_budget=8 * (30 * 30) + 8 * 2 * 3 * 3 * model.num_params + 1)
    assert rel(K, J @ J.T) < REL
    np.testing.assert_array_equal(K, K.T)
    assert rel(model.gram(theta, X, X2), J @ J2.T) < REL
    w = {"fc.weight": 2.0, "conv1.bias": 0.0}
    C = np.ones(model.num_params)
    for name, c in w.items():
        s = next(p for p in model.param_specs if p.name == name)
        C[s.offset : s.offset + s.size] = c
    assert rel(model.gram(theta, X, weights=w), (J * C) @ J.T) < REL
    assert rel(model.gram_diagonal(theta, X, weights=w), np.einsum("ij,ij,j->i", J, J, C)) < REL
    with pytest.raises(gb.MemoryBudgetError):
        model.gram(theta, X, memory_budget=1000)


# ----------------------------------------------------------------------------- kinks
def test_kink_margin_is_the_smallest_rectifier_input():
    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(4, 7), nn.ReLU(), nn.Linear(7, 2))
    model = TorchModel(net, 4)
    X = np.random.default_rng(5).normal(size=(9, 4))
    pre = X @ net[0].weight.detach().numpy().T + net[0].bias.detach().numpy()
    assert model.kink_margin(model.theta0, X) == pytest.approx(np.abs(pre).min(), rel=1e-14)


class PooledLinear(nn.Module):
    """Four linear units pooled by one 2x2 max-pool, then a linear output."""

    def __init__(self):
        super().__init__()
        self.units, self.out = nn.Linear(3, 4), nn.Linear(1, 2)

    def forward(self, x):
        return self.out(nn.functional.max_pool2d(self.units(x).reshape(-1, 1, 2, 2), 2).flatten(1))


def test_a_max_pool_tie_of_different_functions_is_a_kink():
    """Units 0 and 1 are equal at x = (1, 1, 0) but are different functions of theta: the
    pool's maximum is not differentiable there (theta in Omega)."""
    net = PooledLinear()
    with torch.no_grad():
        net.units.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0]]))
        net.units.bias.copy_(torch.tensor([0.0, 0, -1, -1]))
    model = TorchModel(net, 3)
    X = np.array([[1.0, 1.0, 0.0], [2.0, 0.5, 0.0]])
    assert model.kink_margin(model.theta0, X) == 0.0
    assert model.kink_margin(model.theta0, X[1:]) == pytest.approx(1.5)
    obj = gb.Objective(model, "squared", X, np.zeros((2, 2)))
    assert gb.theorem1(obj, model.theta0).verdict == gb.Verdict.DOES_NOT_APPLY


def test_ties_of_identical_functions_are_no_kink():
    """A constant image makes the conv's interior outputs equal *and* equal as functions of
    theta (same weights on the same values): max-pooling them is smooth, and the zero
    background of relu'd constant patches is no kink either."""
    torch.manual_seed(6)
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(18, 2)
    )
    model = TorchModel(net, (1, 8, 8))
    X = np.ones((3, 64))
    margin = model.kink_margin(model.theta0, X)
    assert 0 < margin < np.inf
    conv = net[0]
    pre = (conv.weight.detach().double().sum(dim=(1, 2, 3)) + conv.bias.detach().double()).numpy()
    assert margin == pytest.approx(np.abs(pre).min(), rel=1e-12)  # only the relu inputs count


class AbsNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 4), nn.Linear(4, 1)

    def forward(self, x):
        return self.b(torch.abs(self.a(x)))


def test_unlocated_kinks_make_the_margin_unknown_and_block_holds():
    torch.manual_seed(7)
    model = TorchModel(AbsNet(), 3)
    X = np.random.default_rng(7).normal(size=(20, 3))
    margin, _, unknown = model.kink_report(model.theta0, X)
    assert np.isnan(margin) and unknown == ("abs",)
    obj = gb.Objective(model, "squared", X, np.random.default_rng(8).normal(size=(20, 1)))
    fit = gb.minimize(obj, model.theta0, gtol=1e-11)
    result = gb.theorem1(obj, fit.theta)
    assert result.verdict != gb.Verdict.HOLDS
    assert "not established" in result.reason or result.verdict == gb.Verdict.DOES_NOT_APPLY


# ----------------------------------------------------------------------------- refusals
class Softmaxed(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return torch.softmax(self.fc(x), dim=1)


class TiedOutput(nn.Module):
    """The output layer's weight also acts earlier: f is not linear in it."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        return self.fc(torch.tanh(self.fc(x)))


@pytest.mark.parametrize(
    "make, shape, match",
    [
        (Softmaxed, 3, "not the output of an nn.Linear"),
        (TiedOutput, 3, "not linear in the output layer"),
        (
            lambda: nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)),
            3,
            r"'1' \(BatchNorm1d\) is in training mode",
        ),
        (
            lambda: nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 2)),
            3,
            r"'1' \(Dropout\) is in training mode",
        ),
        (lambda: nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)), 5, "failed"),
        (lambda: nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)), (0,), "input_shape"),
    ],
)
def test_unsupported_modules_are_named(make, shape, match):
    with pytest.raises((UnsupportedModuleError, gb.ShapeError), match=match):
        TorchModel(make(), shape)


def test_graph_only_checks_refuse_clearly():
    model = TorchModel(SmallCNN(), (1, 8, 8))
    with pytest.raises(gb.UnsupportedModelError, match="graph model"):
        model.dense_layers()


# ----------------------------------------------------------------------------- the rest
def test_init_pickle_and_minimize():
    torch.manual_seed(8)
    model = TorchModel(SmallCNN(), (1, 8, 8))
    a, b = model.init(3), model.init(3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, model.init(4))
    clone = pickle.loads(pickle.dumps(model))
    X = images(4, 9)
    np.testing.assert_array_equal(clone.forward(a, X), model.forward(a, X))
    Y = np.eye(3)[[0, 1, 2, 0]]
    obj = gb.Objective(model, "cross_entropy", X, Y)
    fit = gb.minimize(obj, a, method="lbfgs", max_iter=50)
    assert fit.value < obj.value(a)
    est = gb.memory_estimate(obj)
    assert est.matrix_free > 0 and est.flops["matrix_free"] > 0


def test_certify_a_saved_cnn_from_the_command_line(tmp_path):
    import json

    from gradbasis.cli import main

    torch.manual_seed(9)
    net = SmallCNN(classes=10).double()
    net.gradbasis_loss = "cross_entropy"  # read when --loss is not given
    path = tmp_path / "cnn.pt"
    torch.save(net, path)
    out = tmp_path / "r.json"
    argv = ["certify", "--torch", str(path), "--data", "digits", "--max-samples", "40", "--quiet"]
    assert main([*argv, "--output", str(out), "--report", str(tmp_path / "rep")]) == 0
    payload = json.loads(out.read_text())
    assert payload["torch"]["path"] == "TorchModel (torch.func)"
    assert payload["torch"]["input_shape"] == [1, 8, 8]
    assert payload["torch"]["max |f_torch - f| on the data"] < 1e-12
    assert payload["setting"]["loss"] == "cross_entropy"
    # a random point is not critical: the certificate says so rather than "holds"
    assert payload["theorem1"]["verdict"] == "does not apply"
    assert "not a critical point" in payload["theorem1"]["reason"]
    assert (tmp_path / "rep" / "report.html").is_file()


def test_sweep_cells_of_a_torch_module_factory():
    from gradbasis import sweep

    config = {
        "grid": {
            "data": [{"name": "digits", "max_samples": 30}],
            "models": ["torch:torch_factories:tiny_cnn"],
            "widths": [2],
            "activations": ["tanh"],
            "losses": ["cross_entropy"],
            "seeds": [0, 1],
        },
        "train": {"max_iter": 300},
        "checks": {"run": ["classify", "theorem1"]},
    }
    records = sweep.run(config, jobs=1, progress=False)
    assert len(records) == 2 and all(r["error"] is None for r in records), records
    assert all(r["checks"]["theorem1"]["num_params"] == 2 * 9 + 2 + 18 * 10 + 10 for r in records)
    # different seeds, different starting points: torch's own init, seeded
    assert records[0]["training"]["value"] != records[1]["training"]["value"]
    bad = {**config, "checks": {"run": ["theorem2"]}}
    with pytest.raises(gb.SweepConfigError, match="need a gradbasis graph model"):
        sweep.run(bad, jobs=1, progress=False)
