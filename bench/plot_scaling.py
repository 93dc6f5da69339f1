"""The scaling figure: time and peak-memory increment against m and against the width, one
line per series, log-log, with each series' fitted time exponent in the legend.

Reads the JSON that bench/scaling.py writes (default bench/results/scaling.json) and writes
PNG and SVG (default docs/figures/scaling.png / .svg). Needs matplotlib (``pip install
".[plot]"``).

Usage::

    python bench/plot_scaling.py [RESULTS.json] [--output docs/figures/scaling]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LABELS = {
    "gram": "model.gram (K only)",
    "dense": "dense",
    "gram_strategy": "gram (pivoted Cholesky)",
    "matrix_free": "matrix_free",
}
AXIS_TITLE = {"m": "samples m (MLP 32-512-1)", "width": "width w (MLP 32-w-1, m = 1024)"}


def plot(data: dict, output: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_names = [a for a in ("m", "width") if any(s["axis"] == a for s in data["series"])]
    fig, grid = plt.subplots(
        2, len(axes_names), figsize=(5.2 * len(axes_names), 7.5), squeeze=False
    )
    for col, axis in enumerate(axes_names):
        for s in (s for s in data["series"] if s["axis"] == axis):
            ok = [p for p in s["points"] if p["status"] == "ok"]
            if not ok:
                continue
            x = [p[axis] for p in ok]
            k = s.get("time_exponent")
            label = LABELS[s["series"]] + ("" if k is None else f" (time ~ {axis}^{k:.2f})")
            grid[0][col].loglog(x, [p["best_s"] for p in ok], "o-", label=label)
            mem = [(p[axis], p["peak_increment_GB"]) for p in ok if p["peak_increment_GB"] >= 0.01]
            if mem:
                grid[1][col].loglog(*zip(*mem, strict=False), "o-", label=LABELS[s["series"]])
        grid[0][col].set_title(AXIS_TITLE[axis], fontsize=10)
        grid[0][col].set_ylabel("seconds (2 threads)")
        grid[1][col].set_ylabel("peak memory increment, GB")
        grid[1][col].set_xlabel(axis)
        for ax in (grid[0][col], grid[1][col]):
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    env = data.get("environment", {})
    fig.suptitle(
        f"gradbasis scaling, squared loss, float64 ({env.get('cpu_count', '?')} CPUs)", fontsize=11
    )
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for ext in ("png", "svg"):
        path = output.with_suffix("." + ext)
        fig.savefig(path, dpi=110, metadata={"Date": None} if ext == "svg" else None)
        written.append(path)
    plt.close(fig)
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results", nargs="?", type=Path, default=HERE / "results" / "scaling.json")
    p.add_argument("--output", type=Path, default=HERE.parent / "docs" / "figures" / "scaling")
    args = p.parse_args(argv)
    for path in plot(json.loads(args.results.read_text()), args.output):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
