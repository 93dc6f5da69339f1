"""Benchmark: full per-sample Jacobian of an MLP -- gradbasis vs torch.func vs JAX.

What is measured
----------------
For an MLP f(x; theta) with biases, in float64, and a batch X of m samples, every
contender produces the dense Jacobian J with rows ``i*d_y + k`` = d f_k(x_i) / d theta
(shape ``(m*d_y, num_params)``, theta order of gradbasis: per layer vec(W) column-major,
then b). The wall time of one call is measured, best of ``--repeat`` runs:

* **gradbasis**: ``model.jacobian(theta, X, n_threads=2)`` (a freshly allocated array).
* **torch.func**: ``vmap(jacrev(f))`` with ``f = functional_call(module, params, x)``, two
  outputs are timed and the quicker one is reported:
  ``per-layer``: the natural output, a dict name -> (m, d_y, *param.shape);
  ``concat``: the same followed by one copy into the (m*d_y, num_params) matrix in theta order.
* **JAX**: ``jit(vmap(jacrev(f)))`` with x64 enabled, ``block_until_ready`` included, compilation
  excluded (done during the correctness check that precedes all timings); again two variants,
  the quicker one reported:
  ``pytree``: jacobian w.r.t. the params dict -> dict name -> (m, d_y, *param.shape);
  ``flat``: jacobian w.r.t. the flat theta (unflattened inside f) -> the (m*d_y, num_params) matrix.

The torch and JAX models are built from ``model.unflatten(theta)`` and each output is checked
once per case against gradbasis's J (relative max-abs error <= 1e-10, per-layer blocks reordered
into theta order); any mismatch aborts the run.

Why a bandwidth reference
-------------------------
Writing J is memory bound (case B's J is ~7 GB). To tell how close a contender is to the
hardware limit, the same run measures "write the same number of bytes into newly allocated
memory, page faults included, on 2 threads". Two honest ways are timed and the faster one is the
reference: numpy ``np.empty`` + two Python threads each ``fill``-ing one half (numpy releases the
GIL in ``fill``; numpy madvises large arrays for transparent huge pages) and
``torch.empty(n).fill_(1.0)`` with 2 intra-op threads. ``fraction`` = gradbasis's write rate of
J / reference rate.

Threads
-------
Everyone gets 2 threads: OMP/MKL/OPENBLAS_NUM_THREADS=2 (set before any import),
``torch.set_num_threads(2)``, gradbasis ``n_threads=2``. XLA has no thread-count flag (a bare
``intra_op_parallelism_threads=N`` in XLA_FLAGS is silently ignored, and with ``--`` it aborts);
XLA sizes its CPU thread pool from the process's CPU affinity mask, so the process is pinned to
2 CPUs with ``sched_setaffinity`` (which also binds everyone else). XLA_FLAGS gets
``--xla_cpu_multi_thread_eigen=true``.

torch's CPU allocator does not ask for transparent huge pages by default (numpy does), which
roughly halves its rate of writing fresh memory; ``THP_MEM_ALLOC_ENABLE=1`` is therefore set so
that torch gets its best configuration (``--torch-default-alloc`` turns this off). XLA's CPU
allocator has no such switch.

Memory: case B's J is ~7 GB. At most two J-sized arrays are alive at once; outputs are dropped
(``del`` + ``gc.collect()``) between repetitions.

Usage::

    python bench/jacobian.py                 # cases A and B, tanh and relu
    python bench/jacobian.py --quick         # case A only
    python bench/jacobian.py --cases B --repeat 2

Results go to stdout (markdown table) and ``bench/results/jacobian.json``. Timings are reported,
never asserted.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

N_THREADS = 2


def _pin_threads(n_threads: int, torch_thp: bool) -> list[int] | None:
    """Limit every library to ``n_threads``; must run before numpy/torch/jax are imported."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n_threads)
    flag = "--xla_cpu_multi_thread_eigen=true"
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flag).strip()
    if torch_thp:
        os.environ["THP_MEM_ALLOC_ENABLE"] = "1"
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))[:n_threads]
    os.sched_setaffinity(0, cpus)
    return cpus


PINNED_CPUS = _pin_threads(N_THREADS, torch_thp="--torch-default-alloc" not in sys.argv)

# numpy, torch and jax read the thread settings above when imported.
import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.func import functional_call, jacrev, vmap  # noqa: E402

import gradbasis  # noqa: E402

torch.set_num_threads(N_THREADS)

REL_TOL = 1e-10
CHECK_CHUNK_SAMPLES = 64
RESULTS_PATH = Path(__file__).resolve().parent / "results" / "jacobian.json"


@dataclass(frozen=True)
class Case:
    name: str
    m: int
    d_x: int
    widths: tuple[int, ...]
    d_y: int
    repeat: int

    @property
    def layer_sizes(self) -> list[int]:
        return [self.d_x, *self.widths, self.d_y]


CASES = {
    "A": Case("A", m=256, d_x=32, widths=(128, 128), d_y=10, repeat=5),
    "B": Case("B", m=1024, d_x=64, widths=(256, 256), d_y=10, repeat=3),
}
ACTIVATIONS = ("tanh", "relu")


@dataclass
class Contender:
    """One way of producing J.

    ``run()`` returns a finished output; ``theta_rows(out, s0, s1)`` returns the rows of
    samples s0..s1-1 as a numpy (k*d_y, num_params) array in theta order (for the check).
    """

    name: str
    run: Callable[[], Any]
    theta_rows: Callable[[Any, int, int], np.ndarray]


# ---------------------------------------------------------------------------------------------
# Layout helpers: theta order is vec(W) column-major (= W.T.ravel()) then b, layer by layer.
# ---------------------------------------------------------------------------------------------


def param_layout(params: dict[str, np.ndarray]) -> list[tuple[str, tuple[int, ...], int]]:
    """(name, shape, offset into theta) for every parameter, in theta order."""
    layout, offset = [], 0
    for name, value in params.items():
        layout.append((name, value.shape, offset))
        offset += value.size
    return layout


def block_to_theta_order(block: np.ndarray) -> np.ndarray:
    """(k, d_y, *shape) per-output jacobian of one parameter -> (k*d_y, size) in theta order."""
    k, d_y = block.shape[:2]
    if block.ndim == 4:  # W: (d_out, d_in) -> column-major vec = transpose then flatten
        block = block.transpose(0, 1, 3, 2)
    return block.reshape(k * d_y, -1)


def per_param_rows(blocks: dict[str, np.ndarray], s0: int, s1: int) -> np.ndarray:
    """Rows of samples s0..s1-1 of a per-parameter jacobian dict, concatenated in theta order."""
    return np.concatenate([block_to_theta_order(b[s0:s1]) for b in blocks.values()], axis=1)


# ---------------------------------------------------------------------------------------------
# Contenders
# ---------------------------------------------------------------------------------------------


def gradbasis_contender(model, theta: np.ndarray, X: np.ndarray, d_y: int) -> Contender:
    return Contender(
        "gradbasis",
        run=lambda: model.jacobian(theta, X, n_threads=N_THREADS),
        theta_rows=lambda J, s0, s1: J[s0 * d_y : s1 * d_y],
    )


class TorchMLP(torch.nn.Module):
    """h_l = act(W_l h_{l-1} + b_l), last layer linear; parameters named like gradbasis's."""

    def __init__(self, params: dict[str, np.ndarray], activation: str):
        super().__init__()
        for name, value in params.items():
            self.register_parameter(name, torch.nn.Parameter(torch.from_numpy(value.copy())))
        self.n_layers = sum(name.startswith("W") for name in params)
        self.act = {"tanh": torch.tanh, "relu": torch.relu}[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for layer in range(1, self.n_layers + 1):
            h = torch.nn.functional.linear(
                h, getattr(self, f"W{layer}"), getattr(self, f"b{layer}")
            )
            if layer < self.n_layers:
                h = self.act(h)
        return h


def torch_contenders(
    params: dict[str, np.ndarray], activation: str, X: np.ndarray
) -> list[Contender]:
    module = TorchMLP(params, activation)
    tparams = {name: p.detach() for name, p in module.named_parameters()}
    Xt = torch.from_numpy(X)
    m, d_y = X.shape[0], module(Xt[:1]).shape[-1]
    layout = param_layout(params)
    num_params = sum(p.size for p in params.values())

    def f(p, x):
        return functional_call(module, p, (x,))

    per_sample_jac = vmap(jacrev(f), in_dims=(None, 0))

    def per_layer() -> dict[str, torch.Tensor]:
        return per_sample_jac(tparams, Xt)

    def concat() -> torch.Tensor:
        jac = per_layer()
        out = torch.empty(m, d_y, num_params, dtype=torch.float64)
        for name, shape, offset in layout:
            block = jac.pop(name)  # free each block once copied
            dst = out[:, :, offset : offset + block[0, 0].numel()]
            if len(shape) == 2:
                dst.unflatten(-1, (shape[1], shape[0])).copy_(block.transpose(-1, -2))
            else:
                dst.copy_(block)
        return out.view(m * d_y, num_params)

    def per_layer_rows(jac, s0, s1):
        return per_param_rows({n: t.numpy() for n, t in jac.items()}, s0, s1)

    return [
        Contender("torch.func concat", concat, lambda J, s0, s1: J[s0 * d_y : s1 * d_y].numpy()),
        Contender("torch.func per-layer", per_layer, per_layer_rows),
    ]


def jax_mlp(params: dict[str, jax.Array], x: jax.Array, activation: str) -> jax.Array:
    act = {"tanh": jnp.tanh, "relu": jax.nn.relu}[activation]
    n_layers = sum(name.startswith("W") for name in params)
    h = x
    for layer in range(1, n_layers + 1):
        h = params[f"W{layer}"] @ h + params[f"b{layer}"]
        if layer < n_layers:
            h = act(h)
    return h


def jax_contenders(
    params: dict[str, np.ndarray], activation: str, X: np.ndarray
) -> list[Contender]:
    layout = param_layout(params)
    jparams = {name: jnp.asarray(value) for name, value in params.items()}
    jtheta = jnp.concatenate([jnp.asarray(v.T.ravel()) for v in params.values()])  # theta order
    Xj = jnp.asarray(X)
    m = X.shape[0]

    def unflatten(theta):
        out = {}
        for name, shape, offset in layout:
            size = int(np.prod(shape))
            piece = theta[offset : offset + size]
            out[name] = piece.reshape(shape[1], shape[0]).T if len(shape) == 2 else piece
        return out

    def f_tree(p, x):
        return jax_mlp(p, x, activation)

    def f_flat(theta, x):
        return jax_mlp(unflatten(theta), x, activation)

    jac_tree = jax.jit(jax.vmap(jax.jacrev(f_tree), in_axes=(None, 0)))

    @jax.jit
    def jac_flat(theta, Xb):
        J = jax.vmap(jax.jacrev(f_flat), in_axes=(None, 0))(theta, Xb)  # (m, d_y, num_params)
        return J.reshape(-1, J.shape[-1])

    def pytree():
        return jax.block_until_ready(jac_tree(jparams, Xj))

    def flat():
        return jax.block_until_ready(jac_flat(jtheta, Xj))

    def tree_rows(jac, s0, s1):
        return per_param_rows({n: np.asarray(jac[n]) for n in params}, s0, s1)

    def flat_rows(J, s0, s1):
        d_y = J.shape[0] // m
        return np.asarray(J)[s0 * d_y : s1 * d_y]

    return [Contender("JAX flat", flat, flat_rows), Contender("JAX pytree", pytree, tree_rows)]


# ---------------------------------------------------------------------------------------------
# Bandwidth reference: write n_bytes into freshly allocated memory on 2 threads
# ---------------------------------------------------------------------------------------------


def numpy_threaded_fill(n_bytes: int) -> np.ndarray:
    arr = np.empty(n_bytes // 8)
    bounds = np.linspace(0, arr.size, N_THREADS + 1).astype(int)
    workers = [
        threading.Thread(target=arr[lo:hi].fill, args=(1.0,))
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=False)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return arr


def torch_fill(n_bytes: int) -> torch.Tensor:
    return torch.empty(n_bytes // 8, dtype=torch.float64).fill_(1.0)


def bandwidth_contenders(n_bytes: int) -> list[Contender]:
    return [
        Contender("numpy empty + 2-thread fill", lambda: numpy_threaded_fill(n_bytes), None),
        Contender("torch empty + fill_", lambda: torch_fill(n_bytes), None),
    ]


# ---------------------------------------------------------------------------------------------
# Check and timing
# ---------------------------------------------------------------------------------------------


class AnchorMismatch(RuntimeError):
    pass


def compare(
    contender: Contender, out: Any, J_ref: np.ndarray, m: int, d_y: int
) -> dict[str, float]:
    """Relative error of a contender's J against gradbasis's, sample chunk by sample chunk."""
    max_diff = max_ref = sq_diff = sq_ref = 0.0
    for s0 in range(0, m, CHECK_CHUNK_SAMPLES):
        s1 = min(m, s0 + CHECK_CHUNK_SAMPLES)
        ref = J_ref[s0 * d_y : s1 * d_y]
        got = contender.theta_rows(out, s0, s1)
        if got.shape != ref.shape:
            raise AnchorMismatch(
                f"{contender.name}: rows have shape {got.shape}, expected {ref.shape}"
            )
        diff = got - ref
        max_diff = max(max_diff, float(np.max(np.abs(diff))))
        max_ref = max(max_ref, float(np.max(np.abs(ref))))
        sq_diff += float(np.vdot(diff, diff))
        sq_ref += float(np.vdot(ref, ref))
    errors = {"rel_max_abs": max_diff / max_ref, "rel_frobenius": (sq_diff / sq_ref) ** 0.5}
    if not (errors["rel_max_abs"] <= REL_TOL and errors["rel_frobenius"] <= REL_TOL):
        raise AnchorMismatch(
            f"{contender.name} disagrees with gradbasis: {errors} (tolerance {REL_TOL:g} relative)"
        )
    return errors


def check_anchors(gb: Contender, anchors: list[Contender], m: int, d_y: int) -> dict[str, dict]:
    """Run every anchor once (this is also the JIT warm-up) and compare it with gradbasis.

    gradbasis's J is computed after the first anchor's output, so that at most two J-sized
    arrays are alive at any time (the first anchor, torch's concat, transiently needs two).
    """
    J_ref, errors = None, {}
    for anchor in anchors:
        out = anchor.run()
        if J_ref is None:
            J_ref = gb.run()
        errors[anchor.name] = compare(anchor, out, J_ref, m, d_y)
        del out
        gc.collect()
    del J_ref
    gc.collect()
    return errors


def time_round_robin(contenders: list[Contender], repeat: int) -> dict[str, list[float]]:
    """Wall time of each contender, ``repeat`` rounds, interleaved; outputs freed in between."""
    times: dict[str, list[float]] = {c.name: [] for c in contenders}
    for _ in range(repeat):
        for c in contenders:
            gc.collect()
            t0 = time.perf_counter()
            out = c.run()
            times[c.name].append(time.perf_counter() - t0)
            del out
    gc.collect()
    return times


def time_into_buffer(model, theta: np.ndarray, X: np.ndarray, repeat: int) -> float:
    """Best wall time of ``jacobian(..., out=buf)`` into one reused, already-touched buffer:
    what a caller that keeps its memory pays (no allocation, no page faults)."""
    buf = model.jacobian(theta, X, n_threads=N_THREADS)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        model.jacobian(theta, X, n_threads=N_THREADS, out=buf)
        best = min(best, time.perf_counter() - t0)
    del buf
    gc.collect()
    return best


def quickest(times: dict[str, list[float]], prefix: str) -> tuple[str, float]:
    best = {name: min(ts) for name, ts in times.items() if name.startswith(prefix)}
    name = min(best, key=best.get)
    return name, best[name]


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def run_case(case: Case, activation: str, repeat: int) -> dict[str, Any]:
    model = gradbasis.MLP(case.layer_sizes, activation=activation, bias=True)
    theta = model.init(seed=0)
    X = np.random.default_rng(1).standard_normal((case.m, case.d_x))
    params = model.unflatten(theta)
    n_bytes = case.m * case.d_y * model.num_params * 8

    gb = gradbasis_contender(model, theta, X, case.d_y)
    anchors = torch_contenders(params, activation, X) + jax_contenders(params, activation, X)
    errors = check_anchors(gb, anchors, case.m, case.d_y)

    bandwidth = bandwidth_contenders(n_bytes)
    times = time_round_robin([gb, *anchors, *bandwidth], repeat)

    t_gb = min(times["gradbasis"])
    t_reuse = time_into_buffer(model, theta, X, repeat)
    torch_name, t_torch = quickest(times, "torch.func")
    jax_name, t_jax = quickest(times, "JAX")
    bw_name, t_bw = min(((c.name, min(times[c.name])) for c in bandwidth), key=lambda x: x[1])
    return {
        "case": case.name,
        "activation": activation,
        "m": case.m,
        "layer_sizes": case.layer_sizes,
        "num_params": model.num_params,
        "J_bytes": n_bytes,
        "repeat": repeat,
        "times_s": times,
        "check_rel_errors": errors,
        "gradbasis_s": t_gb,
        "torch_s": t_torch,
        "torch_variant": torch_name,
        "jax_s": t_jax,
        "jax_variant": jax_name,
        "gradbasis_GBps": n_bytes / t_gb / 1e9,
        "gradbasis_out_s": t_reuse,
        "bandwidth_ref_GBps": n_bytes / t_bw / 1e9,
        "bandwidth_ref_method": bw_name,
    }


def markdown_table(rows: list[dict[str, Any]]) -> str:
    header = (
        "| case | activation | gradbasis s | gradbasis out= s | torch.func s (variant) | JAX s (variant) "
        "| torch/gradbasis | jax/gradbasis | torch/out= | gradbasis GB/s of J | bandwidth ref GB/s | fraction |"
    )
    lines = [header, "|" + "---|" * 12]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['activation']} | {r['gradbasis_s']:.4f} | {r['gradbasis_out_s']:.4f} "
            f"| {r['torch_s']:.4f} ({r['torch_variant'].split()[-1]}) "
            f"| {r['jax_s']:.4f} ({r['jax_variant'].split()[-1]}) "
            f"| {r['torch_s'] / r['gradbasis_s']:.2f} | {r['jax_s'] / r['gradbasis_s']:.2f} "
            f"| {r['torch_s'] / r['gradbasis_out_s']:.2f} | {r['gradbasis_GBps']:.2f} | {r['bandwidth_ref_GBps']:.2f} "
            f"| {r['gradbasis_GBps'] / r['bandwidth_ref_GBps']:.2f} |"
        )
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "pinned_cpus": PINNED_CPUS,
        "n_threads": N_THREADS,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "torch_THP_MEM_ALLOC_ENABLE": os.environ.get("THP_MEM_ALLOC_ENABLE"),
        "jax": jax.__version__,
        "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
        "gradbasis": getattr(gradbasis, "__version__", None),
        "transparent_hugepage": thp.read_text().strip() if thp.exists() else None,
        "loadavg_at_start": os.getloadavg(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="A,B", help="comma-separated subset of A,B")
    parser.add_argument(
        "--repeat", type=int, default=None, help="timing rounds (default: A 5, B 3)"
    )
    parser.add_argument("--quick", action="store_true", help="case A only")
    parser.add_argument("--activations", default=",".join(ACTIVATIONS), help="comma-separated")
    parser.add_argument(
        "--torch-default-alloc",
        action="store_true",
        help="do not set THP_MEM_ALLOC_ENABLE=1 for torch (read before imports)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_PATH, help="JSON output path")
    args = parser.parse_args(argv)
    args.cases = ["A"] if args.quick else [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(args.cases) - set(CASES)
    if unknown:
        parser.error(f"unknown case(s) {sorted(unknown)}; choose from {sorted(CASES)}")
    args.activations = [a.strip() for a in args.activations.split(",") if a.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = environment()
    print(f"# jacobian benchmark, {N_THREADS} threads, CPUs {PINNED_CPUS}", flush=True)
    if env["loadavg_at_start"][0] > 0.5:
        print(
            f"# warning: load average {env['loadavg_at_start']}, timings may be noisy", flush=True
        )
    rows = []
    for case_name in args.cases:
        case = CASES[case_name]
        for activation in args.activations:
            t0 = time.perf_counter()
            row = run_case(case, activation, args.repeat or case.repeat)
            rows.append(row)
            print(
                f"case {case.name} {activation}: done in {time.perf_counter() - t0:.1f} s; "
                f"check errors {row['check_rel_errors']}; best times "
                f"{ {k: round(min(v), 4) for k, v in row['times_s'].items()} }",
                flush=True,
            )
    print()
    print(markdown_table(rows))
    print()
    print(
        "torch.func variant: per-layer = dict of per-parameter jacobians, concat = (m*d_y, dθ) matrix; "
        "JAX variant: pytree = dict of per-parameter jacobians, flat = (m*d_y, dθ) matrix; "
        f"bandwidth reference method(s): {sorted({r['bandwidth_ref_method'] for r in rows})}"
    )
    env["loadavg_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"environment": env, "results": rows}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
