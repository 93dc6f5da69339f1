"""Subprocess side of bench/induced.py: the problems, the user's recipes and one timed contender
per ``kind``; run as ``python bench/induced.py --worker CONFIG.json`` (never by hand).

Problems (tanh MLPs of bench/gram.py's cases, theta = ``model.init(0)``, weights 1/m):

* ``duplicated``: every input twice (m/2 distinct standard-normal inputs) with different
  targets (squared: standard normal; cross-entropy: soft labels from Dirichlet(1)), so the
  infimum is positive, attained and known in closed form while the distinct inputs' Jacobian
  rows are independent: squared -> mean_i ||y_i - ybar_pair||^2, cross-entropy ->
  mean_i CE(log pbar_pair, y_i).
* ``critical`` (Theorem 1 rows, squared loss): the same inputs, targets f(theta, x) +- delta
  for the two copies of x (delta standard normal). The residuals of a pair cancel in J^T r, so
  theta is a critical point, and L(theta) = mean ||delta||^2 is the induced infimum (the fit of a
  pair can only move both copies together; the network's output is linear in its last layer,
  so f(theta) lies in the span): the certificate can only say "holds" by resolving the
  numerical span of J, the expensive honest path.

Kinds: ``gb_auto`` / ``gb_dense`` / ``gb_gram`` / ``gb_matrix_free`` (gradient_basis_minimum),
``gb_theorem1`` (theorem1(strategy="gram") end to end, and ``model.gram`` alone in the same
process), ``gram_steps`` (the gram strategy stage by stage), and the user's ways:
``torch_lstsq`` (torch.func J, numpy lstsq), ``torch_lsqr`` (torch.func J, scipy lsqr),
``torch_lsqr_op`` (scipy lsqr on a LinearOperator of torch forward-mode jvp and torch.func
vjp, J never formed),
``torch_lbfgs`` (torch.func J, scipy L-BFGS-B until the value reaches ``cfg["target"]``, the
gradbasis lower bound plus its certified gap, or the time cap).
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path
from typing import Any

import _common  # noqa: I001  (pins threads first)
import numpy as np
from _common import GB

import gradbasis

LSQR_TOL = 1e-14  # atol = btol of scipy's lsqr: the answer agrees with lstsq's to ~1e-14 relative


class Case:  # same fields as bench/gram.py's Case (kept separate: workers import no bench driver)
    def __init__(self, name, m, d_x, widths, d_y, repeat=1, anchors=True):
        self.name, self.m, self.d_x, self.widths, self.d_y = name, m, d_x, tuple(widths), d_y

    @property
    def layer_sizes(self) -> list[int]:
        return [self.d_x, *self.widths, self.d_y]

    @property
    def n(self) -> int:
        return self.m * self.d_y


def problem(case, loss: str, kind: str = "duplicated"):
    """(model, theta, X, Y, exact infimum) of the module docstring."""
    model = gradbasis.MLP(case.layer_sizes, activation="tanh", bias=True)
    theta = model.init(seed=0)
    X = np.repeat(np.random.default_rng(1).standard_normal((case.m // 2, case.d_x)), 2, axis=0)
    if kind == "critical":
        delta = np.random.default_rng(4).standard_normal((case.m // 2, case.d_y))
        D = np.stack([delta, -delta], axis=1).reshape(case.m, case.d_y)
        Y = model.forward(theta, X) + D
        return model, theta, X, Y, float(np.mean(np.sum(D**2, axis=1)))
    if loss == "squared":
        Y = np.random.default_rng(2).standard_normal((case.m, case.d_y))
        pair_mean = np.repeat(Y.reshape(-1, 2, case.d_y).mean(axis=1), 2, axis=0)
        exact = float(np.mean(np.sum((Y - pair_mean) ** 2, axis=1)))
    else:
        Y = np.random.default_rng(3).dirichlet(np.ones(case.d_y), size=case.m)
        pbar = np.repeat(Y.reshape(-1, 2, case.d_y).mean(axis=1), 2, axis=0)
        exact = float(np.mean(-np.sum(Y * np.log(pbar), axis=1)))
    return model, theta, X, Y, exact


def say(tag: str, **fields) -> None:
    print(f"{tag} {json.dumps(fields, default=_common._json_default)}", flush=True)


# ------------------------------------------------------------------------------ the user's ways


def torch_net(model, theta):
    """(f(flat theta, X) -> (m, d_y) in torch, flat theta as a torch tensor): gradbasis's
    parameter order (vec(W) column-major, then b, layer by layer)."""
    import torch

    torch.set_num_threads(_common.N_THREADS)
    specs = [(k, v.shape) for k, v in model.unflatten(theta).items()]
    L = sum(k.startswith("W") for k, _ in specs)

    def f(th, X):
        p, off = {}, 0
        for name, shape in specs:
            size = int(np.prod(shape))
            piece = th[off : off + size]
            p[name] = piece.reshape(shape[1], shape[0]).T if len(shape) == 2 else piece
            off += size
        h = X
        for l in range(1, L + 1):
            h = torch.nn.functional.linear(h, p[f"W{l}"], p[f"b{l}"])
            if l < L:
                h = torch.tanh(h)
        return h

    return f, torch.from_numpy(np.ascontiguousarray(theta))


def torch_jacobian(model, theta, X) -> np.ndarray:
    """J (m d_y, P) by torch.func.vmap(jacrev) over the named parameters, blocks side by side."""
    import torch
    from torch.func import jacrev, vmap

    torch.set_num_threads(_common.N_THREADS)
    params = {k: torch.from_numpy(v) for k, v in model.unflatten(theta).items()}
    L = sum(k.startswith("W") for k in params)

    def f(p, x):
        h = x.unsqueeze(0)
        for l in range(1, L + 1):
            h = torch.nn.functional.linear(h, p[f"W{l}"], p[f"b{l}"])
            if l < L:
                h = torch.tanh(h)
        return h.squeeze(0)

    jac = vmap(jacrev(f), in_dims=(None, 0))(params, torch.from_numpy(X))
    n = X.shape[0] * model.output_dim
    # column-major vec(W): (n, out, in) -> (n, in, out) flattened
    cols = []
    for k in list(jac):
        blk = jac.pop(k).reshape(n, *params[k].shape)
        cols.append(blk.transpose(1, 2).reshape(n, -1) if blk.dim() == 3 else blk.reshape(n, -1))
    return torch.cat(cols, dim=1).numpy()


def lsqr_operator(model, theta, X):
    """scipy LinearOperator v -> J v, u -> J^T u from torch's AD (J never formed): J v by
    forward mode (``torch.autograd.forward_ad`` dual numbers: of torch.func.jvp, linearize and
    this, the fastest per product here), J^T u by ``torch.func.vjp`` with the forward pass's
    residuals kept across products."""
    import scipy.sparse.linalg as spla
    import torch
    import torch.autograd.forward_ad as fwAD
    from torch.func import vjp

    f, th = torch_net(model, theta)
    Xt = torch.from_numpy(X)
    n, P = X.shape[0] * model.output_dim, model.num_params

    def fX(t):
        return f(t, Xt).reshape(-1)

    _, pullback = vjp(fX, th)

    def matvec(v):
        with fwAD.dual_level():
            dual = fwAD.make_dual(th, torch.from_numpy(np.ascontiguousarray(v).ravel()))
            return fwAD.unpack_dual(fX(dual)).tangent.numpy()

    def rmatvec(u):
        return pullback(torch.from_numpy(np.ascontiguousarray(u).ravel()))[0].numpy()

    return spla.LinearOperator((n, P), matvec=matvec, rmatvec=rmatvec, dtype=np.float64)


def lbfgs_to_target(J: np.ndarray, Y: np.ndarray, target: float | None, budget_s: float):
    """scipy L-BFGS-B from a = 0 on a -> mean_i CE(J_i a, y_i), stopped once the value reaches
    ``target`` (or converged, or out of time: 'reached_target' says which)."""
    import scipy.optimize
    from scipy.special import log_softmax

    m, d = Y.shape
    t0 = time.perf_counter()
    best = {"value": np.inf}

    def fun(a):
        F = (J @ a).reshape(m, d)
        logp = log_softmax(F, axis=1)
        v = float(-np.sum(Y * logp) / m)
        best["value"] = min(best["value"], v)
        return v, J.T @ ((np.exp(logp) - Y) / m).ravel()

    def stop(intermediate_result):
        if target is not None and intermediate_result.fun <= target:
            raise StopIteration
        if time.perf_counter() - t0 > budget_s:
            raise StopIteration

    res = scipy.optimize.minimize(
        fun,
        np.zeros(J.shape[1]),
        jac=True,
        method="L-BFGS-B",
        callback=stop,
        options={"maxiter": 100000, "maxfun": 200000, "gtol": 1e-14, "ftol": 1e-18, "maxcor": 20},
    )
    return {
        "value": float(res.fun),
        "iterations": int(res.nit),
        "message": str(res.message),
        "reached_target": bool(target is not None and res.fun <= target),
        "converged": bool(target is not None and res.fun <= target),
        "target": target,
        "stopped_by_time": time.perf_counter() - t0 > budget_s,
        "budget_s": budget_s,
        "gradient_norm": float(np.linalg.norm(res.jac)),
    }


# ------------------------------------------------------------------------------ one contender


def _induced_fields(res) -> dict[str, Any]:
    return {
        "value": res.value,
        "lower": res.lower,
        "gap": res.value - res.lower,
        "strategy": res.strategy,
        "rank": res.rank,
        "rank_tol": res.rank_tol,
        "attained": res.attained,
        "converged": res.converged,
        "iterations": res.iterations,
        "scope": getattr(res, "scope", ""),
        "details": res.details,
    }


def run_kind(kind: str, cfg: dict) -> dict[str, Any]:
    case = Case(**cfg["case"])
    model, theta, X, Y, exact = problem(case, cfg["loss"], cfg.get("problem", "duplicated"))
    obj = gradbasis.Objective(model, cfg["loss"], X, Y)
    budget = cfg.get("memory_budget")
    gradbasis.gradient_basis_minimum(  # warm-up: first-call overheads, on 4 samples
        gradbasis.Objective(model, cfg["loss"], X[:4], Y[:4]), theta, strategy="dense"
    )
    if kind.startswith("torch"):
        torch_jacobian(model, theta, X[:4])
        if kind == "torch_lsqr_op":
            lsqr_operator(model, theta, X[:4]).matvec(np.zeros(model.num_params))
    extra: dict[str, Any] = {}
    if kind == "gb_theorem1":  # K alone, in the same process, just before
        model.gram(theta, X[:8])
        k_timing = _common.measure(lambda: model.gram(theta, X), cfg["repeat"], budget_s=30)
        extra["gram_K_timing"] = k_timing
        extra["gram_K_s"] = k_timing["best_s"]

    def once() -> dict[str, Any]:
        if kind.startswith("gb_") and kind != "gb_theorem1":
            res = gradbasis.gradient_basis_minimum(
                obj, theta, strategy=kind[3:], memory_budget=budget
            )
            return _induced_fields(res)
        if kind == "gb_theorem1":
            r = gradbasis.theorem1(obj, theta, strategy="gram", memory_budget=budget)
            return {
                "verdict": str(getattr(r.verdict, "value", r.verdict)),
                "reason": r.reason,
                "judged_by": str(getattr(r.judged_by, "value", r.judged_by)),
                "strategy": str(getattr(r.strategy, "value", r.strategy)),
                "stage_seconds": dict(r.seconds),
                "scope": r.scope,
                "rank": r.rank,
                "rank_tol": r.rank_tol,
                "loss_value": r.loss_value,
                "value": r.value,
                "lower": r.lower,
                "gap": r.gap,
                "tol": r.tol,
                "induced_details": getattr(r.induced, "details", {}),
                "induced_scope": getattr(r.induced, "scope", ""),
            }
        if kind == "gram_steps":
            return gram_steps(model, obj, theta)
        t0 = time.perf_counter()
        if kind == "torch_lsqr_op":
            import scipy.sparse.linalg as spla

            A = lsqr_operator(model, theta, X)
            out = {"setup_s": time.perf_counter() - t0}
            sol = spla.lsqr(A, Y.ravel(), atol=LSQR_TOL, btol=LSQR_TOL, iter_lim=20 * A.shape[0])
            r = A.matvec(sol[0]) - Y.ravel()
            return {
                **out,
                "value": float(r @ r / case.m),
                "iterations": int(sol[2]),
                "istop": int(sol[1]),
            }
        J = torch_jacobian(model, theta, X)
        out = {"jacobian_s": time.perf_counter() - t0}
        if kind == "torch_lstsq":
            a, _, rank, _ = np.linalg.lstsq(J, Y.ravel(), rcond=None)
            out.update(value=float(np.sum((J @ a - Y.ravel()) ** 2) / case.m), rank=int(rank))
        elif kind == "torch_lsqr":
            import scipy.sparse.linalg as spla

            sol = spla.lsqr(J, Y.ravel(), atol=LSQR_TOL, btol=LSQR_TOL, iter_lim=20 * J.shape[0])
            r = J @ sol[0] - Y.ravel()
            out.update(value=float(r @ r / case.m), iterations=int(sol[2]), istop=int(sol[1]))
        else:
            out.update(
                lbfgs_to_target(J, Y, cfg.get("target"), 0.95 * cfg["cap_s"] - out["jacobian_s"])
            )
        return out

    res = _common.measure(
        once,
        cfg["repeat"],
        max_reruns=cfg.get("max_reruns", 3),
        budget_s=cfg["repeat_budget_s"],
        keep_output=True,
        before_each=lambda i: say("PHASE", phase="run", index=i),
    )
    out = res.pop("output")
    return {
        **out,
        **extra,
        **res,
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
