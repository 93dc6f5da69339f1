"""Subprocess side of bench/gram.py: computes the empirical NTK K of one MLP with ONE anchor
recipe, checks it against gradbasis's K, times it, and prints ``RESULT {json}``.

Run by bench/gram.py, never by hand: ``python bench/_anchor_worker.py CONFIG.json``; the config
lists the recipes to run in turn (``kinds``), each announced by a ``BEGIN`` line. It runs
under the current interpreter (torch.func and JAX recipes) or under a separate virtual
environment holding neural-tangents (the ``nt_*`` recipes; neither torch nor gradbasis is
imported there). Progress lines (``PHASE ...``) let the parent tell compilation from the timed
runs when it has to stop a run that exceeds its time cap.

Recipes (all float64, 2 threads, the same weights as gradbasis's theta; output layout noted):

* ``torch_jc``    torch.func Jacobian contraction: J_p = vmap(jacrev(f)) per parameter, then
                  K = sum_p J_p J_p^T (``torch.addmm`` into one (n, n) buffer).   -> (n, n)
* ``torch_ntkvp`` torch.func NTK-vector products, the tutorial's recipe:
                  vmap(vmap(get_ntk)) over sample pairs, vjp then jvp per basis vector; the outer
                  vmap is chunked (``chunk_size``) so that the per-pair parameter cotangents fit
                  in memory.                                                          -> (m, m, d_y, d_y)
* ``jax_jc``      jit(vmap(jacrev(f))) w.r.t. the flat theta, then J @ J.T, one jitted function.
                                                                                      -> (n, n)
* ``nt_jc`` / ``nt_ntkvp`` / ``nt_sd``  neural_tangents.empirical_ntk_fn(f, trace_axes=(),
                  vmap_axes=0, implementation=JACOBIAN_CONTRACTION / NTK_VECTOR_PRODUCTS /
                  STRUCTURED_DERIVATIVES), jitted.                                   -> (m, m, d_y, d_y)
* ``nt_smoke``    import neural_tangents and run the three implementations on a tiny MLP: reports
                  which ones work with this interpreter's JAX.

JAX recipes are compiled ahead of time (``jit(...).lower(...).compile()``) before the timed
runs; torch recipes are warmed up on 8 samples. The first timed run's output is checked
(max |K - K_gradbasis| / max |K_gradbasis| <= rel_tol) before any time is reported.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (pins threads before numpy/torch/jax are imported)
import numpy as np  # noqa: E402

NT_IMPLS = {
    "nt_jc": "JACOBIAN_CONTRACTION",
    "nt_ntkvp": "NTK_VECTOR_PRODUCTS",
    "nt_sd": "STRUCTURED_DERIVATIVES",
}


def say(tag: str, **fields) -> None:
    print(f"{tag} {json.dumps(fields)}", flush=True)


def load_params(path: str) -> dict[str, np.ndarray]:
    """W{l} (out, in) and b{l} in layer order, as gradbasis's model.unflatten gives them."""
    with np.load(path) as z:
        names = list(z["names"])
        return {name: z[name] for name in names}


def n_layers(params) -> int:
    return sum(k.startswith("W") for k in params)


# ------------------------------------------------------------------------------ torch.func


def torch_recipe(kind: str, params, X: np.ndarray, activation: str, d_y: int):
    import torch
    from torch.func import functional_call, jacrev, jvp, vjp, vmap

    torch.set_num_threads(_common.N_THREADS)
    act = {"tanh": torch.tanh, "relu": torch.relu}[activation]
    L = n_layers(params)

    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for name, value in params.items():
                self.register_parameter(name, torch.nn.Parameter(torch.from_numpy(value.copy())))

        def forward(self, x):
            h = x
            for l in range(1, L + 1):
                h = torch.nn.functional.linear(h, getattr(self, f"W{l}"), getattr(self, f"b{l}"))
                if l < L:
                    h = act(h)
            return h

    net = MLP()
    tparams = {k: v.detach() for k, v in net.named_parameters()}
    P = sum(v.numel() for v in tparams.values())

    def f_single(p, x):  # one sample -> (d_y,)
        return functional_call(net, p, (x.unsqueeze(0),)).squeeze(0)

    if kind == "torch_jc":
        per_sample_jac = vmap(jacrev(f_single), in_dims=(None, 0))

        def run(Xt):
            jac = per_sample_jac(tparams, Xt)  # name -> (m, d_y, *shape)
            n = Xt.shape[0] * d_y
            K = torch.zeros(n, n, dtype=torch.float64)
            for name in list(jac):
                Jp = jac.pop(name).reshape(n, -1)
                K.addmm_(Jp, Jp.T)
                del Jp
            return K

        return run, "nn", {}

    # NTK-vector products (tutorial): for a pair (x1, x2), vjp of f(x1) along each basis
    # vector of the output, then jvp of f(x2) along that parameter cotangent.
    def get_ntk(x1, x2):
        def f1(p):
            return f_single(p, x1)

        def f2(p):
            return f_single(p, x2)

        out, vjp_fn = vjp(f1, tparams)

        def ntk_slice(vec):
            (cot,) = vjp_fn(vec)
            return jvp(f2, (tparams,), (cot,))[1]

        return vmap(ntk_slice)(torch.eye(out.numel(), dtype=out.dtype))

    m = X.shape[0]
    chunk = max(1, int(256e6 // (m * d_y * P * 8)))  # ~256 MB of cotangents per chunk

    def run(Xt):
        return vmap(vmap(get_ntk, (None, 0)), (0, None), chunk_size=chunk)(Xt, Xt)

    return run, "mmab", {"outer_chunk_size": chunk}


def run_torch(cfg, params, X, K_ref):
    import torch

    run, layout, info = torch_recipe(cfg["kind"], params, X, cfg["activation"], cfg["d_y"])
    Xt = torch.from_numpy(X)
    t0 = time.perf_counter()
    run(Xt[:8])  # warm-up: first-call overheads of torch.func
    say("PHASE", phase="warm", seconds=time.perf_counter() - t0)
    return timed_runs(cfg, lambda: run(Xt), layout, K_ref, info)


# ------------------------------------------------------------------------------ JAX / neural-tangents


def jax_setup():
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


def jax_mlp_batch(params, x, activation):
    """Batch forward (m, d_x) -> (m, d_y), params W{l} (out, in)."""
    import jax
    import jax.numpy as jnp

    act = {"tanh": jnp.tanh, "relu": jax.nn.relu}[activation]
    L = n_layers(params)
    h = x
    for l in range(1, L + 1):
        h = h @ params[f"W{l}"].T + params[f"b{l}"]
        if l < L:
            h = act(h)
    return h


def jax_mlp_batch_in_out(params, x, activation):
    """jax_mlp_batch with W{l} stored (in, out), applied without a transpose."""
    import jax
    import jax.numpy as jnp

    act = {"tanh": jnp.tanh, "relu": jax.nn.relu}[activation]
    L = n_layers(params)
    h = x
    for l in range(1, L + 1):
        h = h @ params[f"W{l}"] + params[f"b{l}"]
        if l < L:
            h = act(h)
    return h


def jax_jc_fn(params, activation):
    """theta (gradbasis order: vec(W) column-major, then b) -> K via jit(vmap(jacrev)) and J J^T."""
    jax = jax_setup()
    import jax.numpy as jnp

    layout, offset = [], 0
    for name, value in params.items():
        layout.append((name, value.shape, offset))
        offset += value.size
    theta = np.concatenate([v.T.ravel() for v in params.values()])

    def unflatten(th):
        out = {}
        for name, shape, off in layout:
            piece = th[off : off + int(np.prod(shape))]
            out[name] = piece.reshape(shape[1], shape[0]).T if len(shape) == 2 else piece
        return out

    def f_single(th, x):
        return jax_mlp_batch(unflatten(th), x[None, :], activation)[0]

    @jax.jit
    def K_fn(th, Xb):
        J = jax.vmap(jax.jacrev(f_single), in_axes=(None, 0))(th, Xb)
        J = J.reshape(-1, J.shape[-1])
        return J @ J.T

    return K_fn, jnp.asarray(theta)


def run_jax(cfg, params, X, K_ref):
    jax = jax_setup()
    import jax.numpy as jnp

    Xj = jnp.asarray(X)
    t0 = time.perf_counter()
    if cfg["kind"] == "jax_jc":
        K_fn, th = jax_jc_fn(params, cfg["activation"])
        compiled = K_fn.lower(th, Xj).compile()
        call, layout = (lambda: jax.block_until_ready(compiled(th, Xj))), "nn"
    else:
        import neural_tangents as nt

        # Weights stored (in, out) and applied as h @ W: the NTK is the same, and a transpose
        # inside the network hides the dense structure from the structured mode (measured 10x
        # slower on case A with h @ W.T).
        jp = {k: jnp.asarray(v.T if k.startswith("W") else v) for k, v in params.items()}
        impl = getattr(nt.NtkImplementation, NT_IMPLS[cfg["kind"]])
        fn = nt.empirical_ntk_fn(
            lambda p, x: jax_mlp_batch_in_out(p, x, cfg["activation"]),
            trace_axes=(),
            vmap_axes=0,
            implementation=impl,
        )
        compiled = jax.jit(fn).lower(Xj, None, jp).compile()
        call, layout = (lambda: jax.block_until_ready(compiled(Xj, None, jp))), "mmab"
    say("PHASE", phase="compiled", seconds=time.perf_counter() - t0)
    return timed_runs(cfg, call, layout, K_ref, {"jax": jax.__version__})


def nt_smoke() -> dict:
    """Which neural-tangents implementations work with this interpreter's JAX."""
    out = {"python": sys.executable}
    try:
        jax = jax_setup()
        out["jax"] = jax.__version__
        import jax.numpy as jnp
        import neural_tangents as nt

        out["neural_tangents"] = getattr(nt, "__version__", "unknown")
    except Exception as e:  # noqa: BLE001  (the error is the result)
        out["import_error"] = f"{type(e).__name__}: {e}"
        return out
    rng = np.random.default_rng(0)
    p = {
        "W1": jnp.asarray(rng.standard_normal((4, 3))),
        "b1": jnp.zeros(4),
        "W2": jnp.asarray(rng.standard_normal((2, 4))),
        "b2": jnp.zeros(2),
    }
    x = jnp.asarray(rng.standard_normal((5, 3)))
    results = []
    for kind, impl_name in NT_IMPLS.items():
        try:
            fn = nt.empirical_ntk_fn(
                lambda q, z: jax_mlp_batch(q, z, "tanh"),
                trace_axes=(),
                vmap_axes=0,
                implementation=getattr(nt.NtkImplementation, impl_name),
            )
            K = np.asarray(fn(x, None, p))
            results.append(K)
            out[kind] = "ok"
        except Exception as e:  # noqa: BLE001
            out[kind] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
    if len(results) > 1:
        out["max_disagreement"] = float(max(np.max(np.abs(r - results[0])) for r in results))
    return out


# ------------------------------------------------------------------------------ timing and check


def to_rows(out, layout: str, i0: int, i1: int, d_y: int) -> np.ndarray:
    """Rows i0*d_y .. i1*d_y of K in gradbasis order (row i*d_y + a, column j*d_y + b), as a
    NumPy copy of just that block (a JAX output is never copied whole)."""
    if layout == "nn":
        return np.asarray(out[i0 * d_y : i1 * d_y])
    block = np.asarray(out[i0:i1])  # (k, m, a, b)
    return block.transpose(0, 2, 1, 3).reshape((i1 - i0) * d_y, -1)


def check(out, layout: str, K_ref: np.ndarray, d_y: int, rel_tol: float) -> float:
    m = K_ref.shape[0] // d_y
    step = max(1, 4096 // d_y)
    max_diff = max_ref = 0.0
    for i0 in range(0, m, step):
        i1 = min(m, i0 + step)
        ref = np.asarray(K_ref[i0 * d_y : i1 * d_y])
        got = to_rows(out, layout, i0, i1, d_y)
        if got.shape != ref.shape:
            raise AssertionError(f"rows have shape {got.shape}, expected {ref.shape}")
        max_diff = max(max_diff, float(np.max(np.abs(got - ref))))
        max_ref = max(max_ref, float(np.max(np.abs(ref))))
    err = max_diff / max_ref
    if not err <= rel_tol:
        raise AssertionError(
            f"K disagrees with gradbasis: relative max error {err:.3e} > {rel_tol:g}"
        )
    return err


def timed_runs(cfg, call, layout, K_ref, info):
    """Timed runs (bench/_quiet.py's ``measure``: contended runs are rerun, every attempt is
    recorded); the first output is checked before anything is reported."""
    res = _common.measure(
        call,
        cfg["repeat"],
        max_reruns=cfg.get("max_reruns", 3),
        budget_s=cfg["repeat_budget_s"],
        first=lambda out: check(out, layout, K_ref, cfg["d_y"], cfg["rel_tol"]),
        before_each=lambda i: say("PHASE", phase="run", index=i),
    )
    return {
        **res,
        "rel_max_error": res.pop("first"),
        "layout": layout,
        "process_peak_rss_GB": _common.vm_hwm_bytes() / _common.GB,
        **info,
    }


def main() -> int:
    """Run the recipes in cfg["kinds"] one after the other (one import of torch/JAX for all)."""
    cfg = json.loads(Path(sys.argv[1]).read_text())
    if cfg["kinds"] == ["nt_smoke"]:
        say("BEGIN", kind="nt_smoke")
        say("RESULT", kind="nt_smoke", **nt_smoke())
        return 0
    params = load_params(cfg["params"])
    X = np.load(cfg["X"])
    K_ref = np.load(cfg["K_ref"], mmap_mode="r")
    for kind in cfg["kinds"]:
        say("BEGIN", kind=kind)
        try:
            runner = run_torch if kind.startswith("torch") else run_jax
            res = runner({**cfg, "kind": kind}, params, X, K_ref)
            say("RESULT", kind=kind, **res)
        except Exception as e:  # noqa: BLE001  (reported to the parent, which records it)
            say(
                "ERROR",
                kind=kind,
                error=f"{type(e).__name__}: {str(e)[:2000]}",
                traceback=traceback.format_exc()[-3000:],
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
