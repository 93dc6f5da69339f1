"""Benchmark: the general torch path (gradbasis.torch.TorchModel, torch.func) against the C++ MLP
on the same network, side by side in one run.

Case A of bench/gram.py (tanh MLP 32-128-128-10, m = 256, every input twice, squared loss),
theta = ``MLP.init(0)`` and the same network as an ``nn.Sequential`` (``to_module``) wrapped as a
``TorchModel``: the dense Jacobian, the Gram matrix K, and ``theorem1(strategy="gram")`` at the
critical point of bench/_induced_recipes.py's problem; each answer is checked against the C++
model's before its time counts (J and K to 1e-12 relative with J's columns permuted to theta's
row-major order; Theorem 1's verdict equal). Every timing records the load and the other
processes' CPU (bench/_quiet.py).

Usage::

    python bench/torch_model.py           # case A
    python bench/torch_model.py --quick   # m = 64
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import _common  # noqa: I001  (first: pins threads)
import numpy as np
from _induced_recipes import problem
from gram import CASES, Case

import gradbasis as gb

QUICK_CASE = Case("A-quick", 64, 32, (128, 128), 10, repeat=2)


def column_order(mlp: gb.MLP) -> np.ndarray:
    """theta_torch = theta_mlp[perm] (to_module's nn.Sequential, row-major weights)."""
    idx = mlp.unflatten(np.arange(mlp.num_params, dtype=float))
    layers = len(mlp.layer_sizes) - 1
    return np.concatenate(
        [idx[f"{k}{l}"].ravel(order="C") for l in range(1, layers + 1) for k in ("W", "b")]
    ).astype(int)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--name", default=None)
    p.add_argument("--out-dir", default=_common.RESULTS_DIR)
    _common.add_quiet_args(p)
    args = p.parse_args(argv)
    from gradbasis.torch import TorchModel, to_module

    t_start = time.perf_counter()
    quiet = _common.quiet_start(args)
    env = _common.environment({"quiet_wait": quiet})
    case = QUICK_CASE if args.quick else CASES["A"]
    mlp, theta, X, Y, exact = problem(case, "squared", "critical")
    tm = TorchModel(to_module(mlp, theta), mlp.input_dim)
    perm = column_order(mlp)
    t_theta = theta[perm]
    ref_J = mlp.jacobian(theta, X)
    checks = {
        "J": lambda J: _common.rel_max_error(J, ref_J[:, perm]),
        "K": lambda K: _common.rel_max_error(K, ref_J @ ref_J.T),
    }
    rows: list[dict[str, Any]] = []
    contenders = {
        "J": (lambda: mlp.jacobian(theta, X), lambda: tm.jacobian(t_theta, X)),
        "K": (lambda: mlp.gram(theta, X), lambda: tm.gram(t_theta, X)),
    }
    obj_c = gb.Objective(mlp, "squared", X, Y)
    obj_t = gb.Objective(tm, "squared", X, Y)
    verdicts: dict[str, str] = {}

    def thm(obj, th, key):
        def run():
            verdicts[key] = str(gb.theorem1(obj, th, strategy="gram").verdict)

        return run

    contenders["theorem1 (gram)"] = (thm(obj_c, theta, "core"), thm(obj_t, t_theta, "torch"))
    for what, (core_fn, torch_fn) in contenders.items():
        row: dict[str, Any] = {"what": what}
        for side, fn in (("core", core_fn), ("torch", torch_fn)):
            timing = _common.measure(fn, args.repeat, max_reruns=args.max_reruns, keep_output=True)
            row[side] = {"seconds": timing["best_s"], "timing": timing}
            if side == "torch" and what in checks:
                row["error"] = checks[what](timing["output"])
            print(f"{what} {side}: {timing['best_s']:.4f} s", flush=True)
        row["ratio"] = row["torch"]["seconds"] / row["core"]["seconds"]
        rows.append(row)
    rows[-1]["verdicts"] = dict(verdicts)
    payload = {
        "case": case.name,
        "m": case.m,
        "n": case.n,
        "num_params": mlp.num_params,
        "layer_sizes": case.layer_sizes,
        "rows": [{k: v for k, v in r.items()} for r in rows],
    }
    env["wall_s"] = time.perf_counter() - t_start
    md = [
        f"### TorchModel against the C++ MLP: case {case.name} (m = {case.m}, n = {case.n}, params {mlp.num_params})",
        "",
        "| work | C++ MLP | TorchModel (torch.func) | TorchModel / MLP | check |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        check = (
            f"max rel. error {r['error']:.1e}" if "error" in r else f"verdicts {r.get('verdicts')}"
        )
        md.append(
            f"| {r['what']} | {r['core']['seconds']:.4g} s | {r['torch']['seconds']:.4g} s | {r['ratio']:.1f}x | {check} |"
        )
    text = "\n".join(md) + "\n\n" + _common.env_block(env)
    print(text)
    _common.write_results(
        args.name or ("torch_model_quick" if args.quick else "torch_model"),
        env,
        payload,
        text,
        args.out_dir,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
