"""The report pages (HTML, Markdown, SVG), the digits data and the progress bars."""

from __future__ import annotations

import builtins
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import gradbasis as gb
from gradbasis._progress import _Silent, progress_bar
from gradbasis.cli import main
from gradbasis.datasets import load_builtin, load_digits, load_iris
from gradbasis.errors import DataFileError


@pytest.fixture(scope="module")
def certified():
    data = load_iris()
    X, Y = data.X[::3], np.eye(3)[data.labels[::3]]
    model = gb.MLP([4, 3, 3], "tanh")
    obj = gb.Objective(model, "squared", X, Y)
    theta = gb.minimize(obj, model.init(0), gtol=1e-11).theta
    return gb.theorem1(obj, theta, strategy="dense"), gb.classify_point(obj, theta)


def test_report_pages_are_complete_and_offline(certified, tmp_path):
    thm, point = certified
    paths = thm.save_report(tmp_path / "r", point=point, setting={"data": "iris / 3"})
    assert {p.name for p in paths.values()} == {
        "report.json",
        "report.html",
        "report.md",
        "interval.svg",
        "profile.svg",
        "spectrum.svg",
    }
    html = paths["html"].read_text()
    assert str(thm.verdict) in html and "smallest Hessian eigenvalue" in html
    assert "<script" not in html.lower()
    # nothing fetched: the only URL is the SVG namespace
    assert html.count("http") == html.count('xmlns="http://www.w3.org/2000/svg"') == 3
    for name in ("interval", "profile", "spectrum"):
        root = ET.fromstring(paths[name].read_text())  # well-formed SVG
        assert root.tag.endswith("svg")
    spectrum = paths["spectrum"].read_text()
    assert f"rank {thm.rank}" in spectrum  # the rank cut is drawn
    assert 0 < spectrum.count("<circle") <= thm.induced.singular_values.size
    payload = json.loads(paths["json"].read_text())
    assert payload["theorem1"]["verdict"] == str(thm.verdict)
    assert payload["versions"]["numpy"] == np.__version__
    md = paths["markdown"].read_text()
    assert "![Singular values of J with the rank cut](spectrum.svg)" in md
    assert f"**Verdict: {thm.verdict}**" in md


def test_report_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "rep"
    code = main(
        [
            "certify",
            "--quiet",
            "--output",
            str(tmp_path / "r.json"),
            "--report",
            str(out),
            "--max-samples",
            "40",
        ]
    )
    assert code == 0
    payload = json.loads((out / "report.json").read_text())
    assert (
        payload["theorem1"]["verdict"]
        == json.loads((tmp_path / "r.json").read_text())["theorem1"]["verdict"]
    )
    assert "report.html" in capsys.readouterr().out


def test_digits_data():
    data = load_digits()
    assert data.X.shape == (1797, 64) and data.sample_shape == (1, 8, 8)
    assert data.X.min() == 0.0 and data.X.max() == 1.0
    assert len(data.classes) == 10 and set(np.unique(data.labels)) == set(range(10))
    assert load_builtin("digits").X.shape == (1797, 64)
    with pytest.raises(DataFileError, match="built-in ones are"):
        load_builtin("mnist")


def test_digits_without_scikit_learn_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(DataFileError, match=r'pip install "gradbasis\[datasets\]"'):
        load_digits()


def test_progress_bars_only_when_asked():
    assert isinstance(progress_bar(10, "x"), _Silent)
    with gb.show_progress():
        bar = progress_bar(10, "x")
        assert not isinstance(bar, _Silent)  # tqdm is a test extra
        bar.close()
        with gb.show_progress(False):
            assert isinstance(progress_bar(10, "x"), _Silent)
    assert isinstance(progress_bar(10, "x"), _Silent)
