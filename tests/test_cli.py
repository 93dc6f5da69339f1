"""The main job, end to end on tiny settings."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from gradbasis.cli import main


def test_certify_default_data_tiny(tmp_path, capsys):
    out = tmp_path / "report.json"
    rc = main(["certify", "--widths", "3", "--max-samples", "40", "--output", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "Theorem 1 (gradient basis model)" in printed and "point classification" in printed
    report = json.loads(out.read_text())
    assert report["setting"]["data"].startswith("iris: m = 40, d_x = 4, d_y = 3")
    thm = report["theorem1"]
    assert thm["verdict"] in {"holds", "consistent"}
    assert thm["lower"] <= thm["loss_value"] + thm["tol"]
    assert len(report["theta"]) == 4 * 3 + 3 + 3 * 3 + 3
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no leftovers


def test_the_main_job_earns_its_verdict(tmp_path, capsys):
    """``gradbasis certify`` with no options: "holds" only where the gap over the numerical span of
    J is within tol, and every nested span of the profile agrees (the smaller the span, the
    larger its infimum, so each lower end must be >= L - tol too)."""
    out = tmp_path / "report.json"
    assert main(["certify", "--quiet", "--output", str(out)]) == 0
    thm = json.loads(out.read_text())["theorem1"]
    assert thm["verdict"] == "holds", thm["reason"]
    assert thm["loss_value"] - thm["lower"] <= thm["tol"]
    assert thm["converged"] and thm["judged_by"] == "dense"
    assert thm["rank"] == thm["num_params"]  # J has full column rank: nothing near the cut
    for entry in thm["profile"]:
        assert entry["lower"] >= thm["loss_value"] - thm["tol"], entry
    capsys.readouterr()


@pytest.mark.parametrize("model", ["skip", "resnet", "basis", "linear"])
def test_certify_other_models_on_a_csv_file(model, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 3))
    labels = np.where(X[:, 0] + 0.5 * rng.normal(size=24) > 0, "yes", "no")
    path = tmp_path / "data.csv"
    path.write_text(
        "a,b,c,label\n"
        + "".join(f"{r[0]},{r[1]},{r[2]},{c}\n" for r, c in zip(X, labels, strict=False))
    )
    out = tmp_path / "r.json"
    rc = main(
        [
            "certify",
            "--model",
            model,
            "--widths",
            "2",
            "--data",
            str(path),
            "--loss",
            "smoothed_hinge",
            "--output",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    assert json.loads(out.read_text())["setting"]["loss"] == "smoothed_hinge"


def test_certify_reports_bad_input_without_a_traceback(tmp_path, capsys):
    rc = main(
        ["certify", "--loss", "smoothed_hinge", "--output", str(tmp_path / "r.json")]
    )  # iris has 3 classes
    assert rc == 2
    assert "binary" in capsys.readouterr().err
    rc = main(["certify", "--data", str(tmp_path / "missing.npz")])
    assert rc == 2


def test_module_entry_point_runs():
    done = subprocess.run(
        [sys.executable, "-m", "gradbasis", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("gradbasis ")
