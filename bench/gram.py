"""Benchmark: the empirical NTK / Gram matrix K = J J^T of an MLP -- gradbasis vs torch.func,
JAX and neural-tangents, with the machine's DGEMM rate as the limit.

What is measured
----------------
MLP with tanh and biases, float64, layer sizes s_0 = d_x, s_1..s_H (widths), s_{H+1} = d_y, a
batch X of m samples; K has shape (n, n), n = m d_y, rows ordered i*d_y + k like the Jacobian.

* **gradbasis**: ``model.gram(theta, X, n_threads=2)`` (a freshly allocated K, computed layer by
  layer in C++ without forming J). Best of ``repeat`` uncontended calls after one warm-up call
  (case D: one call, no warm-up: the kernel has no compilation and D takes minutes; its peak
  resident memory is recorded, and it is skipped with the reason when MemAvailable is short).
* **quiet machine**: the script waits for a quiet machine first (``--quiet-timeout``), and every
  timing (gradbasis's and each anchor's) records the load average at start and end and the CPU
  seconds of every other process during it; contended timings are rerun (bench/_quiet.py).
* **anchors** (bench/_anchor_worker.py describes each recipe): ``torch.func JC`` (vmap(jacrev)
  per parameter, then sum_p J_p J_p^T), ``torch.func NTK-VP`` (the torch.func NTK tutorial's
  vmap over vjp-then-jvp, outer vmap chunked to fit memory), ``JAX JC`` (jit(vmap(jacrev)) then
  J J^T, x64), and neural-tangents' ``empirical_ntk_fn`` with implementation =
  JACOBIAN_CONTRACTION, NTK_VECTOR_PRODUCTS, STRUCTURED_DERIVATIVES (default ``--anchors``:
  nt_sd, torch_jc, jax_jc, i.e. neural-tangents structured and torch.func / JAX J then J J^T;
  the NTK-vector and nt Jacobian-contraction recipes on request). Every anchor gets the same
  weights (gradbasis's theta through ``model.unflatten``) and runs in its own subprocess (torch and
  JAX from this interpreter, neural-tangents from a separate virtual environment, see below), so
  that a recipe that needs more time or memory than the machine has can be stopped without
  losing the run. JAX recipes are compiled ahead of time before the timed runs; torch recipes
  are warmed up on 8 samples. Each anchor's first timed output is checked against gradbasis's K
  (max |K - K_gb| / max |K_gb| <= 1e-10) before its time is reported; further runs (up to
  ``repeat``) while the runs so far took under ``--repeat-budget`` seconds; best time reported.
* **skips, never guesses**: an anchor is not started when a lower bound on what it must do
  already exceeds the machine: memory (J is n x P floats for Jacobian contraction, K is n^2
  floats for every recipe) against MemAvailable, or flops (2 n^2 P for Jacobian contraction,
  3 m^2 d_y P for NTK-vector products, half the structured count below for structured
  derivatives) at the DGEMM rate measured in this run against ``--cap`` seconds. A started
  anchor whose single run exceeds ``--cap`` seconds is stopped and reported as "> cap"; one whose
  resident memory would exceed MemAvailable - 1 GB is stopped and reported as such.
* **machine limit**: NumPy's DGEMM (2 threads, 2000^3) measured just before and just after each
  case's gradbasis timings; the larger is the case's reference. gradbasis's rate is the
  structured flop count sum_l (2 n^2 s_{l+1} + 2 m^2 s_l) -- the Gram of the back-propagated
  output derivatives plus the Gram of the layer inputs, counted for the FULL matrix (both
  triangles; a kernel that computes one triangle and mirrors it does half of these flops) --
  divided by its best time; ``fraction`` = that rate / DGEMM rate. The **symmetric flop limit**
  is half that count (one triangle) at the DGEMM rate: the time a kernel that computes one
  triangle at DGEMM speed would take; ``gradbasis / limit`` is how far the kernel is from it.

Cases: A m=256, d_x=32, 128-128, d_y=10; B m=1024, d_x=64, 256-256, d_y=10; C m=2048, d_x=32,
512, d_y=1; D m=4096, d_x=64, 512-512-512, d_y=10 (K is 13.4 GB: gradbasis runs only if
MemAvailable allows, anchors only if their bounds allow).

neural-tangents
---------------
The anchor that matters is neural-tangents' STRUCTURED_DERIVATIVES (``implementation=3``), its
strongest mode on these networks, run in float64 (``jax_enable_x64``) on 2 threads. It runs in
a separate virtual environment made by ``scripts/setup_nt_venv.sh`` (default ``.venv-nt``):
jax 0.4.25 + neural-tangents 0.6.5, because neural-tangents 0.6.5's structured mode fails under
jax 0.4.30 (``jax.interpreters.ad`` no longer exposes ``source_info_util`` /
``config.jax_enable_checks``). ``--nt-python`` lists interpreters to try, in order (default
``.venv-nt/bin/python``, then ``/tmp/ntvenv-jax0425/bin/python``); each is smoke-tested
(import, then the three implementations on a tiny MLP) and the first in which STRUCTURED works
is used. Every attempt's outcome (error text included) is recorded in the results.

Threads: 2 everywhere (see bench/_common.py: OMP/MKL/OPENBLAS_NUM_THREADS, CPU affinity for
XLA, torch.set_num_threads, gradbasis n_threads=2); subprocesses inherit the settings.

Usage::

    python bench/gram.py                # cases A, B, C (anchors) and D (gradbasis only)
    python bench/gram.py --quick        # small A-shaped case, < 1 min
    python bench/gram.py --cases A,B --cap 120

Results: markdown on stdout and in bench/results/gram.md, everything in bench/results/gram.json.
Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common  # noqa: I001  (first: pins threads before numpy/torch/jax load)
import numpy as np
from _common import (
    GB,
    MEM_MARGIN,
    N_THREADS,
    available_bytes,
    dgemm_gflops,
    mlp_flops_gram,
    run_worker,
)
from _gram_plan import nt_summary, pick_nt_python, skip_reason

import gradbasis

WORKER = Path(__file__).resolve().parent / "_anchor_worker.py"
REL_TOL = 1e-10
REPO = Path(__file__).resolve().parent.parent
DEFAULT_NT_PYTHONS = f"{REPO / '.venv-nt' / 'bin' / 'python'},/tmp/ntvenv-jax0425/bin/python"
DEFAULT_ANCHORS = "nt_sd,torch_jc,jax_jc"


@dataclass(frozen=True)
class Case:
    name: str
    m: int
    d_x: int
    widths: tuple[int, ...]
    d_y: int
    repeat: int
    anchors: bool = (
        True  # False: gradbasis only (case D: the anchors' K would need the memory twice)
    )

    @property
    def layer_sizes(self) -> list[int]:
        return [self.d_x, *self.widths, self.d_y]

    @property
    def n(self) -> int:
        return self.m * self.d_y


CASES = {
    "A": Case("A", 256, 32, (128, 128), 10, repeat=5),
    "B": Case("B", 1024, 64, (256, 256), 10, repeat=3),
    "C": Case("C", 2048, 32, (512,), 1, repeat=5),
    "D": Case("D", 4096, 64, (512, 512, 512), 10, repeat=1, anchors=False),
}
QUICK_CASE = Case("A-quick", 64, 32, (128, 128), 10, repeat=3)

ANCHORS = {  # key: (label, interpreter group, lower bound kind)
    "torch_jc": ("torch.func JC", "main", "jc"),
    "torch_ntkvp": ("torch.func NTK-VP", "main", "ntkvp"),
    "jax_jc": ("JAX JC", "main", "jc"),
    "nt_sd": ("nt STRUCTURED", "nt", "sd"),
    "nt_jc": ("nt JACOBIAN_CONTRACTION", "nt", "jc"),
    "nt_ntkvp": ("nt NTK_VECTOR_PRODUCTS", "nt", "ntkvp"),
}


# ------------------------------------------------------------------------------ one case


def time_gradbasis(
    model, theta, X, case: Case, max_reruns: int = 3
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """gradbasis's K (the anchors' reference; None for a gradbasis-only case) and ``measure``'s
    record of the timed calls. A gradbasis-only case (D) holds no K between calls: a rerun
    never needs two of them in memory."""

    def call():
        return model.gram(theta, X, n_threads=N_THREADS)

    if not case.anchors:  # large case: no warm-up (no compilation), the single call is the timing
        return None, _common.measure(call, case.repeat, max_reruns=min(max_reruns, 1))
    K = call()  # warm-up and reference
    return K, _common.measure(call, case.repeat, max_reruns=max_reruns)


def run_case(
    case: Case, args, nt_python: str | None, nt_note: str, workdir: Path
) -> dict[str, Any]:
    model = gradbasis.MLP(case.layer_sizes, activation="tanh", bias=True)
    theta = model.init(seed=0)
    X = np.random.default_rng(1).standard_normal((case.m, case.d_x))
    P = model.num_params
    K_bytes = 8.0 * case.n**2
    row: dict[str, Any] = {
        "case": case.name,
        "m": case.m,
        "layer_sizes": case.layer_sizes,
        "n": case.n,
        "num_params": P,
        "K_GB": K_bytes / GB,
        "structured_flops": mlp_flops_gram(case.layer_sizes, case.m, case.d_y),
    }
    need = K_bytes + 8.0 * model.gram_factor_floats(case.m)
    avail = available_bytes()
    row["gradbasis_memory_need_GB"] = need / GB
    if need > avail - 3 * MEM_MARGIN:  # K is allocated in one piece: leave room for everyone else
        row["gradbasis"] = (
            f"skipped: K and the layer factors need {need / GB:.1f} GB, {avail / GB:.1f} GB "
            f"available (3 GB kept free)"
        )
        print(f"case {case.name}: {row['gradbasis']}", flush=True)
        return row
    rss_before = _common.vm_rss_bytes()
    dgemm_before = dgemm_gflops(2000, 3)
    K, timing = time_gradbasis(model, theta, X, case, args.max_reruns)
    dgemm_after = dgemm_gflops(2000, 3)
    row.update(
        gradbasis_timing=timing,
        gradbasis_times_s=timing["times_s"],
        gradbasis_s=timing["best_s"],
        gradbasis_contended=timing["contended"],
        dgemm_GFps_before=dgemm_before,
        dgemm_GFps_after=dgemm_after,
        dgemm_GFps=max(dgemm_before, dgemm_after),
        rss_before_GB=rss_before / GB,
        process_peak_rss_GB=_common.vm_hwm_bytes() / GB,
    )
    row["gradbasis_GFps"] = row["structured_flops"] / row["gradbasis_s"] / GB
    row["fraction_of_dgemm"] = row["gradbasis_GFps"] / row["dgemm_GFps"]
    row["symmetric_limit_s"] = row["structured_flops"] / 2 / (row["dgemm_GFps"] * GB)
    row["gradbasis_over_limit"] = row["gradbasis_s"] / row["symmetric_limit_s"]
    best = timing["attempts"][timing["best_attempt"]]
    print(
        f"case {case.name}: gradbasis {row['gradbasis_s']:.4f} s, {row['gradbasis_GFps']:.1f} GFLOP/s (structured, "
        f"full K), DGEMM {dgemm_before:.1f}/{dgemm_after:.1f} GFLOP/s, symmetric limit "
        f"{row['symmetric_limit_s']:.4f} s ({row['gradbasis_over_limit']:.2f}x); load {best['load_start'][0]:.2f}, "
        f"others {best['other_core_fraction']:.0%} of a core; peak RSS {row['process_peak_rss_GB']:.2f} GB",
        flush=True,
    )
    if not case.anchors:
        row["anchors"] = {}
        row["anchors_note"] = "gradbasis only (the anchors' K would need the memory a second time)"
        return row

    anchors: dict[str, Any] = {}
    plan = {}
    for key, (_label, group, kind) in ANCHORS.items():
        if key not in args.anchors:
            continue
        if group == "nt" and nt_python is None:
            anchors[key] = {"status": "unavailable", "error": nt_note}
            continue
        # The reference K is written to disk and dropped here, so the anchor may use that memory.
        reason = skip_reason(
            kind, case, P, row["dgemm_GFps"], args.cap, available_bytes() + K_bytes
        )
        if reason:
            anchors[key] = {"status": "skipped", **reason}
        else:
            plan[key] = nt_python if group == "nt" else sys.executable
    if plan:
        params = model.unflatten(theta)
        np.savez(workdir / "params.npz", names=np.array(list(params)), **params)
        np.save(workdir / "X.npy", X)
        np.save(workdir / "K_ref.npy", K)
    del K
    base = {
        "params": str(workdir / "params.npz"),
        "X": str(workdir / "X.npy"),
        "K_ref": str(workdir / "K_ref.npy"),
        "activation": "tanh",
        "d_y": case.d_y,
        "rel_tol": REL_TOL,
        "repeat": case.repeat,
        "repeat_budget_s": args.repeat_budget,
        "max_reruns": args.max_reruns,
    }
    for python in dict.fromkeys(plan.values()):  # one worker per interpreter
        kinds = [k for k, py in plan.items() if py == python]
        t0 = time.perf_counter()
        anchors.update(
            run_worker(
                [python, str(WORKER)], {**base, "kinds": kinds}, args.cap, args.setup_cap, workdir
            )
        )
        for key in kinds:
            res = anchors[key]
            shown = (
                f"{res['best_s']:.4f} s (error {res['rel_max_error']:.1e})"
                if res["status"] == "ok"
                else res["error"]
            )
            print(f"  {ANCHORS[key][0]}: {shown}", flush=True)
            if res["status"] == "error" and "disagrees" in res.get("error", ""):
                raise RuntimeError(f"{key} on case {case.name}: {res['error']}")
        print(f"  [{time.perf_counter() - t0:.0f} s wall for {len(kinds)} recipes]", flush=True)
    for f in ("K_ref.npy", "X.npy", "params.npz"):
        (workdir / f).unlink(missing_ok=True)
    row["anchors"] = anchors
    return row


# ------------------------------------------------------------------------------ tables


def time_floor(res: dict[str, Any] | None, cap_s: float) -> tuple[float, str] | None:
    """What is known of a recipe's time: (t, "=") measured, (cap, ">") stopped at the cap,
    (bound, ">=") skipped by its flop bound; None when nothing is (memory, errors)."""
    if res is None:
        return None
    if res["status"] == "ok":
        return res["best_s"], "="
    if res["status"] == "stopped" and res["error"].startswith(">"):
        return cap_s, ">"
    if res["status"] == "skipped" and "bound_s" in res:
        return res["bound_s"], ">="
    return None


def anchor_cell(res: dict[str, Any] | None, t_gb: float, cap_s: float) -> str:
    if res is None:
        return "not run"
    known = time_floor(res, cap_s)
    if res["status"] == "ok":
        return f"{res['best_s']:.3g} ({res['best_s'] / t_gb:.1f}x)"
    if res["status"] == "skipped" and known:
        return f"skipped: >= {known[0]:.0f} s (>= {known[0] / t_gb:.1f}x)"
    if res["status"] == "skipped":
        return res["short"]
    if known:
        return f"> {cap_s:.0f} s, stopped (> {cap_s / t_gb:.1f}x)"
    if res["status"] == "stopped":
        return res["error"].split(" (")[0]
    return f"{res['status']}: {res['error'][:60]}"


def best_ratio(
    row: dict[str, Any], keys: list[str], cap_s: float
) -> tuple[str, float, str, list[str]] | None:
    """(relation, ratio, recipe, excluded) for the fastest of ``keys`` against gradbasis: the
    fastest's time is known exactly only when a measured time is the smallest thing known."""
    known = {k: time_floor(row["anchors"].get(k), cap_s) for k in keys}
    excluded = [k for k, v in known.items() if v is None and k in row["anchors"]]
    known = {k: v for k, v in known.items() if v is not None}
    if not known:
        return None
    k = min(known, key=lambda key: (known[key][0], known[key][1] != "="))
    t, rel = known[k]
    return rel, t / row["gradbasis_s"], k, excluded


def markdown(rows: list[dict[str, Any]], args, nt_info: dict) -> str:
    out = [
        "### Gram matrix K = J J^T: gradbasis against the machine",
        "",
        "| case | m | layer sizes | n = m d_y | params | K GB | gradbasis s | structured GFLOP (full K) "
        "| gradbasis GFLOP/s | DGEMM GFLOP/s | fraction of DGEMM | symmetric limit s | gradbasis / limit "
        "| load at start | other CPU (core) | peak RSS GB |",
        "|" + "---|" * 16,
    ]
    for r in rows:
        if "gradbasis_s" not in r:
            out.append(
                f"| {r['case']} | {r['m']} | {'-'.join(map(str, r['layer_sizes']))} | {r['n']} | {r['num_params']} "
                f"| {r['K_GB']:.2f} | {r['gradbasis']} | | | | | | | | | |"
            )
            continue
        out.append(
            f"| {r['case']} | {r['m']} | {'-'.join(map(str, r['layer_sizes']))} | {r['n']} | {r['num_params']} "
            f"| {r['K_GB']:.2f} | {r['gradbasis_s']:.4g} | {r['structured_flops'] / GB:.1f} | {r['gradbasis_GFps']:.1f} "
            f"| {r['dgemm_GFps']:.1f} | {r['fraction_of_dgemm']:.2f} | {r['symmetric_limit_s']:.3g} "
            f"| {r['gradbasis_over_limit']:.2f} | {_load_cell(r['gradbasis_timing'])} "
            f"| {_other_cell(r['gradbasis_timing'])} | {r['process_peak_rss_GB']:.2f} |"
        )
    labels = [ANCHORS[k][0] for k in ANCHORS if k in args.anchors]
    out += [
        "",
        "### Anchors: seconds (anchor / gradbasis)",
        "",
        "| case | gradbasis s | " + " | ".join(labels) + " |",
        "|" + "---|" * (2 + len(labels)),
    ]
    for r in rows:
        if "gradbasis_s" not in r:
            continue
        cells = [
            anchor_cell(r["anchors"].get(k), r["gradbasis_s"], args.cap)
            for k in ANCHORS
            if k in args.anchors
        ]
        out.append(f"| {r['case']} | {r['gradbasis_s']:.4g} | " + " | ".join(cells) + " |")
    checked = {
        r["case"]: [
            f"{ANCHORS[k][0]} {v['rel_max_error']:.1e}"
            for k, v in r.get("anchors", {}).items()
            if v["status"] == "ok"
        ]
        for r in rows
    }
    out += [
        "",
        "Check before timing, max |K - K_gradbasis| / max |K_gradbasis|: "
        + "; ".join(f"{case}: {', '.join(errs)}" for case, errs in checked.items() if errs),
    ]
    out += ["", "### Targets (measured; a target is met only where both sides were measured)", ""]
    out += target_lines(rows, args.cap)
    out += [
        "",
        f"neural-tangents: {nt_info['summary']}",
        "The structured count is that of the full K (both triangles). gradbasis computes the tiles on and above "
        "the diagonal and mirrors them (cpp/src/gram.cpp), i.e. about half of that count, so its fraction of "
        "DGEMM on the flops it actually performs is about half the number shown, and the number shown can exceed 1.",
        f"Caps: one anchor run <= {args.cap:.0f} s; skipped = a lower bound (flops at the measured DGEMM rate, "
        "or bytes against MemAvailable) already exceeds the limit; '> cap' = started and stopped at the cap.",
    ]
    return "\n".join(out)


def _best_attempt(timing: dict[str, Any]) -> dict[str, Any]:
    return timing["attempts"][timing["best_attempt"]]


def _load_cell(timing: dict[str, Any]) -> str:
    a = _best_attempt(timing)
    return f"{a['load_start'][0]:.2f}" + (" (contended)" if a["contended"] else "")


def _other_cell(timing: dict[str, Any]) -> str:
    a = _best_attempt(timing)
    return f"{a['other_core_fraction']:.0%} ({len(timing['attempts'])} attempts)"


def target_lines(rows, cap_s: float) -> list[str]:
    """The issue's targets: gradbasis within 2x of the symmetric flop limit; neural-tangents'
    structured mode at least 5x slower on A, B and C."""
    lines = []
    for r in rows:
        if "gradbasis_s" not in r:
            lines.append(f"- case {r['case']}: gradbasis {r['gradbasis']}")
            continue
        over = r["gradbasis_over_limit"]
        parts = [
            f"gradbasis / symmetric flop limit {over:.2f} (target <= 2: {'met' if over <= 2 else 'not met'})"
        ]
        if r["case"][0] in "ABC":
            got = best_ratio(r, ["nt_sd"], cap_s)
            if got is None:
                parts.append("neural-tangents STRUCTURED: no time known: target not measured")
            else:
                rel, ratio, _, _ = got
                met = "met" if ratio >= 5 else ("not met" if rel == "=" else "not shown")
                parts.append(
                    f"neural-tangents STRUCTURED / gradbasis {rel} {ratio:.1f}x (target >= 5x: {met})"
                )
        lines.append(f"- case {r['case']}: " + "; ".join(parts))
    return lines


# ------------------------------------------------------------------------------ driver


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", default="A,B,C,D", help="comma-separated subset of A,B,C,D")
    p.add_argument("--quick", action="store_true", help="one small A-shaped case (m=64), caps 15 s")
    p.add_argument(
        "--anchors",
        default=DEFAULT_ANCHORS,
        help=f"comma-separated subset of {','.join(ANCHORS)} (default {DEFAULT_ANCHORS})",
    )
    p.add_argument(
        "--cap",
        type=float,
        default=None,
        help="seconds one anchor run may take (default 60, quick 15)",
    )
    p.add_argument(
        "--setup-cap",
        type=float,
        default=180,
        help="seconds for an anchor's imports and compilation",
    )
    p.add_argument(
        "--repeat-budget",
        type=float,
        default=None,
        help="no further anchor runs once its runs took this long (default 20 s, quick 3 s)",
    )
    p.add_argument(
        "--nt-python",
        default=DEFAULT_NT_PYTHONS,
        help="interpreters to try for neural-tangents, in order",
    )
    p.add_argument("--out-dir", type=Path, default=_common.RESULTS_DIR)
    p.add_argument("--name", default=None, help="results file stem (default gram / gram_quick)")
    p.add_argument(
        "--render", type=Path, help="print the tables of an earlier results JSON and exit"
    )
    _common.add_quiet_args(p)
    args = p.parse_args(argv)
    args.case_list = (
        [QUICK_CASE] if args.quick else [CASES[c] for c in _common.comma_list(args.cases)]
    )
    args.anchors = _common.comma_list(args.anchors)
    unknown = set(args.anchors) - set(ANCHORS)
    if unknown:
        p.error(f"unknown anchors {sorted(unknown)}")
    args.cap = args.cap or (15.0 if args.quick else 60.0)
    args.repeat_budget = args.repeat_budget or (3.0 if args.quick else 20.0)
    return args


def render(path: Path, args) -> int:
    """Tables of an earlier run, from its JSON (same code as at the end of a run)."""
    data = json.loads(path.read_text())
    args.cap = data["cap_s"]
    args.anchors = [k for k in ANCHORS if any(k in r.get("anchors", {}) for r in data["results"])]
    env = data["environment"]
    print(
        markdown(data["results"], args, data["neural_tangents"])
        + "\n\n"
        + _common.env_block(env)
        + f"\n- wall time {env['wall_s']:.0f} s"
    )
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.render:
        return render(args.render, args)
    t_start = time.perf_counter()
    import jax  # noqa: F401  (versions for the record; the recipes run in subprocesses)
    import scipy  # noqa: F401
    import torch  # noqa: F401

    print(f"# Gram benchmark, {N_THREADS} threads, CPUs {_common.PINNED_CPUS}", flush=True)
    quiet = _common.quiet_start(args)
    env = _common.environment({"quiet_wait": quiet})
    warn = _common.load_warning(env["loadavg_at_start"])
    if warn:
        print(f"# {warn}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gram_bench_") as tmp:
        workdir = Path(tmp)
        nt_python, nt_attempts = None, []
        if any(ANCHORS[a][1] == "nt" for a in args.anchors):
            nt_python, nt_attempts = pick_nt_python(_common.comma_list(args.nt_python), workdir)
        nt_info = {
            "python": nt_python,
            "attempts": nt_attempts,
            "summary": nt_summary(nt_python, nt_attempts),
        }
        print(f"# neural-tangents: {nt_info['summary']}", flush=True)
        for case in args.case_list:
            rows.append(run_case(case, args, nt_python, nt_info["summary"], workdir))
    env["wall_s"] = time.perf_counter() - t_start
    md = (
        markdown(rows, args, nt_info)
        + "\n\n"
        + _common.env_block(env)
        + f"\n- wall time {env['wall_s']:.0f} s"
    )
    print()
    print(md)
    name = args.name or ("gram_quick" if args.quick else "gram")
    _common.write_results(
        name,
        env,
        {"neural_tangents": nt_info, "results": rows, "cap_s": args.cap},
        md,
        args.out_dir,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
