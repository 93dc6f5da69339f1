"""The spectrum of J: the singular values of the Jacobian at one point, relative to the largest,
with the rank cut and the gradient's resolution that decide which directions are judged."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._validation import as_samples, as_theta
from ..errors import InvalidOptionError
from ..models.base import Model
from ..solve.induced import default_rank_tol
from ._figure import FORMATS, FigureFiles, check_formats, check_output, new_figure, save

_SPECTRUM_FLOOR = 1e-18  # relative singular values below this (exact zeros) are drawn on the floor


def spectrum_figure(
    model: Model,
    theta: object,
    X: object,
    output: str | Path,
    *,
    rank_tol: float | None = None,
    resolution: float | None = None,
    description: str = "",
    name: str = "spectrum",
    formats: Sequence[str] = FORMATS,
) -> FigureFiles:
    """Singular values of J = model.jacobian(theta, X) (``np.linalg.svd``), relative to the
    largest, on a log scale, with the rank cut ``rank_tol`` (relative; default
    max(m d_y, d_theta) * machine eps, as :func:`induced_minimum`) and, when given, the absolute
    ``resolution`` below which :func:`theorem1` does not judge directions
    (``Theorem1Result.resolution``). Values below 1e-18 (exact zeros) are drawn at 1e-18."""
    theta = as_theta(theta, model.num_params)
    X = as_samples(X, model.input_dim)
    formats = check_formats(formats)
    check_output(output)
    J = model.jacobian(theta, X)
    s = np.linalg.svd(J, compute_uv=False)
    rank_tol = default_rank_tol(J.shape) if rank_tol is None else float(rank_tol)
    if not 0.0 <= rank_tol < 1.0:
        raise InvalidOptionError(f"rank_tol must be a relative cut in [0, 1); got {rank_tol!r}")
    if resolution is not None and not (
        math.isfinite(float(resolution)) and float(resolution) >= 0.0
    ):
        raise InvalidOptionError(f"resolution must be a finite value >= 0; got {resolution!r}")
    fig = new_figure((7.5, 4.8))
    ax = fig.add_subplot()
    smax = float(s[0]) if s.size and s[0] > 0 else 1.0
    rel = np.maximum(s / smax, _SPECTRUM_FLOOR)
    idx = np.arange(1, s.size + 1)
    in_span = s > rank_tol * smax if s.size and s[0] > 0 else np.zeros(s.size, bool)
    judged = in_span & (s >= float(resolution)) if resolution is not None else in_span
    below = in_span & ~judged
    groups = [  # (which, colour, filled, label)
        (
            judged,
            "tab:blue",
            True,
            f"in the span (rank {int(in_span.sum())})"
            if resolution is None
            else f"in the span and resolved by the gradient ({int(judged.sum())})",
        ),
        (below, "tab:orange", True, f"in the span, below the resolution ({int(below.sum())})"),
        (~in_span, "tab:gray", False, f"below the rank cut ({int((~in_span).sum())})"),
    ]
    for mask, color, filled, label in groups:
        if mask.any():
            ax.semilogy(
                idx[mask],
                rel[mask],
                "o",
                color=color,
                ms=5,
                mfc=color if filled else "none",
                label=label,
            )
    ax.axhline(
        max(rank_tol, _SPECTRUM_FLOOR),
        color="tab:red",
        ls="--",
        lw=1,
        label=f"rank cut {rank_tol:.1e}",
    )
    if resolution is not None:
        ax.axhline(
            max(float(resolution) / smax, _SPECTRUM_FLOOR),
            color="tab:orange",
            ls=":",
            lw=1.5,
            label=rf"gradient resolution $\sigma$ = {float(resolution):.1e}",
        )
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(r"index $i$")
    ax.set_ylabel(r"$\sigma_i / \sigma_{\max}$" + f"   ($\\sigma_{{\\max}}$ = {smax:.3g})")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    head = "\n".join(textwrap.wrap(description or repr(model), 90))
    ax.set_title(f"{head}\nsingular values of J ({J.shape[0]} x {J.shape[1]})", fontsize=9)
    return save(fig, output, name, formats)
