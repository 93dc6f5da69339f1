"""Benchmark (named dask_bench, not distributed, so that it never shadows the ``distributed``
package when run from bench/): the induced infimum on Dask workers -- ``distributed_induced_minimum(...,
method=M)`` for M = "resolved" (Theorem 1's certificate over the numerical span) and "gram" (the
Gram floor) on a ``LocalCluster`` of 1 and 2 workers, each next to its single-machine
counterpart, with the per-block costs that project it to more workers.

What is measured
----------------
Case B of bench/gram.py (tanh MLP 64-256-256-10, m = 1024, n = 10,240, squared loss, every
input twice: bench/_induced_recipes.py's ``duplicated`` problem), theta = ``model.init(0)``:

* **single machine**: for "resolved", ``resolved_span_minimum`` (what ``theorem1(...,
  strategy="gram")`` solves); for "gram", ``gradient_basis_minimum(obj, theta, strategy="gram")``
  (2 threads).
* **Dask, W workers** (W = 1, 2): ``distributed_induced_minimum((model, "squared", X, Y),
  theta, client=Client(LocalCluster(n_workers=W, threads_per_worker=1)), method=M,
  n_threads=2 // W)``: the C++ core in each task uses the worker's share of the 2 cores, and
  the workers' BLAS gets the same (OMP/MKL/OPENBLAS_NUM_THREADS). Workers are started and
  warmed up (gradbasis imported, one tiny solve) before the timing; the cluster's start is
  recorded apart.

Every timing records the load and the other processes' CPU and is rerun when contended
(bench/_quiet.py; the Dask workers are this benchmark's children, so their CPU is "ours").
Per-block costs come from the scheduler's task stream of the reported attempt: for each task
kind (``key_split`` of its key) the count and the compute seconds (total, mean, max). The
projection for W workers on machines like this one (2 cores each) is

    T(W) = T_serial + C_blocks / min(W, blocks),

with C_blocks the compute seconds of the worker tasks at W = 1 and T_serial = T(1) - C_blocks
(gathering K, its pivoted Cholesky and the solve on the driver, scheduling): an estimate, not
a measurement, and labelled so.

Usage::

    python bench/dask_bench.py             # case B, W = 1, 2
    python bench/dask_bench.py --quick     # m = 128, < 2 min
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import _common  # noqa: I001  (first: pins threads)
from _common import GB
from _induced_recipes import problem
from gram import CASES, Case

import gradbasis

QUICK_CASE = Case("B-quick", 128, 64, (64, 64), 10, repeat=2)
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
SINGLE_LABEL = {
    "resolved": "resolved_span_minimum (theorem1's gram strategy)",
    "gram": "strategy='gram' (Gram floor)",
}


def single_machine(method: str, obj, theta):
    """The single-machine counterpart of ``distributed_induced_minimum(..., method=method)``."""
    if method == "resolved":
        from gradbasis.solve.resolved_span import resolved_span_minimum

        res, _how = resolved_span_minimum(
            obj.model, theta, obj.X, obj.loss, obj.Y, obj.weights, n_threads=2
        )
        return res
    return gradbasis.gradient_basis_minimum(obj, theta, strategy="gram")


def block_costs(stream: list[dict]) -> dict[str, dict[str, float]]:
    """Per task kind: count and compute seconds (total, mean, max) from a task stream."""
    from dask.utils import key_split

    out: dict[str, dict[str, float]] = {}
    for task in stream:
        secs = sum(
            s["stop"] - s["start"] for s in task.get("startstops", ()) if s["action"] == "compute"
        )
        d = out.setdefault(key_split(task["key"]), {"count": 0, "total_s": 0.0, "max_s": 0.0})
        d["count"] += 1
        d["total_s"] += secs
        d["max_s"] = max(d["max_s"], secs)
    for d in out.values():
        d["mean_s"] = d["total_s"] / d["count"]
    return out


def run_dask(W: int, method: str, model, theta, X, Y, args, single) -> dict[str, Any]:
    from dask.distributed import Client, LocalCluster, get_task_stream

    from gradbasis.solve.distributed import distributed_induced_minimum

    threads = max(1, 2 // W)
    saved = {v: os.environ.get(v) for v in THREAD_VARS}
    os.environ.update({v: str(threads) for v in THREAD_VARS})  # inherited by the workers
    t0 = time.perf_counter()
    cluster = LocalCluster(
        n_workers=W, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster)
    start_s = time.perf_counter() - t0
    row: dict[str, Any] = {"workers": W, "n_threads_per_task": threads, "cluster_start_s": start_s}
    try:
        kw = {"client": client, "method": method, "n_threads": threads}
        if args.chunk_size:
            kw["chunk_size"] = args.chunk_size
        distributed_induced_minimum((model, "squared", X[:16], Y[:16]), theta, **kw)  # warm-up
        streams: list[list[dict]] = []
        results: list[Any] = []

        def once():
            with get_task_stream(client) as ts:
                res = distributed_induced_minimum((model, "squared", X, Y), theta, **kw)
            streams.append(list(ts.data))
            results.append(res)
            return None

        timing = _common.measure(
            once, args.repeat, max_reruns=args.max_reruns, budget_s=args.repeat_budget
        )
        best = timing["best_attempt"]
        res = results[best]
        row.update(
            timing=timing,
            seconds=timing["best_s"],
            contended=timing["contended"],
            value=res.value,
            lower=res.lower,
            rank=res.rank,
            strategy=res.strategy,
            details=res.details,
            value_minus_single=res.value - single["value"],
            block_costs=block_costs(streams[best]),
        )
    finally:
        client.close()
        cluster.close()
        for v, old in saved.items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old
    return row


def projection(rows: list[dict], workers=(1, 2, 4, 8, 16)) -> dict[str, Any] | None:
    one = next((r for r in rows if r["workers"] == 1 and "seconds" in r), None)
    if one is None:
        return None
    costs = one["block_costs"]
    c_blocks = sum(d["total_s"] for d in costs.values())
    blocks = max((d["count"] for d in costs.values()), default=1)
    serial = max(one["seconds"] - c_blocks, 0.0)
    return {
        "model": "T(W) = T_serial + C_blocks / min(W, blocks)",
        "T_serial_s": serial,
        "C_blocks_s": c_blocks,
        "blocks": blocks,
        "projected_s": {str(w): serial + c_blocks / min(w, blocks) for w in workers},
    }


def markdown(payload: dict[str, Any]) -> str:
    return "\n\n".join(
        method_markdown(payload, method, part) for method, part in payload["methods"].items()
    )


def method_markdown(payload: dict[str, Any], method: str, part: dict[str, Any]) -> str:
    s = part["single"]
    a = s["timing"]["attempts"][s["timing"]["best_attempt"]]
    out = [
        f"### Dask: case {payload['case']} squared loss, method='{method}' (n = {payload['n']}, params {payload['num_params']})",
        "",
        "| run | seconds | / single machine | value - single | load | other CPU | cluster start s |",
        "|---|---|---|---|---|---|---|",
        f"| single machine, {SINGLE_LABEL[method]} | {s['seconds']:.3g} | 1.00 | 0 | {a['load_start'][0]:.2f} "
        f"| {a['other_core_fraction']:.0%} | |",
    ]
    for r in part["dask"]:
        if "seconds" not in r:
            out.append(
                f"| Dask, {r['workers']} worker(s) | {r.get('error', 'not run')} | | | | | |"
            )
            continue
        b = r["timing"]["attempts"][r["timing"]["best_attempt"]]
        out.append(
            f"| Dask LocalCluster, {r['workers']} worker(s) x {r['n_threads_per_task']} thread(s) | {r['seconds']:.3g} "
            f"| {r['seconds'] / s['seconds']:.2f} | {r['value_minus_single']:.1e} | {b['load_start'][0]:.2f} "
            f"| {b['other_core_fraction']:.0%} | {r['cluster_start_s']:.1f} |"
        )
    for r in part["dask"]:
        if "block_costs" in r:
            out.append(
                f"- {r['workers']} worker(s), task costs: "
                + "; ".join(
                    f"{k} {d['count']} x {d['mean_s']:.3g} s (max {d['max_s']:.3g})"
                    for k, d in r["block_costs"].items()
                )
            )
    p = part.get("projection")
    if p:
        out.append(
            f"- projection (estimate, not measured; machines of 2 cores each): T_serial {p['T_serial_s']:.3g} s + "
            f"C_blocks {p['C_blocks_s']:.3g} s / min(W, {p['blocks']}): "
            + ", ".join(f"W={w}: {t:.3g} s" for w, t in p["projected_s"].items())
        )
    return "\n".join(out)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="m = 128, < 2 min")
    p.add_argument("--workers", default="1,2")
    p.add_argument("--methods", default="resolved,gram", help="distributed methods to time")
    p.add_argument("--repeat", type=int, default=None, help="timings per contender (2; quick 2)")
    p.add_argument("--repeat-budget", type=float, default=60.0)
    p.add_argument(
        "--chunk-size", type=int, default=None, help="samples per chunk (default: the library's)"
    )
    p.add_argument("--name", default=None)
    p.add_argument("--out-dir", type=Path, default=_common.RESULTS_DIR)
    _common.add_quiet_args(p)
    args = p.parse_args(argv)
    args.repeat = args.repeat or 2
    if args.quick and args.chunk_size is None:
        args.chunk_size = 32  # several blocks even on the small case
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    import dask
    import distributed

    print("# Dask benchmark", flush=True)
    quiet = _common.quiet_start(args)
    env = _common.environment(
        {"quiet_wait": quiet, "dask": dask.__version__, "distributed": distributed.__version__}
    )
    case = QUICK_CASE if args.quick else CASES["B"]
    model, theta, X, Y, exact = problem(case, "squared")
    obj = gradbasis.Objective(model, "squared", X, Y)
    small = gradbasis.Objective(model, "squared", X[:16], Y[:16])
    methods: dict[str, Any] = {}
    for method in _common.comma_list(args.methods):
        single_machine(method, small, theta)  # warm-up
        out: dict[str, Any] = {}

        def single_once(method=method, out=out):
            out["res"] = single_machine(method, obj, theta)

        timing = _common.measure(
            single_once, args.repeat, max_reruns=args.max_reruns, budget_s=args.repeat_budget
        )
        single = {
            "timing": timing,
            "seconds": timing["best_s"],
            "value": out["res"].value,
            "lower": out["res"].lower,
            "rank": out["res"].rank,
            "details": out["res"].details,
        }
        print(
            f"single machine {method}: {single['seconds']:.3f} s, value {single['value']:.10g}",
            flush=True,
        )
        rows = []
        for W in (int(w) for w in _common.comma_list(args.workers)):
            try:
                rows.append(run_dask(W, method, model, theta, X, Y, args, single))
                print(f"Dask {method} W={W}: {rows[-1]['seconds']:.3f} s", flush=True)
            except Exception as e:  # noqa: BLE001  (recorded)
                rows.append({"workers": W, "error": f"{type(e).__name__}: {str(e)[:500]}"})
                print(f"Dask {method} W={W}: {rows[-1]['error']}", flush=True)
        methods[method] = {"single": single, "dask": rows, "projection": projection(rows)}
    payload = {
        "case": case.name,
        "m": case.m,
        "n": case.n,
        "num_params": model.num_params,
        "layer_sizes": case.layer_sizes,
        "exact": exact,
        "methods": methods,
        "process_peak_rss_GB": _common.vm_hwm_bytes() / GB,
    }
    env["wall_s"] = time.perf_counter() - t_start
    md = (
        markdown(payload) + "\n\n" + _common.env_block(env) + f"\n- wall time {env['wall_s']:.0f} s"
    )
    print()
    print(md)
    _common.write_results(
        args.name or ("dask_quick" if args.quick else "dask"), env, payload, md, args.out_dir
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
