"""Figures: what they draw is computed, every file is written whole, bad input is named."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import gradbasis as gb
from gradbasis import cli, plots
from gradbasis.cli.figure import register

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_written(result: plots.FigureFiles, formats=("png", "svg")) -> None:
    """One non-empty file per format: a PNG header, an SVG document that parses as XML."""
    assert [p.suffix for p in result.paths] == [f".{f}" for f in formats]
    for path in result.paths:
        data = path.read_bytes()
        assert len(data) > 1000, path
        if path.suffix == ".png":
            assert data[:8] == PNG_MAGIC
        else:
            assert ET.fromstring(data).tag.endswith("svg")


def run_cli(monkeypatch, argv: list[str]) -> int:
    """``gradbasis`` with the figure command registered (as cli._more_commands does)."""
    monkeypatch.setattr(cli, "_more_commands", lambda: [register])
    return cli.main(argv)


def small_records() -> list[dict]:
    return [dict(r) for r in _small_records()]


@functools.lru_cache(maxsize=1)
def _small_records() -> tuple[dict, ...]:
    """Records of a real loop: tanh MLPs of width 1..3 and depth 1..2 trained on 6 samples,
    with Theorem 1, Theorem 2 and Example 3's bound at the trained point."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(6, 2))
    Y = np.tanh(X @ np.array([[1.0], [-0.5]])) + 0.1 * rng.normal(size=(6, 1))
    records = []
    for depth in (1, 2):
        for width in (1, 2, 3):
            model = gb.MLP([2, *[width] * depth, 1], "tanh")
            obj = gb.Objective(model, "squared", X, Y)
            theta = gb.minimize(
                obj, model.init(seed=0), method="lbfgs+newton", gtol=1e-10, max_iter=300
            ).theta
            t1, t2 = gb.theorem1(obj, theta), gb.theorem2(obj, theta, check_minimum=False)
            records.append(
                {
                    "width": width,
                    "depth": depth,
                    "seed": 0,
                    "loss_value": t1.loss_value,
                    "num_params": model.num_params,
                    "num_outputs": Y.size,
                    "theorem1": {
                        "lower": t1.lower,
                        "value": t1.value,
                        "gap": t1.gap,
                        "tol": t1.tol,
                        "verdict": str(t1.verdict),
                    },
                    "theorem2": {"dim_T": t2.dim_T, "dim_T_tilde": t2.dim_T_tilde},
                    "bounds": {"Example 3": gb.representation_bound(obj, theta).bound_value},
                }
            )
    return tuple(records)


# ----------------------------------------------------------------------------- geometry
def test_geometric_view_draws_the_theorems_numbers():
    # Figures 1-2: at a critical point with T a plane, the projection of y onto T is f_X(theta).
    obj, theta = plots.figure1_toy()
    v = plots.geometry_view(obj.model, theta, obj.X, obj.Y, grid=3)
    assert np.linalg.norm(obj.gradient(theta)) <= 1e-10
    assert v.tangent.shape == (3, 2) and v.perturbable.shape == (3, 2)
    np.testing.assert_allclose(v.proj_T, v.fx, atol=1e-9)
    np.testing.assert_allclose(v.tangent.T @ v.tangent, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(
        v.tangent.T @ (v.y - v.proj_T), 0.0, atol=1e-12
    )  # the residual is normal to T
    np.testing.assert_allclose(
        v.surface[1, 1], obj.model.forward(np.array([v.w1[1, 1], v.w2[1, 1]]), obj.X).ravel()
    )
    # Figures 3-4: T is a line through f_X = 0, T~ is all of R^3 and the projection onto it is y.
    obj, theta = plots.figure3_toy()
    v = plots.geometry_view(obj.model, theta, obj.X, obj.Y, grid=3)
    assert (v.tangent.shape[1], v.perturbable.shape[1]) == (1, 3)
    np.testing.assert_allclose(v.proj_T, v.fx, atol=1e-12)
    np.testing.assert_allclose(v.proj_T_tilde, v.y, atol=1e-10)
    assert v.theorem2.loss_value > 0.25 and v.theorem2.value < 1e-20


def test_geometry_figure_is_written_as_png_and_svg(tmp_path):
    obj, theta = plots.figure1_toy()
    out = plots.geometry_figure(
        obj.model, theta, obj.X, obj.Y, tmp_path / "figs", grid=6, name="toy"
    )
    assert out.name == "toy" and out.skipped == ()
    assert_written(out)
    assert "toy.png" in str(out)


def test_geometric_view_rejects_models_it_cannot_draw(tmp_path):
    obj, theta = plots.figure1_toy()
    with pytest.raises(gb.ShapeError, match="d_theta = 2 and m \\* d_y = 3"):
        plots.geometry_view(gb.MLP([1, 1, 1], "tanh"), np.zeros(4), obj.X, obj.Y)
    with pytest.raises(gb.ShapeError, match="d_theta = 2 and m \\* d_y = 3"):
        plots.geometry_view(obj.model, theta, np.ones((4, 1)), np.ones(4))
    with pytest.raises(gb.ShapeError, match="3 targets"):
        plots.geometry_view(obj.model, theta, obj.X, np.ones(2))
    with pytest.raises(gb.NonFiniteError):
        plots.geometry_view(obj.model, theta, obj.X, [1.0, np.nan, 0.0])
    with pytest.raises(gb.InvalidOptionError, match="theta_ranges"):
        plots.geometry_view(obj.model, theta, obj.X, obj.Y, theta_ranges=[(1.0, 0.0), (0.0, 1.0)])
    with pytest.raises(gb.InvalidOptionError, match="grid"):
        plots.geometry_view(obj.model, theta, obj.X, obj.Y, grid=1)
    with pytest.raises(gb.InvalidOptionError, match="formats"):
        plots.geometry_figure(obj.model, theta, obj.X, obj.Y, tmp_path, formats=["jpg"])


# ----------------------------------------------------------------------------- spectrum
def test_spectrum_figure_with_exact_zeros_and_a_resolution(tmp_path):
    model = gb.MLP([2, 3, 1], "tanh")
    X = np.random.default_rng(0).normal(size=(5, 2))
    out = plots.spectrum_figure(model, model.init(seed=1), X, tmp_path, resolution=1e-3)
    assert_written(out)
    theta = np.zeros(model.num_params)  # J has exact zero singular values: drawn at the floor
    assert np.linalg.svd(model.jacobian(theta, X), compute_uv=False).min() == 0.0
    a = plots.spectrum_figure(model, theta, X, tmp_path / "a", formats="svg")
    b = plots.spectrum_figure(model, theta, X, tmp_path / "b", formats=["svg"])
    assert_written(a, ("svg",))
    assert (
        a.paths[0].read_bytes() == b.paths[0].read_bytes()
    )  # fixed ids, no date: reproducible SVG
    with pytest.raises(gb.InvalidOptionError, match="rank_tol"):
        plots.spectrum_figure(model, theta, X, tmp_path, rank_tol=2.0)
    with pytest.raises(gb.InvalidOptionError, match="resolution"):
        plots.spectrum_figure(model, theta, X, tmp_path, resolution=float("nan"))
    with pytest.raises(gb.ShapeError):
        plots.spectrum_figure(model, np.zeros(3), X, tmp_path)


# ----------------------------------------------------------------------------- sweeps
def test_sweep_figures_from_computed_records_say_what_they_left_out(tmp_path):
    records = small_records()
    records.append({"width": 4, "depth": 1, "seed": 0, "error": "training diverged"})
    records.append(
        {"width": 5, "depth": 1, "seed": 0, "loss_value": 0.1, "theorem1": {"gap": "nan-ish"}}
    )
    results = plots.sweep_figures(records, tmp_path, formats=["png", "svg"])
    assert [r.name for r in results] == [
        "gap-vs-width",
        "gap-vs-depth",
        "dimensions-vs-width",
        "bounds-vs-width",
    ]
    for r in results:
        assert_written(r)
        assert any(
            "record 6 (width=4, depth=1, seed=0): a failed cell (training diverged)" == s
            for s in r.skipped
        )
    gap = results[0]
    assert (
        "record 7 (width=5, depth=1, seed=0): theorem1.gap is not a number ('nan-ish')"
        in gap.skipped
    )
    dims = results[2]
    assert "record 7 (width=5, depth=1, seed=0): no theorem2.dim_T" in dims.skipped
    assert "record 7 (width=5, depth=1, seed=0): no bounds" in results[3].skipped


def test_sweep_figures_accept_jsonable_strings_and_skip_missing_figures(tmp_path):
    gaps = {
        1: 1e-12,
        2: "inf",
        3: "3e-12",
    }  # as jsonable writes them: non-finite numbers become strings
    records = [{"width": w, "loss_value": 1.0 / w, "theorem1": {"gap": g}} for w, g in gaps.items()]
    results = plots.sweep_figures(records, tmp_path, formats=["png"])
    drawn = {r.name: r for r in results}
    assert drawn["gap-vs-width"].paths and drawn["gap-vs-width"].skipped == (
        "record 1 (width=2): not finite (theorem1.gap = inf)",
    )
    assert drawn["dimensions-vs-width"].paths == ()
    assert "no record holds width, theorem2.dim_T" in drawn["dimensions-vs-width"].skipped[0]
    assert "bounds" in drawn["bounds-vs-width"].skipped[0]


def test_bad_records_are_named(tmp_path):
    with pytest.raises(plots.SweepRecordError, match="empty"):
        plots.gap_figure([], tmp_path)
    with pytest.raises(plots.SweepRecordError, match="record 1 must be a dict"):
        plots.gap_figure([{"width": 1}, [1, 2]], tmp_path)
    with pytest.raises(plots.SweepRecordError, match="list of dicts"):
        plots.bounds_figure({"width": 1}, tmp_path)
    match = r"no record holds width, theorem1.gap .*record 0 \(width=1\): no theorem1.gap"
    with pytest.raises(plots.SweepRecordError, match=match):
        plots.gap_figure([{"width": 1, "theorem1": {}}], tmp_path)
    with pytest.raises(plots.SweepRecordError, match="no sweep figure could be drawn"):
        plots.sweep_figures([{"seed": 0}], tmp_path)
    with pytest.raises(gb.InvalidOptionError, match="'width' or 'depth'"):
        plots.gap_figure([{"width": 1}], tmp_path, x="seed")
    (tmp_path / "file").write_text("")
    with pytest.raises(gb.InvalidOptionError, match="must be a directory"):
        plots.gap_figure([{"width": 1, "theorem1": {"gap": 0.0}}], tmp_path / "file")
    assert isinstance(plots.SweepRecordError("x"), gb.GradbasisError)


def test_load_records_names_the_bad_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"width": 1}\n\n{"width": 2\n')
    with pytest.raises(plots.SweepRecordError, match="line 3: not JSON"):
        plots.load_records(path)
    path.write_text('{"width": 1}\n[1]\n')
    with pytest.raises(plots.SweepRecordError, match="line 2: a record must be a JSON object"):
        plots.load_records(path)
    path.write_text("\n")
    with pytest.raises(plots.SweepRecordError, match="no records"):
        plots.load_records(path)
    with pytest.raises(plots.SweepRecordError, match="does not exist"):
        plots.load_records(tmp_path / "missing.jsonl")


# ----------------------------------------------------------------------------- command line
def test_cli_writes_the_sweep_and_geometry_figures(tmp_path, monkeypatch, capsys):
    records = tmp_path / "records.jsonl"
    records.write_text(
        "".join(json.dumps({"width": w, "theorem1": {"gap": 10.0**-w}}) + "\n" for w in (1, 2, 3))
    )
    out = tmp_path / "figs"
    assert (
        run_cli(monkeypatch, ["figure", "sweep", "--records", str(records), "--output", str(out)])
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["gap-vs-width.png", "gap-vs-width.svg"]
    printed = capsys.readouterr().out
    assert "gap-vs-width: " in printed and "dimensions-vs-width: not drawn" in printed
    assert (
        run_cli(
            monkeypatch, ["figure", "geometry-perturbable", "--output", str(out), "--format", "png"]
        )
        == 0
    )
    assert (out / "geometry-perturbable.png").read_bytes()[:8] == PNG_MAGIC
    assert not (out / "geometry-perturbable.svg").exists()


def test_cli_draws_a_sweep_results_file(tmp_path, monkeypatch, capsys):
    from gradbasis import sweep

    results = tmp_path / "results.jsonl"
    grid = {
        "data": [{"name": "teacher", "m": 8, "d_x": 2, "d_y": 1}],
        "models": ["mlp"],
        "widths": [1, 2],
        "depths": [1],
        "activations": ["tanh"],
        "losses": ["squared"],
        "seeds": [0, 1],
    }
    config = {
        "name": "tiny",
        "grid": grid,
        "train": {"max_iter": 200},
        "checks": {"run": ["theorem1", "theorem2", "representation"]},
    }
    sweep.run(config, output=results, jobs=1, progress=False)
    out = tmp_path / "figs"
    assert (
        run_cli(
            monkeypatch,
            ["figure", "sweep", "--records", str(results), "--output", str(out), "--format", "svg"],
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "bounds-vs-width.svg",
        "dimensions-vs-width.svg",
        "gap-vs-width.svg",
    ]
    assert "left out" not in capsys.readouterr().out  # every cell fed every figure


def test_cli_figure_errors(tmp_path, monkeypatch, capsys):
    assert run_cli(monkeypatch, ["figure", "sweep", "--output", str(tmp_path)]) == 2
    assert "needs --records" in capsys.readouterr().err
    assert (
        run_cli(
            monkeypatch, ["figure", "spectrum", "--records", "r.jsonl", "--output", str(tmp_path)]
        )
        == 2
    )
    assert "only read by `figure sweep`" in capsys.readouterr().err
    assert run_cli(monkeypatch, ["figure", "sweep", "--records", str(tmp_path / "none.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_cli(monkeypatch, ["figure", "nonsense"])
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- without matplotlib
def test_missing_matplotlib_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    model = gb.MLP([2, 2, 1], "tanh")
    with pytest.raises(ImportError, match=r'pip install "gradbasis\[plot\]"'):
        plots.spectrum_figure(model, model.init(seed=0), np.ones((3, 2)), tmp_path)
    records = tmp_path / "r.jsonl"
    records.write_text(json.dumps({"width": 1, "theorem1": {"gap": 0.0}}) + "\n")
    assert (
        run_cli(
            monkeypatch, ["figure", "sweep", "--records", str(records), "--output", str(tmp_path)]
        )
        == 2
    )
    assert "gradbasis[plot]" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl"]


def test_gradbasis_imports_without_matplotlib():
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "import gradbasis, gradbasis.plots, gradbasis.cli.figure\n"
        "assert 'matplotlib.figure' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
