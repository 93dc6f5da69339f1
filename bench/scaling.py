"""Benchmark: how time and peak memory of ``model.gram`` and of ``gradient_basis_minimum``
(each strategy) grow with the number of samples m and with the width.

What is measured
----------------
Series over m (MLP d_x=32 -> 512 -> 1, tanh, biases; m = 256, 512, ..., 16384) and over the
width w (m = 1024, d_x=32 -> w -> 1; w = 64, ..., 4096), float64, 2 threads (bench/_common.py):

* ``gram``: ``model.gram(theta, X, n_threads=2)``, K of size m^2 (d_y = 1);
* ``dense`` / ``gram strategy`` / ``matrix_free``: ``gradient_basis_minimum(obj, theta,
  strategy=...)`` for the squared loss with standard-normal targets, weights 1/m.

Every point runs in a fresh subprocess: a warm-up call on 8 samples, then the timed call (best
of 3 when a call takes < 1 s). Memory: the process's peak resident set size (VmHWM from
/proc/self/status, which counts C++ and BLAS allocations that tracemalloc cannot see), and the
increment of the peak over the resident size just before the timed call. The library's own
``memory_estimate`` (and for ``gram``, K plus its layer factors) is recorded beside it.

A series stops when a point is stopped at ``--cap`` seconds, when the next point's estimated
memory exceeds MemAvailable, or when the trend of the last two points (slope clamped to [1, 3]:
no method here grows faster than cubically) puts the next one above the cap or the series above
``--series-budget`` seconds (reported as "not run: ..."). The
fitted exponent is the least-squares slope of log(time) and log(memory increment) against
log(m) or log(w) over the measured points with time >= 0.01 s (memory: increment >= 10 MB); in
parentheses the slope between the last two such points (closest to the asymptotic rate).

Usage::

    python bench/scaling.py            # both axes, all series
    python bench/scaling.py --quick    # 3 points per series, < 1 min

Results: markdown on stdout and in bench/results/scaling.md, everything in bench/results/scaling.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import _common  # noqa: I001  (first: pins threads before numpy loads)
import numpy as np
from _common import GB, MEM_MARGIN, N_THREADS, available_bytes, fitted_exponent, run_worker

import gradbasis

SERIES = ("gram", "dense", "gram_strategy", "matrix_free")
M_VALUES = (256, 512, 1024, 2048, 4096, 8192, 16384)
WIDTHS = (64, 128, 256, 512, 1024, 2048, 4096)
M_ARCH = {"d_x": 32, "width": 512}
W_ARCH = {"d_x": 32, "m": 1024}


def build(m: int, d_x: int, width: int):
    model = gradbasis.MLP([d_x, width, 1], activation="tanh", bias=True)
    theta = model.init(seed=0)
    X = np.random.default_rng(1).standard_normal((m, d_x))
    Y = np.random.default_rng(2).standard_normal((m, 1))
    return model, theta, X, Y


def estimated_bytes(series: str, m: int, d_x: int, width: int) -> int:
    """What the library says the call needs (gram: K and its layer factors)."""
    model, theta, X, Y = build(min(m, 8), d_x, width)
    if series == "gram":
        return 8 * (m * m + model.gram_factor_floats(m))
    obj = gradbasis.Objective(model, "squared", np.zeros((m, d_x)), np.zeros((m, 1)))
    return int(
        getattr(gradbasis.memory_estimate(obj), "gram" if series == "gram_strategy" else series)
    )


# ------------------------------------------------------------------------------ worker (one point)


def say(tag: str, **fields) -> None:
    print(f"{tag} {json.dumps(fields, default=_common._json_default)}", flush=True)


def point(cfg: dict) -> dict[str, Any]:
    model, theta, X, Y = build(cfg["m"], cfg["d_x"], cfg["width"])
    series = cfg["series"]
    if series == "gram":
        call = lambda Xs, Ys: model.gram(theta, Xs, n_threads=N_THREADS)  # noqa: E731
    else:
        strategy = "gram" if series == "gram_strategy" else series
        call = lambda Xs, Ys: gradbasis.gradient_basis_minimum(  # noqa: E731
            gradbasis.Objective(model, "squared", Xs, Ys), theta, strategy=strategy
        )
    call(X[:8], Y[:8])  # warm-up
    rss_before = _common.vm_rss_bytes()
    times, out = [], None
    while len(times) < 3 and (not times or max(times) < 1.0):
        say("PHASE", phase="run", index=len(times))
        t0 = time.perf_counter()
        out = call(X, Y)
        times.append(time.perf_counter() - t0)
        if series != "gram":
            value = out.value
        del out
    peak = _common.vm_hwm_bytes()
    res = {
        "best_s": min(times),
        "times_s": times,
        "peak_rss_GB": peak / GB,
        "rss_before_GB": rss_before / GB,
        "peak_increment_GB": (peak - rss_before) / GB,
    }
    if series != "gram":
        res["value"] = value
    return res


def worker_main(cfg_path: str) -> int:
    cfg = json.loads(Path(cfg_path).read_text())
    kind = cfg["kinds"][0]
    say("BEGIN", kind=kind)
    try:
        say("RESULT", kind=kind, **point(cfg))
    except Exception as e:  # noqa: BLE001  (reported to the parent)
        say(
            "ERROR",
            kind=kind,
            error=f"{type(e).__name__}: {str(e)[:1000]}",
            traceback=traceback.format_exc()[-2000:],
        )
    return 0


# ------------------------------------------------------------------------------ parent


def run_series(
    series: str, axis: str, values: tuple[int, ...], args, workdir: Path
) -> dict[str, Any]:
    points, spent, note = [], 0.0, None
    for v in values:
        m, width = (v, M_ARCH["width"]) if axis == "m" else (W_ARCH["m"], v)
        d_x = M_ARCH["d_x"]
        est = estimated_bytes(series, m, d_x, width)
        if est > available_bytes() - MEM_MARGIN:
            note = f"not run at {axis}={v}: estimated {est / GB:.1f} GB > {available_bytes() / GB:.1f} GB available"
            break
        done = [p for p in points if p["status"] == "ok"]
        if len(done) >= 2:
            k = np.log(done[-1]["best_s"] / done[-2]["best_s"]) / np.log(
                done[-1][axis] / done[-2][axis]
            )
            projected = done[-1]["best_s"] * (v / done[-1][axis]) ** min(
                max(k, 1.0), 3.0
            )  # no method here is worse than cubic
            if projected > args.cap or spent + projected > args.series_budget:
                note = (
                    f"not run at {axis}={v}: trend of the last two points gives ~{projected:.0f} s "
                    f"(cap {args.cap:.0f} s, series budget {args.series_budget:.0f} s, spent {spent:.0f} s)"
                )
                break
        cfg = {
            "kinds": [f"{series}-{axis}{v}"],
            "series": series,
            "m": m,
            "d_x": d_x,
            "width": width,
        }
        t0 = time.perf_counter()
        res = run_worker(
            [sys.executable, str(Path(__file__).resolve()), "--worker"],
            cfg,
            args.cap,
            args.setup_cap,
            workdir,
        )[cfg["kinds"][0]]
        spent += time.perf_counter() - t0
        res.update({"m": m, "width": width, axis: v, "estimated_GB": est / GB})
        points.append(res)
        shown = (
            f"{res['best_s']:.3g} s, peak {res['peak_rss_GB']:.2f} GB (+{res['peak_increment_GB']:.2f})"
            if res["status"] == "ok"
            else res["error"]
        )
        print(f"  {series} {axis}={v}: {shown}", flush=True)
        if res["status"] != "ok":
            note = f"stopped at {axis}={v}: {res['error']}"
            break
    ok = [p for p in points if p["status"] == "ok"]
    t_pts = [p for p in ok if p["best_s"] >= 0.01]
    m_pts = [p for p in ok if p["peak_increment_GB"] >= 0.01]
    return {
        "series": series,
        "axis": axis,
        "points": points,
        "note": note,
        "time_exponent": fitted_exponent([p[axis] for p in t_pts], [p["best_s"] for p in t_pts]),
        "time_exponent_last_two": fitted_exponent(
            [p[axis] for p in t_pts[-2:]], [p["best_s"] for p in t_pts[-2:]]
        ),
        "memory_exponent": fitted_exponent(
            [p[axis] for p in m_pts], [p["peak_increment_GB"] for p in m_pts]
        ),
        "memory_exponent_last_two": fitted_exponent(
            [p[axis] for p in m_pts[-2:]], [p["peak_increment_GB"] for p in m_pts[-2:]]
        ),
    }


def exponent_cell(s: dict, key: str) -> str:
    if s[key] is None:
        return "—"
    last = s.get(key + "_last_two")
    return f"{s[key]:.2f}" + ("" if last is None else f" ({last:.2f})")


def markdown(all_series: list[dict], axes: dict[str, tuple[int, ...]]) -> str:
    label = {
        "gram": "model.gram",
        "dense": "gbm dense",
        "gram_strategy": "gbm gram",
        "matrix_free": "gbm matrix_free",
    }
    out = []
    for axis, values in axes.items():
        arch = (
            f"MLP {M_ARCH['d_x']}-{M_ARCH['width']}-1, m varies"
            if axis == "m"
            else f"MLP {W_ARCH['d_x']}-w-1, m = {W_ARCH['m']}, w varies"
        )
        out += [
            f"### Scaling against {axis} ({arch}): seconds / peak-RSS increment GB",
            "",
            "| series | "
            + " | ".join(f"{axis}={v}" for v in values)
            + " | time exponent: fit (last two) | memory exponent: fit (last two) |",
            "|" + "---|" * (len(values) + 3),
        ]
        for s in (s for s in all_series if s["axis"] == axis):
            by = {p[axis]: p for p in s["points"]}
            cells = []
            for v in values:
                p = by.get(v)
                if p is None:
                    cells.append("")
                elif p["status"] == "ok":
                    cells.append(f"{p['best_s']:.3g} / {p['peak_increment_GB']:.2f}")
                else:
                    cells.append(p["error"].split(" (")[0])
            te, me = exponent_cell(s, "time_exponent"), exponent_cell(s, "memory_exponent")
            out.append(f"| {label[s['series']]} | " + " | ".join(cells) + f" | {te} | {me} |")
        notes = [
            f"- {label[s['series']]}: {s['note']}"
            for s in all_series
            if s["axis"] == axis and s["note"]
        ]
        out += ["", *notes, ""]
    out.append(
        "gbm = gradient_basis_minimum (squared loss). Memory: increment of the process's peak RSS over its "
        "resident size just before the timed call (fresh process per point); peak RSS and the library's "
        "estimate are in the JSON."
    )
    return "\n".join(out)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="3 points per series, small caps")
    p.add_argument(
        "--series", default=",".join(SERIES), help="comma-separated subset of " + ",".join(SERIES)
    )
    p.add_argument("--axes", default="m,width")
    p.add_argument(
        "--cap", type=float, default=None, help="seconds one point may take (default 45, quick 5)"
    )
    p.add_argument(
        "--series-budget",
        type=float,
        default=None,
        help="seconds per series (default 75, quick 10)",
    )
    p.add_argument("--setup-cap", type=float, default=60)
    p.add_argument("--out-dir", type=Path, default=_common.RESULTS_DIR)
    p.add_argument(
        "--render", type=Path, help="print the tables of an earlier results JSON and exit"
    )
    args = p.parse_args(argv)
    args.series_list = _common.comma_list(args.series)
    args.axis_list = _common.comma_list(args.axes)
    args.cap = args.cap or (5.0 if args.quick else 45.0)
    args.series_budget = args.series_budget or (10.0 if args.quick else 75.0)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker)
    if args.render:
        data, axes = json.loads(args.render.read_text()), {}
        for s in data["series"]:
            axes.setdefault(s["axis"], M_VALUES if s["axis"] == "m" else WIDTHS)
        env = data["environment"]
        print(
            markdown(data["series"], axes)
            + "\n\n"
            + _common.env_block(env)
            + f"\n- wall time {env['wall_s']:.0f} s"
        )
        return 0
    t_start = time.perf_counter()
    env = _common.environment()
    warn = _common.load_warning(env["loadavg_at_start"])
    print(f"# scaling benchmark{'; ' + warn if warn else ''}", flush=True)
    axes = {
        "m": M_VALUES[:3] if args.quick else M_VALUES,
        "width": WIDTHS[:3] if args.quick else WIDTHS,
    }
    axes = {a: v for a, v in axes.items() if a in args.axis_list}
    all_series = []
    with tempfile.TemporaryDirectory(prefix="scaling_bench_") as tmp:
        for axis, values in axes.items():
            for series in args.series_list:
                all_series.append(run_series(series, axis, values, args, Path(tmp)))
    env["wall_s"] = time.perf_counter() - t_start
    md = (
        markdown(all_series, axes)
        + "\n\n"
        + _common.env_block(env)
        + f"\n- wall time {env['wall_s']:.0f} s"
    )
    print()
    print(md)
    _common.write_results(
        "scaling_quick" if args.quick else "scaling",
        env,
        {"series": all_series, "cap_s": args.cap, "series_budget_s": args.series_budget},
        md,
        args.out_dir,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
