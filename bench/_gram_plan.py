"""Planning pieces of bench/gram.py: lower bounds that decide whether an anchor is started,
and the choice of the neural-tangents interpreter (smoke-tested, every attempt recorded)."""

from __future__ import annotations

from pathlib import Path

import _common  # noqa: F401, I001  (first: pins threads)
from _common import GB, MEM_MARGIN, mlp_flops_gram, run_worker

WORKER = Path(__file__).resolve().parent / "_anchor_worker.py"


# ------------------------------------------------------------------------------ lower bounds


def lower_bounds(kind: str, case, P: int) -> tuple[float, float, str]:
    """(flops, bytes, what) that the recipe cannot do without."""
    n, m, d_y = case.n, case.m, case.d_y
    K_bytes = 8.0 * n * n
    if kind == "jc":
        return 2.0 * n * n * P, 8.0 * n * P + K_bytes, "2 n^2 P flops; J (n x P) and K"
    if kind == "ntkvp":
        return 3.0 * m * m * d_y * P, K_bytes, "3 m^2 d_y P flops; K"
    return mlp_flops_gram(case.layer_sizes, m, d_y) / 2, K_bytes, "half the structured count; K"


def skip_reason(kind: str, case, P: int, dgemm: float, cap_s: float, avail: float) -> dict | None:
    """Why not to start the recipe (a lower bound already exceeds the limits), or None."""
    flops, nbytes, what = lower_bounds(kind, case, P)
    if nbytes > avail - MEM_MARGIN:
        return {
            "short": f"skipped: needs >= {nbytes / GB:.1f} GB",
            "bound_GB": nbytes / GB,
            "error": f"skipped: needs >= {nbytes / GB:.1f} GB ({what}), {avail / GB:.1f} GB available",
        }
    t_min = flops / (dgemm * GB)
    if t_min > cap_s:
        return {
            "short": f"skipped: >= {t_min:.0f} s",
            "bound_s": t_min,
            "error": f"skipped: >= {flops:.2g} flops ({what}) = >= {t_min:.0f} s at the measured DGEMM rate, cap {cap_s:.0f} s",
        }
    return None


def pick_nt_python(candidates: list[str], workdir: Path) -> tuple[str | None, list[dict]]:
    """The first interpreter in which all three neural-tangents implementations work."""
    attempts = []
    for python in candidates:
        if not Path(python).exists():
            attempts.append({"python": python, "error": "interpreter not found"})
            continue
        res = run_worker([python, str(WORKER)], {"kinds": ["nt_smoke"]}, 120, 300, workdir)[
            "nt_smoke"
        ]
        attempts.append(res)
        if res.get("nt_sd") == "ok":
            return python, attempts
    return None, attempts


def nt_summary(python: str | None, attempts: list[dict]) -> str:
    parts = []
    for a in attempts:
        where = a.get("python", "?")
        if "import_error" in a:
            parts.append(f"{where} (JAX {a.get('jax', '?')}): import fails: {a['import_error']}")
        elif a.get("status") in ("error", "stopped") or "error" in a:
            parts.append(f"{where}: {a.get('error')}")
        else:
            bad = {k: v for k, v in a.items() if k.startswith("nt_") and v != "ok"}
            parts.append(
                f"{where} (JAX {a.get('jax')}, neural-tangents {a.get('neural_tangents')}): "
                + ("all three implementations work" if not bad else f"failing: {bad}")
            )
    used = (
        f"used {python}"
        if python
        else "not used (no interpreter where all three implementations work)"
    )
    return used + ". Tried: " + " | ".join(parts)
