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
