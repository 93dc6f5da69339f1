"""Theorem 4 in a ReLU network: units kept linear bound every local minimum by a linear model.

A ReLU unit is locally linear at theta when its pre-activation exceeds a margin on every
sample. Theorem 4 (t in 0..H) needs |J^(l)| >= d_y locally linear units in layers t+1..H+1
(gb.linear_unit_sets); then at a local minimum outside Omega (no pre-activation at a kink)

    L(theta) = inf over sum_{l=t}^{H} alpha^(l+1) h^(l)(x) + (perturbation terms),

so L(theta) is no worse than the best linear model on [h^(t), ..., h^(H), 1] (result.features)
and, for t = 0, no worse than the best affine model on x (result.linear): the nonlinear network
at such a local minimum is at least as good as linear regression.

Recipe: the first d_y units of the forced layer get a bias that lifts their smallest
pre-activation on the data to 3, the other units are initialised normally (He), and
gb.minimize("lbfgs+newton", gtol=1e-10) trains to a critical point; then gb.theorem4(obj,
theta, t) is checked there.
  * H = 1, widths (4,), t = 0: the forced units are in the only hidden layer.
  * H = 2, widths (4, 4), t = H - 1 = 1: only the last hidden layer has forced units; the
    first layer is fully nonlinear and the drop rule (condition 3) has nothing to remove.

ReLU losses are piecewise smooth, and training often ends on a kink: a sample sitting on a
unit's hyperplane, where L is not differentiable and ||grad L|| stays large. To get local
minima inside a piece, the main data come from a ReLU teacher of the same architecture (with
its own forced units) plus noise 0.02, keeping only samples whose teacher pre-activations are
all at least 0.3 away from 0. Students start either from a random init ("random") or from the
teacher plus 0.5 x a random init ("near teacher"). A control ("smooth targets") trains on
targets sin(x_1) + x_2^2 and |x_3| - x_1 x_4 (+ noise 0.1) from a random init; there most runs
stop on a kink. Every run is reported, with what stopped it.

Table columns: config; seed; L = L(theta); norm grad = ||grad L||_2; kink = kink margin (smallest
|pre-activation| of any ReLU unit; 0 means theta in Omega); J sizes = |J^(1)|, ..., |J^(H+1)|;
in Theta = theta in Theta_{d_y,t}; verdict = gb.theorem4 verdict; induced inf = Theorem 4's
certified infimum (lower end); L - inf = L(theta) - that lower end; feat bound = best linear model
on [h^(t..H), 1] and L <= feat = whether L meets it; lin bound = best affine model on x and
L <= lin; lambda_min = the Hessian's smallest eigenvalue (nan when the check stopped earlier);
dim T / T~; outcome = what the run reached (theorem holds / stopped on a kink / not converged /
forced units left the linear regime / saddle); s = seconds.

Command (from the repository root):

    python experiments/theorem4_relu.py [--seeds 8] [--quick]

Writes experiments/results/theorem4_relu.{json,md}.
"""

from __future__ import annotations

import os

# The matrices here are tiny; multithreaded OpenBLAS on a busy machine made the perturbable
# basis 10-50x slower than one thread, so use one unless the caller says otherwise.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import gradbasis as gb
from gradbasis.datasets import standardize

RESULTS = Path(__file__).resolve().parent / "results"
D_X, D_Y = 4, 2
GTOL = 1e-10  # the optimiser's target for ||grad L||
CRITICAL = 1e-6  # ||grad L|| at which Theorem 4's check treats theta as critical
KINK = 1e-8  # a kink margin below this is "on a kink" (pre-activation 0 up to rounding)
LIFT = 3.0  # smallest pre-activation of a forced unit on the data, at the start
DATA_MARGIN = 0.3  # teacher data: every teacher pre-activation at least this far from 0
NOISE = 0.02


@dataclass(frozen=True)
class Config:
    name: str
    widths: tuple[int, ...]
    t: int  # Theorem 4's t; the forced units sit in layer t + 1
    data: str  # "teacher" or "smooth"
    init: str  # "random" or "near teacher"

    @property
    def forced_layer(self) -> int:
        return self.t + 1


CONFIGS = (
    Config("H=1, t=0, teacher data, random init", (4,), 0, "teacher", "random"),
    Config("H=1, t=0, teacher data, near teacher", (4,), 0, "teacher", "near teacher"),
    Config("H=2, t=1, teacher data, random init", (4, 4), 1, "teacher", "random"),
    Config("H=2, t=1, teacher data, near teacher", (4, 4), 1, "teacher", "near teacher"),
    Config("H=1, t=0, smooth targets, random init", (6,), 0, "smooth", "random"),
)


def force_units(model: gb.MLP, theta: np.ndarray, X: np.ndarray, layer: int) -> np.ndarray:
    """Raise the biases of the first d_y units of `layer` so each is active on every sample."""
    params = model.unflatten(theta)
    pre = model.node_values(theta, X, model.dense_layers()[layer - 1].node)[:, :D_Y]
    params[f"b{layer}"][:D_Y] += LIFT - pre.min(axis=0)
    return model.flatten(params)


def kink_distance(model: gb.MLP, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Per sample, the smallest |pre-activation| over all hidden units."""
    pres = [
        np.abs(model.node_values(theta, X, layer.node)).min(axis=1)
        for layer in model.dense_layers()[:-1]
    ]
    return np.min(pres, axis=0)


def make_problem(cfg: Config, m: int) -> tuple[gb.Objective, np.ndarray | None]:
    """The objective for a configuration, and the teacher's theta (None for smooth targets)."""
    model = gb.MLP([D_X, *cfg.widths, D_Y], "relu")
    rng = np.random.default_rng(7)
    if cfg.data == "smooth":
        X = standardize(rng.standard_normal((m, D_X)))
        Y = np.stack([np.sin(X[:, 0]) + X[:, 1] ** 2, np.abs(X[:, 2]) - X[:, 3] * X[:, 0]], axis=1)
        return gb.Objective(model, "squared", X, Y + 0.1 * rng.standard_normal(Y.shape)), None
    pool = standardize(rng.standard_normal((30 * m, D_X)))
    teacher = force_units(model, model.init(1000), pool, cfg.forced_layer)
    X = pool[kink_distance(model, teacher, pool) >= DATA_MARGIN][:m]
    if X.shape[0] < m:
        raise RuntimeError(
            f"only {X.shape[0]} of {m} samples clear the teacher's kinks by {DATA_MARGIN}"
        )
    Y = model.forward(teacher, X) + NOISE * rng.standard_normal((m, D_Y))
    return gb.Objective(model, "squared", X, Y), teacher


def start(cfg: Config, obj: gb.Objective, teacher: np.ndarray | None, seed: int) -> np.ndarray:
    model = obj.model
    if cfg.init == "near teacher":
        return teacher + 0.5 * model.init(seed)
    return force_units(model, model.init(seed), obj.X, cfg.forced_layer)


def outcome(th4, critical: bool) -> str:
    """What the run reached, in the order the hypotheses fail."""
    if not th4.in_theta:
        return "forced units left the linear regime"
    if not critical:
        return "stopped on a kink" if th4.kink_margin < KINK else "not converged"
    if "saddle" in th4.reason:
        return "saddle"
    return f"theorem {th4.verdict}"


def run_one(cfg: Config, obj: gb.Objective, teacher: np.ndarray | None, seed: int) -> dict:
    t0 = time.perf_counter()
    res = gb.minimize(
        obj, start(cfg, obj, teacher, seed), method="lbfgs+newton", gtol=GTOL, max_iter=5000
    )
    th4 = gb.theorem4(obj, res.theta, cfg.t, seed=seed)
    critical = res.gradient_norm <= CRITICAL
    return {
        "config": cfg.name,
        "widths": list(cfg.widths),
        "depth": len(cfg.widths),
        "t": cfg.t,
        "data": cfg.data,
        "init": cfg.init,
        "seed": seed,
        "L": res.value,
        "gradient_norm": res.gradient_norm,
        "converged": res.converged,
        "critical": critical,
        "kink_margin": th4.kink_margin,
        "set_sizes": list(th4.set_sizes),
        "in_theta": th4.in_theta,
        "verdict": str(th4.verdict),
        "reason": th4.reason,
        "induced_lower": th4.lower,
        "gap": th4.gap,
        "tol": th4.tol,
        "features_bound": th4.features.value,
        "meets_features": th4.features.meets,
        "linear_bound": th4.linear.value,
        "meets_linear": th4.linear.meets,
        "lambda_min": th4.min_eigenvalue,
        "dim_T": th4.dim_T,
        "dim_T_tilde": th4.dim_T_tilde,
        "outcome": outcome(th4, critical),
        "seconds": time.perf_counter() - t0,
        "optimizer_message": res.message,
        "theorem4": th4.to_dict(),
    }


def fmt(x: object) -> str:
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.3g}" if abs(x) < 1e-3 or abs(x) >= 1e4 else f"{x:.6g}"
    if isinstance(x, (list, tuple)):
        return "(" + ", ".join(map(str, x)) + ")"
    return str(x)


COLUMNS = [
    ("seed", "seed"),
    ("L", "L"),
    ("gradient_norm", "norm grad"),
    ("kink_margin", "kink"),
    ("set_sizes", "J sizes"),
    ("in_theta", "in Theta"),
    ("verdict", "verdict"),
    ("induced_lower", "induced inf"),
    ("gap", "L - inf"),
    ("features_bound", "feat bound"),
    ("meets_features", "L <= feat"),
    ("linear_bound", "lin bound"),
    ("meets_linear", "L <= lin"),
    ("lambda_min", "lambda_min"),
]


def md_table(runs: list[dict]) -> str:
    lines = [
        "| " + " | ".join(h for _, h in COLUMNS) + " | dim T / T~ | outcome | s |",
        "|" + "---|" * (len(COLUMNS) + 3),
    ]
    for r in runs:
        cells = [fmt(r[k]) for k, _ in COLUMNS] + [
            f"{r['dim_T']} / {r['dim_T_tilde']}",
            r["outcome"],
            f"{r['seconds']:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def counts(runs: list[dict], key: str) -> str:
    values = [r[key] for r in runs]
    return ", ".join(f"{v}: {values.count(v)}/{len(values)}" for v in sorted(set(values), key=str))


def summary(runs: list[dict], wall: float) -> str:
    n = len(runs)
    good = [r for r in runs if r["critical"] and r["in_theta"]]
    held = [r for r in runs if r["verdict"] == "holds"]
    t0 = [r for r in held if r["t"] == 0]
    lines = [
        "## Summary",
        "",
        f"* Runs: {n}. Theorem 4 verdicts: {counts(runs, 'verdict')}.",
        f"* Outcomes: {counts(runs, 'outcome')}.",
        f"* Critical (||grad|| <= {CRITICAL:g}): {sum(r['critical'] for r in runs)}/{n}; reached gtol {GTOL:g}: "
        f"{sum(r['converged'] for r in runs)}/{n}; theta in Theta_(d_y,t): {sum(r['in_theta'] for r in runs)}/{n}; "
        f"critical and in Theta_(d_y,t): {len(good)}/{n}.",
        f"* L <= feature bound (linear model on [h^(t..H), 1]): all runs {sum(r['meets_features'] for r in runs)}/{n}, "
        f"critical runs in Theta {sum(r['meets_features'] for r in good)}/{len(good)}.",
        f"* L <= linear bound (affine model on x): all runs {sum(r['meets_linear'] for r in runs)}/{n}, "
        f"critical runs in Theta {sum(r['meets_linear'] for r in good)}/{len(good)} (guaranteed by the theorem for t = 0 only).",
    ]
    if good:
        lines += [
            f"* Critical runs in Theta: largest L - induced inf {max(r['gap'] for r in good):.3g}; largest L - feature bound "
            f"{max(r['L'] - r['features_bound'] for r in good):.3g}; smallest kink margin {min(r['kink_margin'] for r in good):.3g}; "
            f"smallest lambda_min {np.nanmin([r['lambda_min'] for r in good]):.3g}.",
        ]
    if t0:
        lines.append(
            f"* Runs where the theorem holds with t = 0: the network beats the linear model on x by "
            f"{min(r['linear_bound'] - r['L'] for r in t0):.3g} to {max(r['linear_bound'] - r['L'] for r in t0):.3g} "
            f"({len(t0)} runs)."
        )
    lines.append("")
    lines.append("| config | runs | holds | outcomes | L <= feat | L <= lin |")
    lines.append("|---|---|---|---|---|---|")
    for name in dict.fromkeys(r["config"] for r in runs):
        g = [r for r in runs if r["config"] == name]
        lines.append(
            f"| {name} | {len(g)} | {sum(r['verdict'] == 'holds' for r in g)} | {counts(g, 'outcome')} | "
            f"{sum(r['meets_features'] for r in g)} | {sum(r['meets_linear'] for r in g)} |"
        )
    lines.append("")
    lines.append(f"* Wall time: {wall:.1f} s.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seeds", type=int, default=8, help="training seeds per configuration (default 8)"
    )
    parser.add_argument("--quick", action="store_true", help="a small smoke run (2 seeds, m = 30)")
    args = parser.parse_args()
    seeds = range(2 if args.quick else args.seeds)
    m = 30 if args.quick else 40
    begin = time.perf_counter()
    runs, data = [], []
    for cfg in CONFIGS:
        obj, teacher = make_problem(cfg, m)
        data.append(
            {
                "config": cfg.name,
                "m": obj.num_samples,
                "kink_margin_of_teacher": None
                if teacher is None
                else float(obj.model.kink_margin(teacher, obj.X)),
            }
        )
        runs += [run_one(cfg, obj, teacher, s) for s in seeds]
    wall = time.perf_counter() - begin

    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "theorem4_relu" + ("_quick" if args.quick else "")
    payload = {
        "experiment": "theorem4_relu",
        "quick": args.quick,
        "wall_seconds": wall,
        "data": data,
        "runs": runs,
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(gb.verdict.jsonable(payload), indent=1))
    parts = [
        "# Theorem 4 in ReLU networks with units kept linear",
        f"d_x = {D_X}, d_y = {D_Y}, m = {m}, squared loss, biases on. The first d_y units of layer t + 1 start "
        f"with every pre-activation >= {LIFT:g}; Theorem 4 is checked at the end point with that t.",
        summary(runs, wall),
    ]
    for cfg in CONFIGS:
        parts += [f"## {cfg.name}", md_table([r for r in runs if r["config"] == cfg.name])]
    parts.append(
        f"Command: `python experiments/theorem4_relu.py --seeds {args.seeds}"
        + (" --quick" if args.quick else "")
        + "`"
    )
    (RESULTS / f"{name}.md").write_text("\n\n".join(parts) + "\n")
    print(summary(runs, wall))


if __name__ == "__main__":
    main()
