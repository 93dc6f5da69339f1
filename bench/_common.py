"""Shared pieces of the benchmarks (bench/gram.py, bench/induced.py, bench/distributed.py, ...).

Import this module FIRST (before numpy, torch or jax): it pins every library to ``N_THREADS``
threads the same way bench/jacobian.py does (OMP/MKL/OPENBLAS_NUM_THREADS, the process's CPU
affinity for XLA, ``--xla_cpu_multi_thread_eigen=true``, ``THP_MEM_ALLOC_ENABLE=1`` for torch).

Quiet machine and contention (bench/_quiet.py, re-exported here): ``wait_for_quiet`` before a
script's timings, and ``measure`` / ``timed`` around each timing, which record the load average
at start and end and the CPU seconds every process outside this benchmark's process tree used
during it, and rerun contended timings.
"""

from __future__ import annotations

import os
import sys

N_THREADS = 2


def _pin_threads(n_threads: int) -> list[int] | None:
    """Limit every library to ``n_threads``; runs at import, before numpy/torch/jax load."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n_threads)
    flag = "--xla_cpu_multi_thread_eigen=true"
    if flag not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flag).strip()
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))[:n_threads]
    os.sched_setaffinity(0, cpus)  # XLA sizes its pool from the affinity mask
    return cpus


PINNED_CPUS = _pin_threads(N_THREADS)
# The process tree whose CPU time is "ours": set once by the first benchmark process and
# inherited by its subprocesses (anchor workers, Dask workers); bench/run_all.sh sets it to
# itself so that one run's scripts form one tree.
os.environ.setdefault("GRADBASIS_BENCH_ROOT", str(os.getpid()))

import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import queue  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from _quiet import (  # noqa: E402, F401  (re-exported)
    CONTENDED_CORE_FRACTION,
    MAX_LOAD,
    Attempt,
    measure,
    quiet_summary,
    timed,
    wait_for_quiet,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
GB = 1e9
LOAD_WARN = 0.5
MEM_MARGIN = 1e9  # bytes left free when a worker's memory is capped


def comma_list(text: str) -> list[str]:
    """The non-empty, stripped items of a comma-separated command-line value."""
    return [item.strip() for item in text.split(",") if item.strip()]


# ------------------------------------------------------------------------------ machine limits


def dgemm_gflops(n: int = 3000, repeat: int = 4) -> float:
    """Best DGEMM rate of NumPy's BLAS (N_THREADS threads) on an n x n x n product, GFLOP/s."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    c = a @ b  # warm-up, and the output buffer
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / GB


def available_bytes() -> int:
    """MemAvailable (what a new allocation can get without swapping)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def vm_hwm_bytes(pid: int | str = "self") -> int:
    """Peak resident set size (VmHWM) of a process; counts C++ and BLAS allocations too."""
    return _status_field(pid, "VmHWM:")


def vm_rss_bytes(pid: int | str = "self") -> int:
    return _status_field(pid, "VmRSS:")


def _status_field(pid: int | str, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# ------------------------------------------------------------------------------ environment


def environment(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    import gradbasis

    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "pinned_cpus": PINNED_CPUS,
        "n_threads": N_THREADS,
        "numpy": np.__version__,
        "gradbasis": getattr(gradbasis, "__version__", None),
        "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
        "THP_MEM_ALLOC_ENABLE": os.environ.get("THP_MEM_ALLOC_ENABLE"),
        "transparent_hugepage": thp.read_text().strip() if thp.exists() else None,
        "mem_available_GB_at_start": available_bytes() / GB,
        "loadavg_at_start": os.getloadavg(),
        "argv": sys.argv,
    }
    for mod in ("torch", "jax", "scipy"):
        if mod in sys.modules:
            env[mod] = sys.modules[mod].__version__
    env.update(extra or {})
    return env


def load_warning(loadavg: tuple[float, float, float]) -> str | None:
    if loadavg[0] > LOAD_WARN:
        return (
            f"warning: load average at start {tuple(round(x, 2) for x in loadavg)} (> {LOAD_WARN}) on "
            f"{os.cpu_count()} CPUs: other work competes for the cores, all timings (DGEMM included) may be inflated"
        )
    return None


def write_results(
    name: str, env: dict[str, Any], payload: dict[str, Any], markdown: str, out_dir: Path
) -> None:
    env["loadavg_at_end"] = os.getloadavg()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(
        json.dumps({"environment": env, **payload}, indent=2, default=_json_default)
    )
    (out_dir / f"{name}.md").write_text(markdown + "\n")
    print(f"wrote {out_dir / (name + '.json')} and {out_dir / (name + '.md')}", flush=True)


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def env_block(env: dict[str, Any]) -> str:
    """A few markdown lines: the machine state the numbers were taken in."""
    lines = [
        f"- machine: {env['cpu_count']} CPUs, pinned to {env['pinned_cpus']}, {env['n_threads']} threads everywhere; "
        f"MemAvailable at start {env['mem_available_GB_at_start']:.1f} GB",
        f"- load average at start {tuple(round(x, 2) for x in env['loadavg_at_start'])}, "
        f"at end {tuple(round(x, 2) for x in env.get('loadavg_at_end', os.getloadavg()))}",
        "- versions: "
        + ", ".join(
            f"{k} {env[k]}" for k in ("python", "numpy", "scipy", "torch", "jax") if k in env
        ),
    ]
    warn = load_warning(tuple(env["loadavg_at_start"]))
    if warn:
        lines.append(f"- **{warn}**")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ timing


def best_time(
    fn: Callable[[], Any], repeat: int, budget_s: float = float("inf")
) -> tuple[float, list[float]]:
    """Best wall time of ``fn()`` over up to ``repeat`` calls, stopping early once the calls
    so far took ``budget_s``; outputs are dropped between calls. No warm-up here."""
    times: list[float] = []
    for _ in range(max(1, repeat)):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        del out
        if sum(times) >= budget_s:
            break
    gc.collect()
    return min(times), times


def fitted_exponent(xs: list[float], ys: list[float]) -> float | None:
    """Slope of log y against log x by least squares (None with fewer than two points)."""
    pts = [(x, y) for x, y in zip(xs, ys, strict=False) if x > 0 and y > 0]
    if len(pts) < 2:
        return None
    lx, ly = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(lx, ly, 1)[0])


# ------------------------------------------------------------------------------ the network


def mlp_flops_gram(layer_sizes: list[int], m: int, d_y: int) -> float:
    """Structured flop count of the FULL K (both triangles): sum over layers l of
    2 n^2 s_{l+1} (Gram of the back-propagated output derivatives) + 2 m^2 s_l (Gram of the
    layer inputs), n = m d_y."""
    n = m * d_y
    return float(
        sum(
            2.0 * n * n * s_out + 2.0 * m * m * s_in
            for s_in, s_out in zip(layer_sizes[:-1], layer_sizes[1:], strict=False)
        )
    )


def num_params(layer_sizes: list[int]) -> int:
    return sum(
        s_in * s_out + s_out for s_in, s_out in zip(layer_sizes[:-1], layer_sizes[1:], strict=False)
    )


def rel_max_error(got: np.ndarray, ref: np.ndarray, chunk_rows: int = 2048) -> float:
    """max |got - ref| / max |ref|, row chunk by row chunk (no full-size temporary)."""
    if got.shape != ref.shape:
        raise ValueError(f"shape {got.shape} != reference {ref.shape}")
    max_diff = max_ref = 0.0
    for r0 in range(0, ref.shape[0], chunk_rows):
        g, r = np.asarray(got[r0 : r0 + chunk_rows]), ref[r0 : r0 + chunk_rows]
        max_diff = max(max_diff, float(np.max(np.abs(g - r))))
        max_ref = max(max_ref, float(np.max(np.abs(r))))
    return max_diff / max_ref if max_ref > 0 else max_diff


def fmt_s(t: float | None) -> str:
    if t is None:
        return "—"
    return f"{t:.3g}" if t < 100 else f"{t:.0f}"


# ------------------------------------------------------------------------------ subprocess runner


def run_worker(
    cmd: list[str], cfg: dict, cap_s: float, setup_cap_s: float, workdir: Path
) -> dict[str, dict]:
    """Run the jobs cfg["kinds"] in ``cmd + [config path]`` subprocesses, one process for all of
    them unless one has to be stopped (time cap, memory limit): then a fresh process takes the rest.

    Worker protocol, one JSON object per stdout line after a tag: ``BEGIN {"kind"}`` starts a job,
    ``PHASE {"phase": "run"}`` starts a timed run (the cap applies to each such run; before the
    first one, ``setup_cap_s`` bounds imports and compilation), ``RESULT {"kind", ...}`` or
    ``ERROR {"kind", "error"}`` ends it."""
    results: dict[str, dict] = {}
    todo = list(cfg["kinds"])
    while todo:
        results.update(_run_process(cmd, {**cfg, "kinds": todo}, cap_s, setup_cap_s, workdir))
        todo = [k for k in todo if k not in results]
    return results


def _run_process(
    cmd: list[str], cfg: dict, cap_s: float, setup_cap_s: float, workdir: Path
) -> dict[str, dict]:
    """One worker process; returns the results of the recipes it finished or had to stop."""
    cfg_path, err_path = workdir / "worker.json", workdir / "worker.stderr"
    cfg_path.write_text(json.dumps(cfg))
    mem_limit = available_bytes() - MEM_MARGIN
    with open(err_path, "w") as err:
        proc = subprocess.Popen(
            [*cmd, str(cfg_path)], stdout=subprocess.PIPE, stderr=err, text=True
        )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    results: dict[str, dict] = {}
    kind, phases, begin, run_start, peak_rss = None, [], time.perf_counter(), None, 0
    while True:
        while not lines.empty():
            tag, _, body = lines.get().partition(" ")
            fields = json.loads(body) if tag in ("BEGIN", "PHASE", "RESULT", "ERROR") else {}
            if tag == "BEGIN":
                kind, phases, begin, run_start, peak_rss = (
                    fields["kind"],
                    [],
                    time.perf_counter(),
                    None,
                    0,
                )
            elif tag == "PHASE":
                phases.append(fields)
                if fields["phase"] == "run":
                    run_start = time.perf_counter()
            elif tag in ("RESULT", "ERROR"):
                results[fields.pop("kind")] = {
                    "status": "ok" if tag == "RESULT" else "error",
                    **fields,
                    "observed_peak_rss_GB": peak_rss / GB,
                    "phases": phases,
                }
        if proc.poll() is not None and lines.empty():
            break
        rss = vm_rss_bytes(proc.pid)
        peak_rss = max(peak_rss, rss)
        now, stop = time.perf_counter(), None
        if rss > mem_limit:
            stop = f"stopped: resident memory reached {rss / GB:.1f} GB (limit {mem_limit / GB:.1f} GB)"
        elif run_start is not None and now - run_start > cap_s:
            stop = f"> {cap_s:.0f} s (one run stopped at the cap)"
        elif run_start is None and now - begin > setup_cap_s:
            stop = f"stopped: setup (imports, compilation) took > {setup_cap_s:.0f} s"
        if stop:
            proc.kill()  # the subprocess started above
            proc.wait()
            key = kind or cfg["kinds"][0]
            results[key] = {
                "status": "stopped",
                "error": stop,
                "observed_peak_rss_GB": peak_rss / GB,
                "phases": phases,
            }
            break
        time.sleep(0.05)
    if not results:  # died before reporting anything
        results[kind or cfg["kinds"][0]] = {
            "status": "error",
            "error": f"exit code {proc.returncode}, no result",
            "stderr_tail": err_path.read_text()[-2000:],
        }
    return results


# ------------------------------------------------------------------------------ quiet-machine options


def add_quiet_args(p) -> None:
    """--max-load, --quiet-timeout, --max-reruns (bench/_quiet.py)."""
    p.add_argument(
        "--max-load", type=float, default=MAX_LOAD, help="quiet: 1-min load (less ours) below this"
    )
    p.add_argument(
        "--quiet-timeout",
        type=float,
        default=None,
        help="seconds to wait for a quiet machine before proceeding with a warning (default 900, quick 10)",
    )
    p.add_argument(
        "--max-reruns",
        type=int,
        default=None,
        help="reruns of contended timings (default 3, quick 1)",
    )


def quiet_start(args) -> dict[str, Any]:
    """Wait for a quiet machine as the options say; the record goes into the JSON."""
    if args.max_reruns is None:
        args.max_reruns = 1 if getattr(args, "quick", False) else 3
    timeout = args.quiet_timeout
    if timeout is None:
        timeout = 10.0 if getattr(args, "quick", False) else 900.0
    return wait_for_quiet(args.max_load, timeout_s=timeout, poll_s=min(5.0, max(timeout, 1.0)))
