"""A small width sweep, certified cell by cell, and the sweep figures drawn from its records.

Tanh networks x -> W2 tanh(W1 x + b1) + b2 (one or two hidden layers of width 1..8, three
seeds each) are trained on 20 noisy samples of a smooth function of two inputs to a critical
point (||grad L|| <= 1e-10 where the optimiser gets there), then checked: Theorem 1 (the
gradient basis model), Theorem 2 (dim T and dim T~ of the perturbable basis) and two upper
bounds on L at critical points, the best linear model on the learned representation
(Example 3) and, for comparison, the best linear model on x. Every cell becomes one record in
a JSON Lines file, and the sweep figures are drawn from that file (needs gradbasis[plot]).

    python examples/width_sweep_figure.py [OUTPUT_DIR]      # default: width-sweep/
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

import gradbasis as gb
from gradbasis.plots import sweep_figures
from gradbasis.verdict import jsonable

out = Path(sys.argv[1] if len(sys.argv) > 1 else "width-sweep")
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
X = rng.uniform(-2.0, 2.0, size=(20, 2))
Y = (np.sin(1.5 * X[:, :1]) + 0.3 * X[:, 1:] ** 2) + 0.1 * rng.normal(size=(20, 1))
linear = gb.induced_minimum(
    np.hstack([X, np.ones((20, 1))]), "squared", Y
)  # the best affine model on x

t0 = time.perf_counter()
records = []
for depth in (1, 2):
    for width in range(1, 9):
        for seed in range(3):
            model = gb.MLP([2, *[width] * depth, 1], "tanh")
            obj = gb.Objective(model, "squared", X, Y)
            fit = gb.minimize(
                obj, model.init(seed=seed), method="lbfgs+newton", gtol=1e-10, max_iter=3000
            )
            t1 = gb.theorem1(obj, fit.theta)
            t2 = gb.theorem2(obj, fit.theta)
            rep = gb.representation_bound(obj, fit.theta)
            records.append(
                {
                    "width": width,
                    "depth": depth,
                    "seed": seed,
                    "loss_value": t1.loss_value,
                    "gradient_norm": fit.gradient_norm,
                    "num_params": model.num_params,
                    "num_outputs": Y.size,
                    "theorem1": {
                        "lower": t1.lower,
                        "value": t1.value,
                        "gap": t1.gap,
                        "tol": t1.tol,
                        "verdict": str(t1.verdict),
                    },
                    "theorem2": {
                        "dim_T": t2.dim_T,
                        "dim_T_tilde": t2.dim_T_tilde,
                        "value": t2.value,
                        "verdict": str(t2.verdict),
                    },
                    "bounds": {
                        "linear model on the last hidden layer (Example 3)": rep.bound_value,
                        "linear model on x (for comparison)": linear.value,
                    },
                }
            )
path = out / "records.jsonl"
path.write_text("".join(json.dumps(jsonable(r)) + "\n" for r in records))
print(
    f"{len(records)} cells trained and certified in {time.perf_counter() - t0:.1f} s; records in {path}"
)
verdicts = [r["theorem1"]["verdict"] for r in records]
print("Theorem 1 verdicts:", {v: verdicts.count(v) for v in sorted(set(verdicts))})
for fig in sweep_figures(records, out):
    print(fig)
