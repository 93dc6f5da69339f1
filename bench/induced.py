"""Benchmark: the induced infimum inf_a sum_i lambda_i l((J a)_i, y_i) end to end from theta --
gradbasis.gradient_basis_minimum (auto and each strategy) vs torch.func Jacobian + NumPy/SciPy.

What is measured
----------------
Networks of bench/gram.py's cases A and B (tanh MLP with biases, float64), theta =
``model.init(0)``, weights lambda_i = 1/m, squared and cross-entropy loss. One timed call per
contender (best of up to 3 while the calls so far took < 5 s), wall time from theta to the
value, each contender in a subprocess of this interpreter (2 threads, see bench/_common.py):

* **gradbasis auto / dense / gram / matrix_free**: ``gradient_basis_minimum(obj, theta,
  strategy=...)`` at its defaults. The forced strategy that auto picks is not run a second
  time: its row is auto's ("= auto"). The answer is ``value`` (loss at the returned
  coefficients) with a dual lower bound ``lower``.
* **torch.func + numpy.linalg.lstsq** (squared): J by ``vmap(jacrev)`` over the parameters,
  copied into one (m d_y, P) matrix, then ``lstsq(J, y, rcond=None)``; value = mean_i ||J_i a - y_i||^2.
* **torch.func + scipy L-BFGS** (cross-entropy): the same J, then ``scipy.optimize.minimize(
  method="L-BFGS-B", jac=True)`` from a = 0 on the convex a -> mean_i CE(J_i a, y_i) (gtol 1e-12,
  ftol 1e-16, up to 20000 iterations, stopped by a callback at 90 % of the cap: its value is
  then the one reached).
* **gram steps** (case A only): the gram strategy's stages timed one by one (K by
  ``model.gram``; its pivoted Cholesky and the solve on the factor, ``solve_gram_pivoted``;
  one ``vjp`` back to theta coordinates).

Data: each input appears twice (m/2 distinct standard-normal inputs) with different targets
(squared: standard normal; cross-entropy: soft labels drawn from Dirichlet(1)), so the
infimum is positive, attained, and known in closed form whenever the distinct inputs'
Jacobian rows are linearly independent (m/2 d_y <= P here): squared -> mean_i ||y_i - ybar_pair||^2,
cross-entropy -> mean_i CE(log pbar_pair, y_i) with pbar_pair the mean of the pair's labels.
Columns "vs exact" give (value - exact) / exact; the numerical span of each method (its
singular-value cut) decides how close it gets.

Skips, never guesses: a contender is not started when a lower bound on its work already
exceeds ``--cap`` at the DGEMM rate measured in this run (dense SVD and lstsq need >= 2 n P
min(n, P) flops, n = m d_y; the gram strategy half the structured count of K plus the pivoted
Cholesky to rank r = n/2, n^2 r - n r^2 + r^3/3 flops) or its
memory bound exceeds MemAvailable; it is then reported as ">= X s (bound)", and a ratio
against it as ">=". A started contender whose run exceeds ``--cap`` is stopped ("> cap").

Usage::

    python bench/induced.py               # cases A and B
    python bench/induced.py --quick       # m=64, < 1 min
    python bench/induced.py --cases A --losses squared

Results: markdown on stdout and in bench/results/induced.md, everything in bench/results/induced.json.
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

import _common  # noqa: I001  (first: pins threads before numpy/torch load)
import numpy as np
from _common import GB, MEM_MARGIN, available_bytes, dgemm_gflops, mlp_flops_gram, run_worker
from gram import CASES, Case

import gradbasis

LOSSES = ("squared", "cross_entropy")
STRATEGIES = ("dense", "gram", "matrix_free")
QUICK_CASE = Case("A-quick", 64, 32, (128, 128), 10, repeat=3)
LABELS = {
    "gb_auto": "gradbasis auto",
    "gb_dense": "gradbasis dense",
    "gb_gram": "gradbasis gram",
    "gb_matrix_free": "gradbasis matrix_free",
    "torch_lstsq": "torch.func J + numpy lstsq",
    "torch_lbfgs": "torch.func J + scipy L-BFGS",
    "gram_steps": "gram strategy, stage by stage",
}


# ------------------------------------------------------------------------------ problem


def problem(case: Case, loss: str):
    """Model, theta, duplicated inputs X, targets Y and the closed-form infimum."""
    model = gradbasis.MLP(case.layer_sizes, activation="tanh", bias=True)
    theta = model.init(seed=0)
    X = np.repeat(np.random.default_rng(1).standard_normal((case.m // 2, case.d_x)), 2, axis=0)
    if loss == "squared":
        Y = np.random.default_rng(2).standard_normal((case.m, case.d_y))
        pair_mean = np.repeat(Y.reshape(-1, 2, case.d_y).mean(axis=1), 2, axis=0)
        exact = float(np.mean(np.sum((Y - pair_mean) ** 2, axis=1)))
    else:
        Y = np.random.default_rng(3).dirichlet(np.ones(case.d_y), size=case.m)
        pbar = np.repeat(Y.reshape(-1, 2, case.d_y).mean(axis=1), 2, axis=0)
        exact = float(np.mean(-np.sum(Y * np.log(pbar), axis=1)))
    return model, theta, X, Y, exact


# ------------------------------------------------------------------------------ worker side


def say(tag: str, **fields) -> None:
    print(f"{tag} {json.dumps(fields, default=_common._json_default)}", flush=True)


def torch_jacobian(model, theta, X) -> np.ndarray:
    """J (m d_y, P) by torch.func.vmap(jacrev), per-parameter blocks copied side by side."""
    import torch
    from torch.func import jacrev, vmap

    params = {k: torch.from_numpy(v) for k, v in model.unflatten(theta).items()}
    L = sum(k.startswith("W") for k in params)

    class Net(torch.nn.Module):
        def forward(self, x):
            h = x
            for l in range(1, L + 1):
                h = torch.nn.functional.linear(h, self.p[f"W{l}"], self.p[f"b{l}"])
                if l < L:
                    h = torch.tanh(h)
            return h

    def f(p, x):
        net = Net()
        net.p = p
        return net(x.unsqueeze(0)).squeeze(0)

    jac = vmap(jacrev(f), in_dims=(None, 0))(params, torch.from_numpy(X))
    n = X.shape[0] * model.output_dim
    return torch.cat([jac.pop(k).reshape(n, -1) for k in list(jac)], dim=1).numpy()


def lbfgs_cross_entropy(J: np.ndarray, Y: np.ndarray, budget_s: float) -> dict[str, Any]:
    import scipy.optimize
    from scipy.special import log_softmax

    m, d = Y.shape
    t0 = time.perf_counter()

    def fun(a):
        F = (J @ a).reshape(m, d)
        logp = log_softmax(F, axis=1)
        G = (np.exp(logp) - Y) / m
        return float(-np.sum(Y * logp) / m), J.T @ G.ravel()

    def stop(intermediate_result):
        if time.perf_counter() - t0 > budget_s:
            raise StopIteration

    res = scipy.optimize.minimize(
        fun,
        np.zeros(J.shape[1]),
        jac=True,
        method="L-BFGS-B",
        callback=stop,
        options={"maxiter": 20000, "maxfun": 40000, "gtol": 1e-12, "ftol": 1e-16},
    )
    return {
        "value": float(res.fun),
        "iterations": int(res.nit),
        "message": str(res.message),
        "converged": bool(res.success),
        "gradient_norm": float(np.linalg.norm(res.jac)),
    }


def run_kind(kind: str, cfg: dict) -> dict[str, Any]:
    case = Case(**cfg["case"])
    model, theta, X, Y, exact = problem(case, cfg["loss"])
    obj = gradbasis.Objective(model, cfg["loss"], X, Y)
    gradbasis.gradient_basis_minimum(  # warm-up: first-call overheads, on 4 samples
        gradbasis.Objective(model, cfg["loss"], X[:4], Y[:4]), theta, strategy="dense"
    )
    if kind.startswith("torch"):
        torch_jacobian(model, theta, X[:4])

    def once() -> dict[str, Any]:
        if kind.startswith("gb_"):
            res = gradbasis.gradient_basis_minimum(obj, theta, strategy=kind[3:])
            return {
                "value": res.value,
                "lower": res.lower,
                "strategy": res.strategy,
                "rank": res.rank,
                "rank_tol": res.rank_tol,
                "attained": res.attained,
                "converged": res.converged,
                "iterations": res.iterations,
                "details": res.details,
            }
        if kind == "gram_steps":
            return gram_steps(model, obj, theta)
        t0 = time.perf_counter()
        J = torch_jacobian(model, theta, X)
        out = {"jacobian_s": time.perf_counter() - t0}
        if kind == "torch_lstsq":
            a, _, rank, _ = np.linalg.lstsq(J, Y.ravel(), rcond=None)
            out.update(value=float(np.sum((J @ a - Y.ravel()) ** 2) / case.m), rank=int(rank))
        else:
            out.update(lbfgs_cross_entropy(J, Y, 0.9 * cfg["cap_s"] - out["jacobian_s"]))
        return out

    times, out = [], None
    while len(times) < 3 and sum(times) < cfg["repeat_budget_s"]:
        say("PHASE", phase="run", index=len(times))
        t0 = time.perf_counter()
        out = once()
        times.append(time.perf_counter() - t0)
    return {
        **out,
        "times_s": times,
        "best_s": min(times),
        "exact": exact,
        "process_peak_rss_GB": _common.vm_hwm_bytes() / GB,
    }


def gram_steps(model, obj, theta) -> dict[str, Any]:
    """The gram strategy's stages, as gradient_basis_minimum runs them, timed one by one."""
    from gradbasis.solve.gram import solve_gram_pivoted

    t = [time.perf_counter()]
    K = model.gram(theta, obj.X)
    t.append(time.perf_counter())
    res, beta = solve_gram_pivoted(K, obj.loss, obj.Y, obj.weights, None, (), 1e-12, 200)
    t.append(time.perf_counter())
    model.vjp(theta, obj.X, beta)
    t.append(time.perf_counter())
    stages = ("gram_K", "pivoted_cholesky_and_solve", "vjp")
    return {
        "value": res.value,
        "rank": int(res.rank),
        "stage_s": dict(zip(stages, np.diff(t).tolist(), strict=False)),
    }


def worker_main(cfg_path: str) -> int:
    cfg = json.loads(Path(cfg_path).read_text())
    for kind in cfg["kinds"]:
        say("BEGIN", kind=kind)
        try:
            say("RESULT", kind=kind, **run_kind(kind, cfg))
        except Exception as e:  # noqa: BLE001  (reported to the parent)
            say(
                "ERROR",
                kind=kind,
                error=f"{type(e).__name__}: {str(e)[:2000]}",
                traceback=traceback.format_exc()[-3000:],
            )
    return 0


# ------------------------------------------------------------------------------ parent side


def lower_bound(kind: str, case: Case, P: int) -> tuple[float, float, str]:
    """(flops, bytes, what) a contender cannot do without; (0, 0) when no useful bound."""
    n = case.n
    if kind in ("gb_dense", "torch_lstsq"):
        return (
            2.0 * n * P * min(n, P),
            16.0 * n * P,
            "2 n P min(n,P) flops for the factorisation of J; J and a copy",
        )
    if kind in ("gb_gram", "gram_steps"):
        r = n / 2  # every input twice: rank J <= n / 2
        flops = (
            n * n * r
            - n * r * r
            + r**3 / 3.0
            + mlp_flops_gram(case.layer_sizes, case.m, case.d_y) / 2
        )
        return (
            flops,
            8.0 * n * n,
            "half of K's structured count and its pivoted Cholesky to rank n/2; K",
        )
    if kind == "torch_lbfgs":
        return 0.0, 8.0 * n * P, "J"
    return 0.0, 0.0, ""


def plan_kinds(
    case: Case, loss: str, auto_choice: str, P: int, dgemm: float, args
) -> tuple[list[str], dict]:
    kinds = ["gb_auto"] + [f"gb_{s}" for s in STRATEGIES if s != auto_choice]
    kinds.append("torch_lstsq" if loss == "squared" else "torch_lbfgs")
    if args.gram_steps and case.name.startswith("A") and loss == "squared":
        kinds.append("gram_steps")
    run, skipped = [], {}
    avail = available_bytes()
    for kind in kinds:
        flops, nbytes, what = lower_bound(
            kind if kind != "gb_auto" else f"gb_{auto_choice}", case, P
        )
        t_min = flops / (dgemm * GB)
        if nbytes > avail - MEM_MARGIN:
            skipped[kind] = {
                "status": "skipped",
                "bound_GB": nbytes / GB,
                "error": f"skipped: needs >= {nbytes / GB:.1f} GB ({what}), {avail / GB:.1f} GB available",
            }
        elif t_min > args.cap:
            skipped[kind] = {
                "status": "skipped",
                "bound_s": t_min,
                "error": f"skipped: >= {flops:.2g} flops ({what}) = >= {t_min:.0f} s at the measured DGEMM rate",
            }
        else:
            run.append(kind)
    return run, skipped


def run_problem(case: Case, loss: str, dgemm: float, args, workdir: Path) -> dict[str, Any]:
    model, theta, X, Y, exact = problem(case, loss)
    obj = gradbasis.Objective(model, loss, X, Y)
    auto_choice, est = gradbasis.choose_strategy(obj)
    kinds, results = plan_kinds(case, loss, auto_choice, model.num_params, dgemm, args)
    cfg = {
        "case": vars(case),
        "loss": loss,
        "kinds": kinds,
        "cap_s": args.cap,
        "repeat_budget_s": args.repeat_budget,
    }
    t0 = time.perf_counter()
    results.update(
        run_worker(
            [sys.executable, str(Path(__file__).resolve()), "--worker"],
            cfg,
            args.cap,
            args.setup_cap,
            workdir,
        )
    )
    for kind in LABELS:
        if kind in results:
            r = results[kind]
            shown = (
                f"{r['best_s']:.3f} s, value {r['value']:.6g}"
                if r["status"] == "ok"
                else r["error"]
            )
            print(f"  {case.name} {loss} {LABELS[kind]}: {shown}", flush=True)
    print(f"  [{time.perf_counter() - t0:.0f} s wall]", flush=True)
    return {
        "case": case.name,
        "m": case.m,
        "layer_sizes": case.layer_sizes,
        "n": case.n,
        "num_params": model.num_params,
        "loss": loss,
        "exact": exact,
        "auto_choice": auto_choice,
        "memory_estimate": vars(est),
        "dgemm_GFps": dgemm,
        "results": results,
    }


def baseline_floor(base: dict, cap_s: float) -> tuple[float, str] | None:
    """(t, relation) known of the baseline's time: measured, stopped at the cap, or its flop bound."""
    if base.get("status") == "ok":  # L-BFGS stopped by its time budget ran at least that long
        return base["best_s"], "=" if base.get("converged", True) else ">"
    if base.get("status") == "stopped" and base["error"].startswith(">"):
        return cap_s, ">"
    if "bound_s" in base:
        return base["bound_s"], ">="
    return None


def seconds_cell(r: dict) -> str:
    if r["status"] == "ok":
        return f"{r['best_s']:.3g}"
    if r["status"] == "skipped":
        return (
            f">= {r['bound_s']:.0f} (bound)"
            if "bound_s" in r
            else f"needs >= {r['bound_GB']:.1f} GB"
        )
    return r["error"].split(" (")[0]


def markdown(rows: list[dict], args) -> str:
    out = [
        "### Induced infimum from theta: seconds and values",
        "",
        "| case | loss | contender | strategy | seconds | baseline / this | value | lower | vs exact | rank (cut) "
        "| peak RSS GB |",
        "|" + "---|" * 11,
    ]
    for row in rows:
        res = row["results"]
        base_key = "torch_lstsq" if row["loss"] == "squared" else "torch_lbfgs"
        base = res.get(base_key, {})
        for kind in LABELS:
            if kind == "gram_steps":
                continue
            if kind == f"gb_{row['auto_choice']}":
                out.append(
                    f"| {row['case']} | {row['loss']} | {LABELS[kind]} | | = auto | | | | | | |"
                )
                continue
            if kind not in res:
                continue
            r = res[kind]
            ratio, known = "", baseline_floor(base, args.cap)
            if r["status"] == "ok" and kind != base_key and known:
                ratio = f"{'' if known[1] == '=' else known[1] + ' '}{known[0] / r['best_s']:.1f}x"
            strategy = r.get("strategy", "") if r["status"] == "ok" else ""
            if r["status"] == "ok":
                mark = "" if r.get("converged", True) else " (not converged)"
                vals = (
                    f"{r['value']:.8g}{mark} | {r['lower']:.6g}"
                    if "lower" in r
                    else f"{r['value']:.8g}{mark} | —"
                )
                vs = f"{(r['value'] - row['exact']) / row['exact']:.1e}"
                rank = (
                    f"{r['rank']} ({r['rank_tol']:.1e})"
                    if r.get("rank", -1) >= 0 and "rank_tol" in r
                    else (str(r["rank"]) if r.get("rank", -1) >= 0 else "—")
                )
                rss = f"{r['observed_peak_rss_GB']:.2f}"
            else:
                vals, vs, rank, rss = (
                    "— | —",
                    "—",
                    "—",
                    (f"{r['observed_peak_rss_GB']:.2f}" if "observed_peak_rss_GB" in r else "—"),
                )
            out.append(
                f"| {row['case']} | {row['loss']} | {LABELS[kind]} | {strategy} | {seconds_cell(r)} | {ratio} "
                f"| {vals} | {vs} | {rank} | {rss} |"
            )
    out += [
        "",
        "exact infimum (closed form, duplicated inputs): "
        + "; ".join(f"{r['case']} {r['loss']} {r['exact']:.10g}" for r in rows),
    ]
    notes = []
    for row in rows:
        for kind, r in row["results"].items():
            if r["status"] == "ok" and kind == "torch_lbfgs":
                notes.append(
                    f"{row['case']} L-BFGS: {r['iterations']} iterations, converged {r['converged']} ({r['message']}), "
                    f"J took {r['jacobian_s']:.2f} s"
                )
            if r["status"] == "ok" and kind == "torch_lstsq":
                notes.append(
                    f"{row['case']} lstsq: J took {r['jacobian_s']:.2f} s, rank {r['rank']}"
                )
            if r["status"] == "ok" and kind == "gram_steps":
                notes.append(
                    f"{row['case']} gram strategy by stage (s): "
                    + ", ".join(f"{k} {v:.3g}" for k, v in r["stage_s"].items())
                )
            if r["status"] == "ok" and kind == "gb_matrix_free":
                d = r["details"]
                notes.append(
                    f"{row['case']} {row['loss']} matrix_free: {d.get('iterations')} iterations, converged "
                    f"{r['converged']}, lower bound scope {d.get('lower_scope')} (radius {d.get('radius', 0):.3g})"
                )
    out += ["", "Notes:", *[f"- {n}" for n in notes]]
    out += ["", "### Target", ""] + target_lines(rows, args.cap)
    out += [
        "",
        f"Caps: one run <= {args.cap:.0f} s. '>= X (bound)': not started, a lower bound on its flops at the "
        "measured DGEMM rate already exceeds the cap; ratios against it are lower bounds.",
    ]
    return "\n".join(out)


def target_lines(rows, cap_s: float) -> list[str]:
    lines = []
    for row in rows:
        if row["loss"] != "squared" or not row["case"].startswith("B"):
            continue
        res = row["results"]
        known = baseline_floor(res.get("torch_lstsq", {}), cap_s)
        base_text = (
            "unknown"
            if known is None
            else f"{known[0]:.3g} s"
            if known[1] == "="
            else f"{known[1]} {known[0]:.0f} s"
        )
        for kind in ("gb_auto", *(k for k in res if k.startswith("gb_") and k != "gb_auto")):
            r = res[kind]
            name = f"{LABELS[kind]} ({r.get('strategy') or row['auto_choice'] if kind == 'gb_auto' else kind[3:]})"
            if r["status"] != "ok":
                lines.append(f"- case B squared, {name}: {seconds_cell(r)}: ratio not measured")
                continue
            if known is None:
                lines.append(
                    f"- case B squared, {name}: {r['best_s']:.3g} s; baseline time unknown"
                )
                continue
            ratio, rel = known[0] / r["best_s"], known[1]
            met = "met" if ratio >= 5 else ("not met" if rel == "=" else "not shown")
            verdict = (
                f" (target >= 5x: {met})"
                if kind == "gb_auto"
                else " (not auto's choice: no target)"
            )
            lines.append(
                f"- case B squared, {name}: {r['best_s']:.3g} s; torch.func + lstsq {base_text}: ratio "
                f"{'' if rel == '=' else rel + ' '}{ratio:.1f}x{verdict}"
            )
    return lines or ["- (case B squared not in this run)"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--cases", default="A,B", help="comma-separated subset of A,B,C,D (default A,B)")
    p.add_argument("--losses", default=",".join(LOSSES))
    p.add_argument("--quick", action="store_true", help="one small A-shaped case (m=64), < 1 min")
    p.add_argument(
        "--cap", type=float, default=None, help="seconds one run may take (default 120, quick 20)"
    )
    p.add_argument("--setup-cap", type=float, default=120)
    p.add_argument(
        "--repeat-budget",
        type=float,
        default=5.0,
        help="repeat a run (<= 3 times) while the runs took < this",
    )
    p.add_argument(
        "--no-gram-steps",
        dest="gram_steps",
        action="store_false",
        help="skip the stage-by-stage gram timing on A",
    )
    p.add_argument("--out-dir", type=Path, default=_common.RESULTS_DIR)
    p.add_argument(
        "--render", type=Path, help="print the tables of an earlier results JSON and exit"
    )
    args = p.parse_args(argv)
    args.case_list = (
        [QUICK_CASE] if args.quick else [CASES[c] for c in _common.comma_list(args.cases)]
    )
    args.loss_list = _common.comma_list(args.losses)
    args.cap = args.cap or (20.0 if args.quick else 120.0)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker)
    if args.render:
        data = json.loads(args.render.read_text())
        args.cap, env = data["cap_s"], data["environment"]
        print(
            markdown(data["results"], args)
            + "\n\n"
            + _common.env_block(env)
            + f"\n- wall time {env['wall_s']:.0f} s"
        )
        return 0
    t_start = time.perf_counter()
    import scipy  # noqa: F401  (versions for the record)
    import torch  # noqa: F401

    env = _common.environment()
    warn = _common.load_warning(env["loadavg_at_start"])
    print(f"# induced-infimum benchmark{'; ' + warn if warn else ''}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="induced_bench_") as tmp:
        for case in args.case_list:
            dgemm = dgemm_gflops(2000, 3)
            print(f"case {case.name}: DGEMM {dgemm:.1f} GFLOP/s", flush=True)
            for loss in args.loss_list:
                rows.append(run_problem(case, loss, dgemm, args, Path(tmp)))
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
        "induced_quick" if args.quick else "induced",
        env,
        {"results": rows, "cap_s": args.cap},
        md,
        args.out_dir,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
