"""gradbasis.torch: nn.Sequential MLPs and eq. 4.1 ResNets to gradbasis and back, the
``certify --torch`` command, and the L-BFGS example.

Tolerance: both sides evaluate the same few float64 mat-vecs and elementwise functions, so
outputs agree to a few ulps; checked at rtol 1e-12 with an absolute floor of 1e-12 (entries that
cancel to ~0). Softplus pre-activations stay far below torch's threshold of 20 on these data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import gradbasis as gb  # noqa: E402
from gradbasis.cli import main  # noqa: E402
from gradbasis.datasets import load_iris  # noqa: E402
from gradbasis.torch import (  # noqa: E402
    ResNetModule,
    TorchFileError,
    UnsupportedModuleError,
    from_module,
    load_module,
    output_difference,
    resnet_from_modules,
    resnet_to_module,
    to_module,
)

ROOT = Path(__file__).resolve().parent.parent
RTOL, ATOL = 1e-12, 1e-12

TORCH_ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu(0.2)": lambda: nn.LeakyReLU(0.2),
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
    "gelu": nn.GELU,
    "identity": nn.Identity,
}


def random_mlp(act: str, bias: bool, seed: int = 0, dtype=torch.float64) -> nn.Sequential:
    """4 -> 5 -> 6 -> 3 with the activation after both hidden layers; biases made nonzero."""
    torch.manual_seed(seed)
    make = TORCH_ACTIVATIONS[act]
    net = nn.Sequential(
        nn.Linear(4, 5, bias=bias),
        make(),
        nn.Linear(5, 6, bias=bias),
        make(),
        nn.Linear(6, 3, bias=bias),
    ).to(dtype)
    if bias:
        with torch.no_grad():
            for layer in net[::2]:
                layer.bias.normal_(0.0, 0.5)
    return net


def torch_outputs(module: nn.Module, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.tensor(X)).numpy()


@pytest.fixture
def X(rng) -> np.ndarray:
    return rng.normal(size=(9, 4))


# ----------------------------------------------------------------------------- agreement
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("act", sorted(TORCH_ACTIVATIONS))
def test_imported_mlp_agrees_with_torch(act, bias, X):
    net = random_mlp(act, bias)
    model, theta = from_module(net)
    assert isinstance(model, gb.MLP) and model.layer_sizes == (4, 5, 6, 3) and model.bias is bias
    # nn.Identity is dropped, so its hidden layers have the identity activation.
    assert [str(a) for a in model.activations] == [act, act]
    np.testing.assert_allclose(model.forward(theta, X), torch_outputs(net, X), rtol=RTOL, atol=ATOL)
    assert output_difference(net, model, theta, X) <= ATOL


def test_theta_follows_the_gradbasis_order(X):
    net = random_mlp("tanh", True)
    model, theta = from_module(net)
    first = net[0]
    W1 = first.weight.detach().numpy()
    np.testing.assert_array_equal(theta[:20], W1.reshape(-1, order="F"))  # vec(W1) column-major ...
    np.testing.assert_array_equal(theta[20:25], first.bias.detach().numpy())  # ... then b1
    np.testing.assert_array_equal(theta[-3:], net[4].bias.detach().numpy())
    assert theta.size == sum(p.numel() for p in net.parameters())


def test_layer_arrangements_map_as_documented(X):
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Identity(),
        nn.Sequential(nn.Linear(4, 5), nn.GELU()),
        nn.Linear(5, 6),  # no activation: a hidden layer with the identity activation
        nn.Linear(6, 2),
        nn.LeakyReLU(0.3),
        nn.Identity(),
        nn.Linear(2, 3),
        nn.Identity(),
    ).double()
    model, theta = from_module(net)
    assert model.layer_sizes == (4, 5, 6, 2, 3)
    assert [str(a) for a in model.activations] == ["gelu", "identity", "leaky_relu(0.3)"]
    np.testing.assert_allclose(model.forward(theta, X), torch_outputs(net, X), rtol=RTOL, atol=ATOL)


def test_a_single_linear_layer_is_an_mlp_without_hidden_layers(X):
    net = nn.Sequential(nn.Linear(4, 2, dtype=torch.float64))
    model, theta = from_module(net)
    assert model.layer_sizes == (4, 2) and model.activations == ()
    np.testing.assert_allclose(model.forward(theta, X), torch_outputs(net, X), rtol=RTOL, atol=ATOL)


def test_float32_modules_are_widened_exactly(X):
    net32 = random_mlp("softplus", True, dtype=torch.float32)
    model, theta = from_module(net32)
    assert theta.dtype == np.float64
    np.testing.assert_array_equal(
        theta, from_module(random_mlp("softplus", True, dtype=torch.float32).double())[1]
    )
    # The float64 model is the float32 weights exactly; the float32 module rounds its arithmetic.
    np.testing.assert_allclose(
        model.forward(theta, X), torch_outputs(net32.double(), X), rtol=RTOL, atol=ATOL
    )
    assert (
        0.0
        < output_difference(random_mlp("softplus", True, dtype=torch.float32), model, theta, X)
        < 1e-5
    )


def test_softplus_differs_only_past_torchs_threshold_as_documented():
    # torch's Softplus returns x itself where x > 20; gradbasis keeps log(1 + e^x) exact.
    net = nn.Sequential(nn.Linear(1, 1), nn.Softplus(), nn.Linear(1, 1)).double()
    with torch.no_grad():
        for layer in (net[0], net[2]):
            layer.weight.fill_(1.0)
            layer.bias.fill_(0.0)
    model, theta = from_module(net)
    below = np.array([[-30.0], [-1.0], [0.0], [5.0], [19.9]])
    assert output_difference(net, model, theta, below) <= 1e-12 * 20
    past = np.array([[21.0]])
    np.testing.assert_allclose(
        output_difference(net, model, theta, past), np.log1p(np.exp(-21.0)), rtol=1e-3
    )


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("act", sorted(TORCH_ACTIVATIONS))
def test_round_trip_gives_the_same_theta(act, bias, rng, X):
    model = gb.MLP([4, 5, 3, 2], [act, "tanh"], bias=bias)
    theta = model.init(seed=3) + 0.1 * rng.normal(size=model.num_params)
    net = to_module(model, theta)
    assert all(p.dtype == torch.float64 for p in net.parameters())
    np.testing.assert_allclose(torch_outputs(net, X), model.forward(theta, X), rtol=RTOL, atol=ATOL)
    back, theta_back = from_module(net)
    np.testing.assert_array_equal(theta_back, theta)
    assert back.layer_sizes == model.layer_sizes and back.activations == model.activations


def test_round_trip_from_torch_gives_the_same_weights():
    net = random_mlp("gelu", True)
    again = to_module(*from_module(net))
    for (name, p), (name2, q) in zip(
        net.state_dict().items(), again.state_dict().items(), strict=True
    ):
        assert name == name2
        assert torch.equal(p, q)


# ----------------------------------------------------------------------------- ResNet of eq. 4.1
def make_resnet(seed: int = 0) -> ResNetModule:
    torch.manual_seed(seed)
    z = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    return ResNetModule(nn.Linear(4, 2, bias=False), nn.Linear(3, 4, bias=False), z).double()


def test_resnet_recipe_agrees_with_torch(X):
    net = make_resnet()
    model, theta = resnet_from_modules(net.W, net.R, net.z)
    assert isinstance(model, gb.ResNet) and isinstance(model.residual, gb.MLP)
    assert (model.input_dim, model.output_dim, model.residual.output_dim) == (4, 2, 3)
    # theta = [vec W, vec R, u], each vec column-major.
    np.testing.assert_array_equal(theta[:8], net.W.weight.detach().numpy().reshape(-1, order="F"))
    np.testing.assert_array_equal(theta[8:20], net.R.weight.detach().numpy().reshape(-1, order="F"))
    np.testing.assert_array_equal(theta[20:], from_module(net.z).theta)
    np.testing.assert_allclose(model.forward(theta, X), torch_outputs(net, X), rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(
        from_module(net).theta, theta
    )  # from_module reads a ResNetModule too


def test_resnet_round_trip(rng, X):
    model = gb.ResNet(4, 2, gb.MLP([4, 5, 3], "softplus", bias=False))
    theta = model.init(seed=1) + 0.1 * rng.normal(size=model.num_params)
    net = resnet_to_module(model, theta)
    np.testing.assert_allclose(torch_outputs(net, X), model.forward(theta, X), rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(resnet_from_modules(net.W, net.R, net.z).theta, theta)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "layers, words",
    [
        (
            lambda: [nn.Linear(4, 5), nn.Dropout(0.1), nn.Linear(5, 3)],
            ["layer 1", "Dropout", "not supported"],
        ),
        (lambda: [nn.Linear(4, 5), nn.ELU(), nn.Linear(5, 3)], ["layer 1", "ELU"]),
        (
            lambda: [nn.Linear(4, 5), nn.Softplus(beta=2.0), nn.Linear(5, 3)],
            ["layer 1", "Softplus", "beta=2.0"],
        ),
        (
            lambda: [nn.Linear(4, 5), nn.Softplus(threshold=10.0), nn.Linear(5, 3)],
            ["threshold=10.0"],
        ),
        (
            lambda: [nn.Linear(4, 5), nn.GELU(approximate="tanh"), nn.Linear(5, 3)],
            ["layer 1", "GELU", "'tanh'"],
        ),
        (lambda: [nn.Linear(4, 5), nn.Linear(5, 3, bias=False)], ["bias", "['0']", "['1']"]),
        (lambda: [nn.Tanh(), nn.Linear(4, 3)], ["layer 0", "Tanh", "before the first nn.Linear"]),
        (
            lambda: [nn.Linear(4, 3), nn.Sigmoid()],
            ["layer 1 (Sigmoid)", "after the last nn.Linear"],
        ),
        (
            lambda: [nn.Linear(4, 5), nn.Tanh(), nn.ReLU(), nn.Linear(5, 3)],
            ["layer 2 (ReLU) follows layer 1 (Tanh)"],
        ),
        (lambda: [nn.Identity()], ["no nn.Linear"]),
        (
            lambda: [nn.Linear(4, 5), nn.Sequential(nn.Tanh(), nn.Conv1d(1, 1, 1))],
            ["layer 1.1", "Conv1d"],
        ),
    ],
)
def test_unsupported_layers_are_named(layers, words):
    with pytest.raises(UnsupportedModuleError) as err:
        from_module(nn.Sequential(*layers()))
    assert isinstance(err.value, gb.UnknownNameError)
    for word in words:
        assert word in str(err.value)


def test_subclasses_hooks_and_non_sequentials_are_refused():
    class Doubled(nn.Sequential):
        def forward(self, x):
            return 2 * super().forward(x)

    class MyLinear(nn.Linear):
        pass

    with pytest.raises(UnsupportedModuleError, match="overrides nn.Sequential.forward"):
        from_module(Doubled(nn.Linear(4, 3)))
    with pytest.raises(UnsupportedModuleError, match=r"layer 0 \(MyLinear\)"):
        from_module(nn.Sequential(MyLinear(4, 3)))
    hooked = nn.Sequential(nn.Linear(4, 3))
    hooked[0].register_forward_hook(lambda mod, inp, out: 2 * out)
    with pytest.raises(UnsupportedModuleError, match="forward hooks"):
        from_module(hooked)
    with pytest.raises(UnsupportedModuleError, match="got Linear"):
        from_module(nn.Linear(4, 3))
    with pytest.raises(UnsupportedModuleError, match="state_dict holds no architecture"):
        from_module(nn.Sequential(nn.Linear(4, 3)).state_dict())


def test_bad_shapes_and_values_are_refused():
    with pytest.raises(
        gb.ShapeError, match=r"layer 2 \(Linear\) takes 6 inputs but layer 0 \(Linear\) gives 5"
    ):
        from_module(nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(6, 3)))
    complex_net = nn.Sequential(nn.Linear(4, 3, dtype=torch.complex128))
    with pytest.raises(gb.DTypeError, match="complex128"):
        from_module(complex_net)
    nan_net = nn.Sequential(nn.Linear(4, 3))
    with torch.no_grad():
        nan_net[0].weight[1, 2] = float("nan")
    with pytest.raises(gb.NonFiniteError):
        from_module(nan_net)


def test_resnet_parts_are_checked():
    net = make_resnet()
    with pytest.raises(UnsupportedModuleError, match="W of the ResNet has a bias"):
        resnet_from_modules(nn.Linear(4, 2), net.R, net.z)
    with pytest.raises(UnsupportedModuleError, match="R of the ResNet must be an nn.Linear"):
        resnet_from_modules(net.W, nn.Identity(), net.z)
    with pytest.raises(gb.ShapeError, match="R must map 3 -> 4"):
        resnet_from_modules(net.W, nn.Linear(5, 4, bias=False), net.z)
    with pytest.raises(UnsupportedModuleError, match="for a ResNet use resnet_to_module"):
        to_module(gb.ResNet(4, 2, gb.MLP([4, 3], [])), np.zeros(8 + 12 + 15))
    preact = gb.ResNet(4, 2, gb.PreActResidualStack(4, hidden=3))
    with pytest.raises(UnsupportedModuleError, match="PreActResidualStack residual"):
        resnet_to_module(preact, preact.init())
    with pytest.raises(UnsupportedModuleError, match="SkipMLP"):
        to_module(
            gb.SkipMLP([4, 3, 2], skip_from=[0]),
            np.zeros(gb.SkipMLP([4, 3, 2], skip_from=[0]).num_params),
        )


def test_load_module_errors(tmp_path):
    with pytest.raises(TorchFileError, match="does not exist"):
        load_module(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(TorchFileError, match="cannot load"):
        load_module(garbage)
    weights = tmp_path / "weights.pt"
    torch.save(nn.Sequential(nn.Linear(4, 3)).state_dict(), weights)
    with pytest.raises(TorchFileError, match="state_dict holds no architecture"):
        load_module(weights)


# ----------------------------------------------------------------------------- the command
def small_iris_net(seed: int = 4) -> nn.Sequential:
    """4 -> 2 -> 3 tanh, the size of the command's default model (19 parameters)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 2), nn.Tanh(), nn.Linear(2, 3)).double()


def saved_module(tmp_path: Path, net: nn.Module) -> str:
    path = tmp_path / "net.pt"
    torch.save(net, path)
    return str(path)


def iris_loss_and_gradient_norm(net: nn.Module) -> tuple[float, float]:
    """L and ||grad L|| of the mean squared loss on the built-in (standardized) Iris data, by autograd."""
    data = load_iris()
    net.zero_grad()
    loss = (
        ((net(torch.tensor(data.X)) - torch.tensor(np.eye(3)[data.labels])) ** 2).sum(dim=1).mean()
    )
    loss.backward()
    return float(loss.detach()), float(torch.cat([p.grad.ravel() for p in net.parameters()]).norm())


def test_certify_torch_certifies_the_imported_point_as_is(tmp_path, capsys):
    net = small_iris_net()
    path = saved_module(tmp_path, net)
    out = tmp_path / "report.json"
    assert main(["certify", "--torch", path, "--output", str(out)]) == 0
    assert f"from {path}" in capsys.readouterr().out
    report = json.loads(out.read_text())
    np.testing.assert_array_equal(report["theta"], from_module(net).theta)  # not trained
    assert report["training"]["trained"] is False
    assert (
        report["torch"]["file"] == path and report["torch"]["max |f_torch - f| on the data"] <= ATOL
    )
    value, gnorm = iris_loss_and_gradient_norm(net)
    assert gnorm > 1e-3  # a random network is far from critical ...
    np.testing.assert_allclose(report["training"]["value"], value, rtol=1e-12)
    np.testing.assert_allclose(report["training"]["gradient_norm"], gnorm, rtol=1e-10)
    np.testing.assert_allclose(report["theorem1"]["gradient_norm"], gnorm, rtol=1e-10)
    assert report["point"]["kind"] == "not critical"  # ... and the report says so
    assert report["theorem1"]["verdict"] == "does not apply"


def test_certify_torch_reads_a_saved_resnet(tmp_path):
    torch.manual_seed(2)
    z = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    net = ResNetModule(nn.Linear(4, 3, bias=False), nn.Linear(2, 4, bias=False), z).double()
    out = tmp_path / "report.json"
    assert (
        main(["certify", "--torch", saved_module(tmp_path, net), "--quiet", "--output", str(out)])
        == 0
    )
    report = json.loads(out.read_text())
    assert report["setting"]["model"].startswith("ResNet(4 -> 3")
    np.testing.assert_array_equal(report["theta"], from_module(net).theta)
    assert report["torch"]["max |f_torch - f| on the data"] <= ATOL


def test_certify_torch_train_starts_from_the_imported_point(tmp_path):
    net = small_iris_net()
    path = saved_module(tmp_path, net)
    reports = {}
    for flags in ([], ["--train"]):
        out = tmp_path / f"report{len(flags)}.json"
        args = [
            "certify",
            "--torch",
            path,
            *flags,
            "--max-samples",
            "40",
            "--max-iter",
            "500",
            "--quiet",
        ]
        assert main([*args, "--output", str(out)]) == 0
        reports[bool(flags)] = json.loads(out.read_text())
    imported, trained = reports[False], reports[True]
    assert trained["training"]["trained"] is True
    assert trained["training"]["gradient_norm"] <= 1e-6 < imported["training"]["gradient_norm"]
    assert trained["training"]["value"] < imported["training"]["value"]
    assert trained["theorem1"]["verdict"] in {"holds", "consistent"}


def test_certify_torch_rejects_a_module_that_does_not_fit_the_data(tmp_path, capsys):
    out = tmp_path / "report.json"
    wrong_input = saved_module(tmp_path, nn.Sequential(nn.Linear(5, 3)))
    assert main(["certify", "--torch", wrong_input, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "takes inputs of size 5" in err and "d_x = 4" in err
    wrong_output = saved_module(tmp_path, nn.Sequential(nn.Linear(4, 2)))
    assert main(["certify", "--torch", wrong_output, "--output", str(out)]) == 2
    assert "gives 2 outputs" in capsys.readouterr().err
    unsupported = saved_module(tmp_path, nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1)))
    assert main(["certify", "--torch", unsupported, "--output", str(out)]) == 2
    assert "layer 1 (Softmax)" in capsys.readouterr().err
    assert not out.exists()


def test_certify_torch_without_torch_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    path = saved_module(tmp_path, random_mlp("tanh", True))
    monkeypatch.setitem(sys.modules, "torch", None)  # "import torch" now raises ImportError
    monkeypatch.delitem(sys.modules, "gradbasis.torch")
    assert main(["certify", "--torch", path, "--output", str(tmp_path / "r.json")]) == 2
    assert "pip install torch" in capsys.readouterr().err


def python_env() -> dict:
    """The test's own environment: the subprocess imports the same gradbasis the tests do."""
    return dict(os.environ)


def test_gradbasis_imports_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import gradbasis\n"
        "try:\n    import gradbasis.torch\nexcept ImportError as exc:\n    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=python_env(), timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "gradbasis.torch needs PyTorch" in done.stdout and "pip install torch" in done.stdout


def test_lbfgs_example_certifies_the_torch_minimum():
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "torch_lbfgs.py")],
        capture_output=True,
        text=True,
        env=python_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith(
        "MLP([4, 3, 3], tanh, bias=True; 27 parameters) -- max |f_torch - f| = "
    )
    assert float(first.rsplit("=", 1)[1]) <= ATOL
    # torch stops at ||grad L|| ~ 1e-8, where one parameter alone can still gain ~5e-6: no verdict
    # may claim Theorem 1 there; polished by Newton to rounding it is earned.
    assert "Theorem 1 at the torch point: holds" not in done.stdout
    assert "polished point: local-minimum candidate" in done.stdout
    assert "Theorem 1: holds" in done.stdout
