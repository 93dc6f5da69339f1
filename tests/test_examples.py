"""The example scripts run, and print what the docs quote."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(name: str) -> str:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_perturbable_basis_example_prints_the_documented_numbers():
    text = run("perturbable_basis.py")
    assert "Theorem 1: holds" in text
    assert "dim T = 1, dim T~ = 3" in text
    assert "L(theta) = 0.292561; inf over T = 0.292561" in text
    assert "Theorem 2: does not apply - theta is a saddle" in text


def test_quickstart_runs():
    assert "Jacobian" in run("quickstart.py")


def test_cnn_digits_example_trains_saves_and_certifies(tmp_path, monkeypatch):
    """The CNN example end to end with a short training (the full one takes minutes): the saved
    module loads in another process's way (torch.load of an importable class) and the
    certificate is printed with its verdict."""
    import importlib.util

    import pytest

    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    spec = importlib.util.spec_from_file_location("cnn_digits", EXAMPLES / "cnn_digits.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    monkeypatch.chdir(tmp_path)
    result = example.main(str(tmp_path / "cnn.pt"), lbfgs_iterations=10)
    assert str(result.verdict) in {"does not apply", "consistent", "holds"}
    net = torch.load(tmp_path / "cnn.pt", weights_only=False)
    assert type(net).__module__ == "gradbasis.torch.zoo"
