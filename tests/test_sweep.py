"""``gradbasis sweep``: validation, records, resume after a kill, failures, Dask and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import distributed  # the test extra installs dask and distributed
import numpy as np
import pytest

import gradbasis as gb
import gradbasis.cli as cli
from gradbasis import _core, sweep
from gradbasis.cli import sweep as cli_sweep
from gradbasis.sweep import ResultsFileError, SweepConfigError, SweepError

TEACHER = {"name": "teacher", "m": 10, "d_x": 2, "d_y": 1}
CHECKS = ["classify", "theorem1", "theorem2", "representation"]


def tiny(**top) -> dict:
    """Four quick cells: a tanh MLP and a linear network, two seeds each."""
    config = {
        "name": "tiny",
        "grid": {
            "data": [TEACHER],
            "models": ["mlp", "linear"],
            "widths": [2],
            "depths": [1],
            "seeds": [0, 1],
        },
        "train": {"max_iter": 100},
        "checks": {"run": list(CHECKS)},
    }
    config.update(top)
    return config


def strip_timings(x):
    """A record without what depends on the clock or the process (timings, tracebacks)."""
    if isinstance(x, dict):
        return {k: strip_timings(v) for k, v in x.items() if k not in ("seconds", "traceback")}
    if isinstance(x, list):
        return [strip_timings(v) for v in x]
    return x


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """The tiny sweep run here, one cell after another: (records, results file)."""
    out = tmp_path_factory.mktemp("baseline") / "tiny.jsonl"
    return sweep.run(tiny(), output=out, jobs=1, progress=False), out


def sweep_cli(monkeypatch, argv: list[str]) -> int:
    """``gradbasis sweep ...`` through the real entry point, with the command registered."""
    monkeypatch.setattr(cli, "_more_commands", lambda: [cli_sweep.register])
    return cli.main(argv)


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda c: c.update(outptu="x.jsonl"), "unknown key outptu; did you mean 'output'"),
        (lambda c: c["grid"].update(width=[2]), "unknown key grid.width; did you mean 'widths'"),
        (lambda c: c["train"].update(gtol=-1.0), "train.gtol"),
        (lambda c: c["train"].update(method="sgd"), "train.method"),
        (lambda c: c["train"].update(max_iter=[10, 0]), "train.max_iter"),
        (lambda c: c["grid"].update(widths=[2, 0]), "grid.widths"),
        (lambda c: c["grid"].update(depths=[]), "grid.depths must not be an empty list"),
        (lambda c: c["grid"].update(models=["cnn"]), "grid.models"),
        (lambda c: c["grid"].update(losses=["hinge"]), "grid.losses"),
        (lambda c: c["grid"].update(activations=["tanhh"]), "unknown activation 'tanhh'"),
        (lambda c: c["grid"].update(seeds=[True]), "grid.seeds"),
        (
            lambda c: c["grid"].update(losses=["cross_entropy"]),
            "grid.losses: 'cross_entropy' does not fit",
        ),
        (lambda c: c["grid"].update(data=["iris"], losses=["smoothed_hinge"]), "binary"),
        (
            lambda c: c["grid"].update(data=[{"name": "teacher", "m": 10, "d_x": 2}]),
            "grid.data[0].d_y is required",
        ),
        (
            lambda c: c["grid"].update(data=[{"name": "mnist"}]),
            "grid.data[0].name: unknown data set 'mnist'",
        ),
        (lambda c: c["grid"].update(data=["missing.npz"]), "does not exist"),
        (
            lambda c: c["grid"].update(data=[{"name": "iris", "max_samples": 500}]),
            "max_samples = 500 exceeds the 150",
        ),
        (lambda c: c["checks"].update(run=["theorem5"]), "checks.run: unknown value 'theorem5'"),
        (lambda c: c["checks"].update(run=["theorem3"]), "theorem3 is about the ResNet"),
        (
            lambda c: c["checks"].update(run=["theorem4"], t=2),
            "checks.t = 2 exceeds the depth H = 1",
        ),
        (lambda c: c["checks"].update(rtol=2.0), "checks.rtol"),
        (lambda c: c.update(store_theta="yes"), "store_theta"),
        (lambda c: c.update(grid=[]), "grid must be a table or a non-empty array"),
        (
            lambda c: c.update(grid=[c["grid"], {"models": ["resnet"], "checks": ["theorem4"]}]),
            "grid[1].checks: theorem4",
        ),
    ],
)
def test_bad_sweeps_are_refused_before_anything_runs(tmp_path, change, needle):
    config = tiny(output=str(tmp_path / "out.jsonl"))
    change(config)
    with pytest.raises(SweepConfigError) as info:
        sweep.run(config, progress=False)
    assert needle in str(info.value)
    assert isinstance(info.value, gb.GradbasisError)
    assert not (tmp_path / "out.jsonl").exists()  # validated whole: not one cell ran


def test_a_sweep_file_is_read_relative_to_itself(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "points.npz", X=rng.normal(size=(12, 2)), y=rng.integers(0, 2, size=12))
    (tmp_path / "s.toml").write_text(
        textwrap.dedent(
            """
            output = "results/s.jsonl"
            [grid]
            data = ["points.npz"]
            models = ["basis", "mlp"]
            widths = [2, 3]
            losses = ["smoothed_hinge"]
            [checks]
            run = ["theorem1", "classify"]
            """
        )
    )
    plan = sweep.load_sweep(tmp_path / "s.toml")
    assert plan.name == "s" and plan.output == tmp_path / "results" / "s.jsonl"
    # basis ignores the widths: its two grid points are one cell
    cells = [(c.settings["model"], c.settings["hidden"]) for c in plan.cells]
    assert cells == [("basis", []), ("mlp", [2]), ("mlp", [3])]
    data = plan.cells[0].settings["data"]
    assert (
        data["name"] == "points.npz" and data["path"] == "points.npz" and len(data["sha256"]) == 16
    )
    assert plan.cells[0].settings["checks"] == ["classify", "theorem1"]  # canonical order
    (tmp_path / "bad.toml").write_text("[grid\nmodels = 1")
    with pytest.raises(SweepConfigError, match="not valid TOML"):
        sweep.load_sweep(tmp_path / "bad.toml")


def test_cell_keys_are_stable_and_follow_the_settings():
    keys = [c.key for c in sweep.load_sweep(tiny()).cells]
    assert len(set(keys)) == 4 and all(len(k) == 16 for k in keys)
    reordered = tiny()
    reordered["checks"]["run"] = CHECKS[::-1]
    reordered["name"] = "renamed"
    assert [c.key for c in sweep.load_sweep(reordered).cells] == keys
    changed = tiny()
    changed["train"]["gtol"] = 1e-9
    assert not set(c.key for c in sweep.load_sweep(changed).cells) & set(keys)


# ----------------------------------------------------------------------------- records
def test_records_hold_the_checks_of_each_cell(baseline):
    records, out = baseline
    assert len(records) == 4 and [r["status"] for r in records] == ["ok"] * 4
    assert [json.loads(line) for line in out.read_text().splitlines()] == records
    assert [(r["settings"]["model"], r["settings"]["seed"]) for r in records] == [
        ("mlp", 0),
        ("mlp", 1),
        ("linear", 0),
        ("linear", 1),
    ]
    for r in records:
        assert set(r["checks"]) == set(CHECKS) and "theta" not in r
        s = r["summary"]
        assert s["verdicts"]["classify"] == r["checks"]["classify"]["kind"] == s["point"]
        for name in ("theorem1", "theorem2", "representation"):
            assert s["verdicts"][name] == r["checks"][name]["verdict"]
        assert s["gaps"] == {
            "theorem1": r["checks"]["theorem1"]["gap"],
            "theorem2": r["checks"]["theorem2"]["gap"],
        }
        assert s["dim_T"] == r["checks"]["theorem2"]["dim_T"] and s["dim_T_tilde"] >= s["dim_T"]
        assert s["L"] == r["training"]["value"] and set(r["seconds"]) >= {"train", *CHECKS, "total"}

    # The same cell computed directly through the public API gives the same numbers.
    data = sweep.teacher_data(
        {**TEACHER, "width": 4, "activation": "tanh", "noise": 0.1, "seed": 0}
    )
    model = gb.MLP([2, 2, 1], "tanh")
    obj = gb.Objective(model, "squared", data.X, data.targets)
    fit = gb.minimize(obj, model.init(seed=1), method="lbfgs+newton", gtol=1e-10, max_iter=100)
    t1 = gb.theorem1(obj, fit.theta, rtol=1e-8, grad_tol=1e-6)
    assert records[1]["training"]["value"] == fit.value
    assert records[1]["checks"]["theorem1"]["verdict"] == str(t1.verdict)
    assert records[1]["checks"]["theorem1"]["gap"] == t1.gap


def test_store_theta_keeps_the_trained_point(tmp_path):
    config = tiny(store_theta=True)
    config["grid"].update(models=["mlp"], seeds=[0])
    (record,) = sweep.run(config, progress=False)
    assert len(record["theta"]) == record["summary"]["num_params"] == 2 * 2 + 2 + 2 + 1
    assert record["key"] not in {c.key for c in sweep.load_sweep(tiny()).cells}


def test_resume_skips_finished_cells(baseline, tmp_path, monkeypatch):
    records, out = baseline
    copy = tmp_path / "resume.jsonl"
    copy.write_bytes(out.read_bytes())
    ran = []
    real = sweep.run_cell
    monkeypatch.setattr(
        sweep.runner, "run_cell", lambda cell, *a: ran.append(cell.key) or real(cell, *a)
    )
    assert sweep.run(tiny(), output=copy, jobs=1, progress=False) == records
    assert ran == []  # nothing left to do
    more = tiny()
    more["grid"]["seeds"] = [0, 1, 2]
    again = sweep.run(more, output=copy, jobs=1, progress=False)
    assert len(ran) == 2 and len(again) == 6 and len(copy.read_text().splitlines()) == 6
    assert [r for r in again if r["key"] not in ran] == records


def test_a_partial_last_line_is_cut_off_and_its_cell_rerun(baseline, tmp_path):
    records, out = baseline
    path = tmp_path / "torn.jsonl"
    lines = out.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2]) + lines[2][:-1])  # killed before the newline was written
    assert [r["key"] for r in sweep.load_records(path)] == [r["key"] for r in records[:2]]
    rerun = sweep.run(tiny(), output=path, jobs=1, progress=False)
    assert rerun[:2] == records[:2] and strip_timings(rerun) == strip_timings(records)
    text = path.read_text()
    assert text.endswith("\n") and [json.loads(x)["key"] for x in text.splitlines()] == [
        r["key"] for r in records
    ]
    path.write_text(text + "not json\n" + lines[0].decode())
    with pytest.raises(ResultsFileError, match="line 5: not JSON"):
        sweep.run(tiny(), output=path, progress=False)


def test_a_failing_cell_is_recorded_and_the_sweep_goes_on(baseline, tmp_path, monkeypatch):
    calls = []
    real = sweep.CHECKS["theorem1"]

    def second_call_fails(obj, theta, options):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom in the second cell")
        return real(obj, theta, options)

    monkeypatch.setitem(sweep.CHECKS, "theorem1", second_call_fails)
    out = tmp_path / "f.jsonl"
    records = sweep.run(tiny(), output=out, jobs=1, progress=False)
    assert [r["status"] for r in records] == ["ok", "error", "ok", "ok"]
    bad = records[1]
    assert (
        bad["error"]["type"] == "RuntimeError"
        and bad["error"]["message"] == "boom in the second cell"
    )
    assert bad["error"]["stage"] == "theorem1" and "second_call_fails" in bad["error"]["traceback"]
    assert bad["summary"]["verdicts"] == {
        "classify": bad["checks"]["classify"]["kind"],
        "theorem1": "error",
    }
    # what ran before the failure is kept: the training and the classification
    assert strip_timings(bad["training"]) == strip_timings(baseline[0][1]["training"])
    assert strip_timings(bad["checks"]["classify"]) == strip_timings(
        baseline[0][1]["checks"]["classify"]
    )
    assert [strip_timings(r) for i, r in enumerate(records) if i != 1] == [
        strip_timings(r) for i, r in enumerate(baseline[0]) if i != 1
    ]
    table = sweep.report(records)
    assert (
        "4 cells in 2 groups, 1 failed" in table
        and "RuntimeError: boom in the second cell" in table
    )
    # A failed cell is finished: a rerun leaves it as recorded.
    monkeypatch.setitem(sweep.CHECKS, "theorem1", real)
    assert sweep.run(tiny(), output=out, jobs=1, progress=False)[1]["status"] == "error"


def test_a_second_writer_is_refused(tmp_path):
    out = tmp_path / "locked.jsonl"
    holder = sweep.results.ResultsFile(out)
    try:
        with pytest.raises(SweepError, match="another sweep is writing"):
            sweep.run(tiny(), output=out, progress=False)
    finally:
        holder.close()


def test_cells_side_by_side_run_the_core_on_one_thread(monkeypatch):
    seen = []
    real = sweep.CHECKS["classify"]
    monkeypatch.setitem(
        sweep.CHECKS, "classify", lambda *a: seen.append(_core.max_threads()) or real(*a)
    )
    plan = sweep.load_sweep(tiny())
    before = _core.max_threads()
    sweep.run_cell(plan.cells[0], plan.datasets[plan.cells[0].data_id], single_thread=True)
    sweep.run_cell(plan.cells[0], plan.datasets[plan.cells[0].data_id])
    assert seen == [1, before] and _core.max_threads() == before


# ----------------------------------------------------------------------------- parallel runs
def test_worker_processes_and_a_dask_cluster_give_the_same_records(baseline, tmp_path):
    records, _ = baseline
    expected = strip_timings(records)
    pooled = sweep.run(tiny(), output=tmp_path / "pool.jsonl", jobs=2, progress=False)
    assert strip_timings(pooled) == expected
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        on_dask = sweep.run(
            tiny(),
            output=tmp_path / "dask.jsonl",
            scheduler=cluster.scheduler_address,
            progress=False,
        )
    assert strip_timings(on_dask) == expected
    assert sorted(r["key"] for r in sweep.load_records(tmp_path / "dask.jsonl")) == sorted(
        r["key"] for r in records
    )


# ----------------------------------------------------------------------------- kill and resume
RUNNER = """
import sys
import gradbasis.cli as cli
import gradbasis.cli.sweep as cli_sweep

if __name__ == "__main__":
    cli._more_commands = lambda: [cli_sweep.register]
    sys.exit(cli.main())
"""


def _complete_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _run_until(runner: Path, sweep_file: Path, out: Path, lines: int | None) -> tuple[int, str]:
    """Run the sweep; with ``lines``, SIGKILL it as soon as the file holds that many records.
    Returns the exit status and what it wrote to stderr."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-W",
            "error",
            str(runner),
            "sweep",
            "run",
            str(sweep_file),
            "--jobs",
            "1",
            "-qq",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if lines is not None:
        deadline = time.monotonic() + 60
        while _complete_lines(out) < lines and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err.decode()


def test_a_killed_sweep_resumes_and_loses_nothing(tmp_path):
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    sweep_file = tmp_path / "kill.toml"
    sweep_file.write_text(
        textwrap.dedent(
            """
            output = "kill.jsonl"
            [grid]
            data = [{name = "teacher", m = 40, d_x = 3, d_y = 2}]
            widths = [2]
            seeds = [0, 1, 2, 3, 4, 5, 6, 7]
            [train]
            max_iter = 200
            [checks]
            run = ["classify", "theorem1", "theorem2"]
            """
        )
    )
    out = tmp_path / "kill.jsonl"
    rc, err = _run_until(runner, sweep_file, out, lines=1)
    assert rc == -signal.SIGKILL, err
    n1 = _complete_lines(out)
    assert 1 <= n1 < 8
    with out.open("ab") as fh:  # as if the kill had come in the middle of a write
        fh.write(b'{"key":"0123456789abcdef","status":"ok","settings":{"da')
    rc, err = _run_until(runner, sweep_file, out, lines=n1 + 1)
    n2 = _complete_lines(out)
    assert rc == -signal.SIGKILL and n1 < n2 < 8, err
    rc, err = _run_until(runner, sweep_file, out, lines=None)
    assert rc == 0 and err == ""  # no warnings, no errors
    text = out.read_text()
    assert text.endswith("\n")
    keys = [json.loads(line)["key"] for line in text.splitlines()]  # every line is whole JSON
    expected = [c.key for c in sweep.load_sweep(sweep_file).cells]
    assert sorted(keys) == sorted(expected) and len(keys) == 8  # every cell exactly once


# ----------------------------------------------------------------------------- CLI and report
def test_cli_run_then_report(tmp_path, monkeypatch, capsys):
    sweep_file = tmp_path / "c.toml"
    sweep_file.write_text(
        textwrap.dedent(
            f"""
            [grid]
            data = [{{name = "teacher", m = 10, d_x = 2, d_y = 1}}]
            models = ["mlp", "linear"]
            widths = [2]
            seeds = [0, 1]
            [train]
            max_iter = 100
            [checks]
            run = {json.dumps(CHECKS)}
            """
        )
    )
    assert sweep_cli(monkeypatch, ["sweep", "run", str(sweep_file), "--jobs", "1", "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 4 and "[4/4]" in captured.err  # one line per finished cell
    assert "sweep: 4 cells in 2 groups, 0 failed" in captured.out
    assert (tmp_path / "c.jsonl").exists()  # default output: beside the sweep file

    calls = []

    def sweep_figures(records, output, *, formats=("png", "svg")):
        calls.append((records, Path(output), formats))
        return [f"gap-vs-width: {Path(output) / 'gap-vs-width.svg'}"]

    import gradbasis.plots as real_plots  # before the fake takes its place in sys.modules

    fake = types.SimpleNamespace(sweep_figures=sweep_figures, require_matplotlib=lambda: None)
    monkeypatch.setitem(sys.modules, "gradbasis.plots", fake)
    assert sweep_cli(monkeypatch, ["sweep", "report", str(sweep_file)]) == 0
    out = capsys.readouterr().out
    assert "sweep: 4 cells in 2 groups" in out and "gap-vs-width.svg" in out
    ((flat, folder, formats),) = calls
    assert folder == tmp_path / "c-figures" and formats == ("png", "svg")
    records = sweep.load_records(tmp_path / "c.jsonl")
    assert [(f["width"], f["depth"], f["seed"]) for f in flat] == [(2, 1, 0), (2, 1, 1)] * 2
    assert [f["loss_value"] for f in flat] == [r["summary"]["L"] for r in records]
    assert [f["theorem1"] for f in flat] == [r["checks"]["theorem1"] for r in records]
    assert [f["theorem2"]["dim_T_tilde"] for f in flat] == [
        r["summary"]["dim_T_tilde"] for r in records
    ]
    assert flat[0]["bounds"] == records[0]["summary"]["bounds"] and "error" not in flat[0]

    monkeypatch.setitem(sys.modules, "gradbasis.plots", real_plots)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # no matplotlib: the table alone
    assert (
        sweep_cli(monkeypatch, ["sweep", "report", str(tmp_path / "c.jsonl"), "--formats", "svg"])
        == 0
    )
    out = capsys.readouterr().out
    assert "note: figures skipped" in out and "sweep: 4 cells" in out

    assert sweep_cli(monkeypatch, ["sweep", "run", str(tmp_path / "missing.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_report_draws_the_sweep_figures(baseline, tmp_path, monkeypatch, capsys):
    _, out = baseline
    folder = tmp_path / "figures"
    assert (
        sweep_cli(
            monkeypatch, ["sweep", "report", str(out), "--figures", str(folder), "--formats", "svg"]
        )
        == 0
    )
    assert "gap-vs-width" in capsys.readouterr().out
    drawn = sorted(p.name for p in folder.iterdir())
    assert "gap-vs-width.svg" in drawn and "dimensions-vs-width.svg" in drawn
    assert all((folder / name).stat().st_size > 1000 for name in drawn)


def test_report_counts_verdicts_per_group(baseline):
    records, _ = baseline
    lines = sweep.report(records).splitlines()
    assert lines[0] == "sweep: 4 cells in 2 groups, 0 failed"
    # columns from the dashes under the header
    spans, start = [], 0
    for dashes in lines[2].split("  "):
        spans.append((start, start + len(dashes)))
        start += len(dashes) + 2
    cols = lambda line: [line[a:b].strip() for a, b in spans]  # noqa: E731
    header = cols(lines[1])
    for model in ("mlp", "linear"):
        row = dict(
            zip(header, cols(next(x for x in lines[3:] if cols(x)[1] == model)), strict=False)
        )
        mine = [r for r in records if r["settings"]["model"] == model]
        assert row["cells"] == "2" and row["failed"] == "0" and row["hidden"] == "2"
        for check in ("theorem1", "theorem2", "representation"):
            verdicts = [r["summary"]["verdicts"][check] for r in mine]
            counts = [
                f"{verdicts.count(v)}{v[0]}" for v in ("holds", "consistent") if v in verdicts
            ]
            assert row[check] == " ".join(counts)
        Ls = sorted(r["summary"]["L"] for r in mine)
        assert float(row["median L"]) == pytest.approx((Ls[0] + Ls[1]) / 2, rel=1e-5)
        gaps = [g for r in mine for g in r["summary"]["gaps"].values()]
        assert float(row["max gap"]) == pytest.approx(max(gaps), rel=1e-2, abs=1e-300)
        assert float(row["dim T"]) == np.mean([r["summary"]["dim_T"] for r in mine])
    assert sweep.report([]) == "no records"


def test_progress_bar_counts_cells(capsys):
    sweep.run(tiny(), jobs=1, progress=True)
    err = capsys.readouterr().err
    assert "4/4" in err and "0/4" in err
