"""Benchmark: the induced infimum and the Theorem 1 certificate end to end from theta --
gradbasis against the fastest way a user has without it, side by side in one run.

Sections (``--sections``; problems and recipes in bench/_induced_recipes.py):

* ``squared`` (cases A and C): ``gradient_basis_minimum(strategy="auto")`` against the FASTEST
  of three user recipes, each run to its own convergence: torch.func J then
  ``numpy.linalg.lstsq``; torch.func J then ``scipy.sparse.linalg.lsqr`` (atol = btol = 1e-14);
  scipy LSQR on a LinearOperator of torch.func jvp / vjp (J never formed). The baseline is the
  fastest recipe whose value is within gradbasis's certified gap (value - lower, at least
  1e-10 relative) of gradbasis's lower bound; the table names it. ``--strategies`` adds forced
  gradbasis strategies; case A adds the gram strategy stage by stage.
* ``cross_entropy`` (cases A and B): ``strategy="auto"`` first, then torch.func J + scipy
  L-BFGS-B from a = 0, stopped as soon as its value is within gradbasis's certified gap of
  gradbasis's lower bound (value <= lower + gap), or at ``--lbfgs-cap`` seconds (then the
  ratio is a lower bound, marked ">").
* ``theorem1`` (cases A, B, C): the honest certificate ``theorem1(obj, theta,
  strategy="gram")`` timed end to end from theta, on a critical point where L(theta) is the
  induced infimum (so "holds" needs the numerical span resolved), next to ``model.gram(theta,
  X)`` alone in the same process; ratio = certificate / K (targets: B <= 5x, C <= 3x). Records
  verdict, judged_by, the stage seconds, scope, rank and the induced solve's details.
* ``D`` (case D, 64-512-512-512-10): the squared-loss certificate by ``strategy="auto"`` with
  ``memory_budget`` = min(24 GiB, MemAvailable - 1 GB), gradbasis only, peak resident memory
  recorded: ``strategy="gram"`` (else "dense") at the largest m of 4096, 3072, 2048, 1536, 1024
  where it fits that budget by gradbasis's own estimate (every size tried is recorded).

Every contender runs in a subprocess of this interpreter (2 threads, bench/_common.py), one
timing is best of up to ``repeat`` uncontended calls while the calls took < ``--repeat-budget``;
each timing records the load and the other processes' CPU and contended ones are rerun
(bench/_quiet.py). A run over ``--cap`` (L-BFGS: ``--lbfgs-cap``) is stopped and shown "> cap".

Usage::

    python bench/induced.py                    # every section at full size
    python bench/induced.py --quick            # tiny cases, < 2 min
    python bench/induced.py --sections theorem1 --cases B

Results: markdown on stdout and in bench/results/induced.md, everything in
bench/results/induced.json (bench/tables.py renders the README tables from it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common  # noqa: I001  (first: pins threads before numpy/torch load)
from _common import GB, available_bytes, dgemm_gflops, run_worker
from _induced_recipes import problem, worker_main
from gram import CASES, Case

import gradbasis

GIB = 2**30
SECTIONS = {  # section -> (loss, problem, default cases)
    "squared": ("squared", "duplicated", "A,C"),
    "cross_entropy": ("cross_entropy", "duplicated", "A,B"),
    "theorem1": ("squared", "critical", "A,B,C"),
    "D": ("squared", "duplicated", "D"),
}
USER_SQUARED = ("torch_lstsq", "torch_lsqr", "torch_lsqr_op")
LABELS = {
    "gb_auto": "gradbasis auto",
    "gb_dense": "gradbasis dense",
    "gb_gram": "gradbasis gram",
    "gb_matrix_free": "gradbasis matrix_free",
    "gb_theorem1": "theorem1(strategy='gram')",
    "torch_lstsq": "torch.func J + numpy lstsq",
    "torch_lsqr": "torch.func J + scipy lsqr",
    "torch_lsqr_op": "scipy LSQR on torch jvp/vjp",
    "torch_lbfgs": "torch.func J + scipy L-BFGS",
    "gram_steps": "gram strategy, stage by stage",
}
QUICK = {
    "A": Case("A-quick", 64, 32, (128, 128), 10, repeat=2),
    "B": Case("B-quick", 96, 16, (64, 64), 10, repeat=2),
    "C": Case("C-quick", 128, 32, (256,), 1, repeat=2),
    "D": Case("D-quick", 256, 64, (64, 64, 64), 10, repeat=1),
}
D_SIZES = (4096, 3072, 2048, 1536, 1024)


# ------------------------------------------------------------------------------ planning


def d_case(args) -> tuple[Case, dict[str, Any]]:
    """Case D at the largest m whose full-span certificate fits the budget (module docstring)."""
    base = QUICK["D"] if args.quick else CASES["D"]
    budget = int(min(24 * GIB, available_bytes() - 1e9))
    sizes = (base.m,) if args.quick else D_SIZES
    tried = []
    for m in sizes:
        case = Case(
            base.name if m == base.m else f"D(m={m})", m, base.d_x, base.widths, base.d_y, 1
        )
        model, theta, X, Y, _ = problem(case, "squared")
        est = gradbasis.memory_estimate(gradbasis.Objective(model, "squared", X, Y), budget)
        row = {"m": m, "dense_GB": est.dense / GB, "gram_GB": est.gram / GB}
        tried.append(row)
        for strategy in ("gram", "dense"):
            if est.fits(strategy):
                return case, {"memory_budget": budget, "tried": tried, "d_strategy": strategy}
    return case, {
        "memory_budget": budget,
        "tried": tried,
        "d_strategy": "auto",
        "note": "no full-span strategy fits at any size tried; auto at the smallest",
    }


def cap_for(kind: str, args) -> float:
    return args.lbfgs_cap if kind == "torch_lbfgs" else args.cap


def run_kinds(kinds, case, section, args, workdir, extra=None) -> dict[str, dict]:
    loss, prob, _ = SECTIONS[section]
    cfg = {
        "case": vars(case),
        "loss": loss,
        "problem": prob,
        "kinds": kinds,
        "cap_s": max(cap_for(k, args) for k in kinds),
        "repeat": case.repeat,
        "repeat_budget_s": args.repeat_budget,
        "max_reruns": args.max_reruns,
        **(extra or {}),
    }
    out = run_worker(
        [sys.executable, str(Path(__file__).resolve()), "--worker"],
        cfg,
        cfg["cap_s"],
        args.setup_cap,
        workdir,
    )
    for kind, r in out.items():
        shown = f"{r['best_s']:.3f} s" if r["status"] == "ok" else r["error"][:200]
        if r["status"] == "ok" and "value" in r:
            shown += f", value {r['value']:.10g}"
        if r["status"] == "ok" and "verdict" in r:
            shown += f", verdict {r['verdict']} (judged by {r['judged_by']}), K alone {r['gram_K_s']:.3f} s"
        print(f"  {case.name} {section} {LABELS.get(kind, kind)}: {shown}", flush=True)
    return out


def run_section(section: str, case: Case, args, workdir: Path, info=None) -> dict[str, Any]:
    loss, prob, _ = SECTIONS[section]
    model, theta, X, Y, exact = problem(case, loss, prob)
    obj = gradbasis.Objective(model, loss, X, Y)
    row: dict[str, Any] = {
        "section": section,
        "case": case.name,
        "m": case.m,
        "layer_sizes": case.layer_sizes,
        "n": case.n,
        "num_params": model.num_params,
        "loss": loss,
        "problem": prob,
        "exact": exact,
        "dgemm_GFps": dgemm_gflops(2000, 3),
        "caps": {"run": args.cap, "torch_lbfgs": args.lbfgs_cap},
        "cap_s": args.cap,
        **(info or {}),
    }
    t0 = time.perf_counter()
    extra = {"memory_budget": info["memory_budget"]} if info else {}
    if section == "theorem1":
        res = run_kinds(["gb_theorem1"], case, section, args, workdir)
    elif section == "D":
        row["auto_choice"] = gradbasis.choose_strategy(obj, extra["memory_budget"])[0]
        res = run_kinds([f"gb_{info['d_strategy']}"], case, section, args, workdir, extra)
    else:
        row["auto_choice"] = gradbasis.choose_strategy(obj)[0]
        gb = ["gb_auto"] + [f"gb_{s}" for s in args.strategies if s != row["auto_choice"]]
        if section == "squared" and case.name.startswith("A") and args.gram_steps:
            gb.append("gram_steps")
        res = run_kinds(gb, case, section, args, workdir)
        auto = res["gb_auto"]
        target = None
        if auto["status"] == "ok":
            gap = max(auto["value"] - auto["lower"], 1e-10 * max(1.0, abs(auto["lower"])))
            target = auto["lower"] + gap
        row["target"] = target
        users = list(USER_SQUARED) if section == "squared" else ["torch_lbfgs"]
        res.update(run_kinds(users, case, section, args, workdir, {"target": target}))
    row["results"] = res
    row["wall_s"] = time.perf_counter() - t0
    if section in ("squared", "cross_entropy"):
        row["baseline"] = pick_baseline(row)
    return row


def pick_baseline(row: dict[str, Any]) -> dict[str, Any] | None:
    """The fastest user recipe that reached gradbasis's certified interval (value <= target);
    where none did, the fastest known time with relation '>' (it had not got there yet)."""
    res, target = row["results"], row.get("target")
    users = [k for k in res if k.startswith("torch_")]
    known = []
    for k in users:
        r = res[k]
        if r["status"] == "ok":
            reached = target is None or r["value"] <= target
            known.append((r["best_s"], k, "=" if reached else ">"))
        elif r["status"] == "stopped" and r["error"].startswith(">"):
            known.append((cap_for_row(row, k), k, ">"))
    exact = [x for x in known if x[2] == "="]
    pool = exact or known
    if not pool:
        return None
    t, k, rel = min(pool)
    auto = res.get("gb_auto", {})
    ratio = t / auto["best_s"] if auto.get("status") == "ok" else None
    return {"kind": k, "seconds": t, "relation": rel, "ratio": ratio}


def cap_for_row(row, kind) -> float:
    return row.get("caps", {}).get(kind, 0.0) or float(row.get("cap_s", 0.0))


# ------------------------------------------------------------------------------ markdown


def _att(r: dict) -> dict:
    return r["attempts"][r["best_attempt"]] if "attempts" in r else {}


def _quiet_cells(r: dict) -> str:
    a = _att(r)
    if not a:
        return "— | —"
    flag = " (contended)" if a["contended"] else ""
    return f"{a['load_start'][0]:.2f}{flag} | {a['other_core_fraction']:.0%}"


def _secs(r: dict) -> str:
    if r.get("status") == "ok":
        return f"{r['best_s']:.3g}"
    return r.get("error", "not run").split(" (")[0]


def markdown(rows: list[dict], args) -> str:
    out = ["### Induced infimum from theta", ""]
    out += [
        "| case | loss | contender | seconds | value | lower | vs exact | reached gap | load | other CPU | peak RSS GB |",
        "|" + "---|" * 11,
    ]
    for row in [r for r in rows if r["section"] in ("squared", "cross_entropy", "D")]:
        for kind, r in row["results"].items():
            if kind == "gram_steps":
                continue
            label = LABELS.get(kind, kind)
            if kind == "gb_auto":
                label += f" ({r.get('strategy', row.get('auto_choice'))})"
            val = f"{r['value']:.10g}" if r.get("status") == "ok" and "value" in r else "—"
            low = f"{r['lower']:.10g}" if r.get("status") == "ok" and "lower" in r else "—"
            vs = (
                f"{(r['value'] - row['exact']) / row['exact']:.1e}"
                if r.get("status") == "ok" and "value" in r
                else "—"
            )
            reached = ""
            if kind.startswith("torch") and r.get("status") == "ok" and row.get("target"):
                reached = "yes" if r["value"] <= row["target"] else "no"
            rss = f"{r['observed_peak_rss_GB']:.2f}" if "observed_peak_rss_GB" in r else "—"
            out.append(
                f"| {row['case']} | {row['loss']} | {label} | {_secs(r)} | {val} | {low} | {vs} | {reached} "
                f"| {_quiet_cells(r)} | {rss} |"
            )
    out += ["", "Baselines (fastest user recipe that reached gradbasis's certified interval):", ""]
    for row in rows:
        b = row.get("baseline")
        if b:
            ratio = (
                f"{'' if b['relation'] == '=' else '> '}{b['ratio']:.1f}x" if b["ratio"] else "—"
            )
            out.append(
                f"- {row['case']} {row['loss']}: {LABELS[b['kind']]} {b['relation']} {b['seconds']:.3g} s; "
                f"baseline / gradbasis auto {ratio}"
            )
    thm = [r for r in rows if r["section"] == "theorem1"]
    if thm:
        out += [
            "",
            "### Theorem 1 certificate (strategy='gram') end to end from theta, against K alone",
            "",
            "| case | n | params | K alone s | certificate s | certificate / K | verdict | judged by | rank | load | other CPU |",
            "|" + "---|" * 11,
        ]
        for row in thm:
            r = row["results"]["gb_theorem1"]
            if r["status"] != "ok":
                out.append(
                    f"| {row['case']} | {row['n']} | {row['num_params']} | | {_secs(r)} | | | | | | |"
                )
                continue
            out.append(
                f"| {row['case']} | {row['n']} | {row['num_params']} | {r['gram_K_s']:.3g} | {r['best_s']:.3g} "
                f"| {r['best_s'] / r['gram_K_s']:.1f}x | {r['verdict']} | {r['judged_by']} | {r['rank']} "
                f"| {_quiet_cells(r)} |"
            )
        for row in thm:
            r = row["results"]["gb_theorem1"]
            if r["status"] == "ok":
                stages = ", ".join(f"{k} {v:.3g}" for k, v in r["stage_seconds"].items())
                out.append(f"- {row['case']}: stages (s) {stages}; scope: {r['scope']}")
    for row in rows:
        r = row["results"].get("gram_steps", {})
        if r.get("status") == "ok":
            out.append(
                f"- {row['case']} gram strategy by stage (s): "
                + ", ".join(f"{k} {v:.3g}" for k, v in r["stage_s"].items())
            )
        if row["section"] == "D":
            out.append(
                f"- case D: ran at m = {row['m']} (budget {row['memory_budget'] / GB:.1f} GB); sizes tried: "
                + "; ".join(
                    f"m={t['m']}: dense {t['dense_GB']:.1f} GB, gram {t['gram_GB']:.1f} GB"
                    for t in row["tried"]
                )
            )
    out += [
        "",
        f"Caps: one run <= {args.cap:.0f} s, L-BFGS <= {args.lbfgs_cap:.0f} s; a contention-judged "
        "timing records the load at start and the other processes' CPU (share of one core).",
    ]
    return "\n".join(out)


# ------------------------------------------------------------------------------ driver


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--sections", default=",".join(SECTIONS), help="subset of " + ",".join(SECTIONS))
    p.add_argument("--cases", default=None, help="restrict every section to these cases")
    p.add_argument("--quick", action="store_true", help="tiny cases of the same shapes, < 2 min")
    p.add_argument(
        "--cap", type=float, default=None, help="seconds one run may take (300; quick 30)"
    )
    p.add_argument(
        "--lbfgs-cap", type=float, default=None, help="seconds for J + L-BFGS (450; quick 30)"
    )
    p.add_argument("--setup-cap", type=float, default=180)
    p.add_argument("--repeat-budget", type=float, default=10.0)
    p.add_argument(
        "--strategies", default="", help="forced strategies to add: dense,gram,matrix_free"
    )
    p.add_argument("--no-gram-steps", dest="gram_steps", action="store_false")
    p.add_argument(
        "--name", default=None, help="results file stem (default induced / induced_quick)"
    )
    p.add_argument("--out-dir", type=Path, default=_common.RESULTS_DIR)
    p.add_argument("--render", type=Path, help="print the tables of an earlier results JSON")
    _common.add_quiet_args(p)
    args = p.parse_args(argv)
    args.section_list = _common.comma_list(args.sections)
    args.strategies = _common.comma_list(args.strategies)
    args.cap = args.cap or (30.0 if args.quick else 300.0)
    args.lbfgs_cap = args.lbfgs_cap or (30.0 if args.quick else 450.0)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker)
    if args.render:
        data = json.loads(args.render.read_text())
        print(markdown(data["results"], args) + "\n\n" + _common.env_block(data["environment"]))
        return 0
    t_start = time.perf_counter()
    import scipy  # noqa: F401  (versions for the record)
    import torch  # noqa: F401

    print("# induced-infimum and certificate benchmark", flush=True)
    quiet = _common.quiet_start(args)
    env = _common.environment({"quiet_wait": quiet})
    rows = []
    only = set(_common.comma_list(args.cases)) if args.cases else None
    with tempfile.TemporaryDirectory(prefix="induced_bench_") as tmp:
        for section in args.section_list:
            for c in _common.comma_list(SECTIONS[section][2]):
                if only and c not in only:
                    continue
                info = None
                if section == "D":
                    case, info = d_case(args)
                else:
                    case = QUICK[c] if args.quick else CASES[c]
                print(f"## {section} case {case.name}", flush=True)
                rows.append(run_section(section, case, args, Path(tmp), info))
    env["wall_s"] = time.perf_counter() - t_start
    md = (
        markdown(rows, args)
        + "\n\n"
        + _common.env_block(env)
        + f"\n- wall time {env['wall_s']:.0f} s"
    )
    print()
    print(md)
    _common.write_results(
        args.name or ("induced_quick" if args.quick else "induced"),
        env,
        {"results": rows, "cap_s": args.cap, "lbfgs_cap_s": args.lbfgs_cap},
        md,
        args.out_dir,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
