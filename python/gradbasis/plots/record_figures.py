"""The sweep figures: Theorem 1's gap, dim T and dim T~, and L(theta) against the bounds, drawn
over the cells (width, depth) of a sweep from its records (see :mod:`.records`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidOptionError, SweepRecordError
from ._figure import FORMATS, PALETTE, FigureFiles, check_formats, check_output, new_figure, save
from .records import (
    Rows,
    bound_value,
    check_records,
    distinct_depths,
    field_or,
    group_key,
    grouped_rows,
    number_or,
    record_label,
    usable_rows,
)

if TYPE_CHECKING:  # for annotations only: importing this module must not import matplotlib
    from matplotlib.axes import Axes

_VERDICT_MARKERS = {"holds": "o", "consistent": "s", "does not apply": "X", "violated": "^"}
_GAP_FLOOR = 1e-18  # |gap| at or below this (exact zeros included) is drawn on the floor


def _median_line(ax: Axes, xs: np.ndarray, ys: np.ndarray, **kwargs: Any) -> None:
    """A line through the per-x median (seeds scatter around it)."""
    ux = np.unique(xs)
    ax.plot(ux, [np.median(ys[xs == u]) for u in ux], **kwargs)


def _cell_axis(ax: Axes, xs: np.ndarray, x: str) -> None:
    """Name the x axis after the cell field ``x``; integer cells get one tick each."""
    ax.set_xlabel({"width": "hidden width", "depth": "hidden layers (depth)"}.get(x, x))
    if np.allclose(xs, np.round(xs)):
        ax.set_xticks(np.unique(xs))


def _seeds_note(rows: Rows) -> str:
    """How many networks the rows hold, and how many seeds per cell when several."""
    seeds = {rec.get("seed") for rec, _ in rows}
    return f"{len(rows)} networks" + (f", {len(seeds)} seeds per cell" if len(seeds) > 1 else "")


def gap_figure(
    records: Sequence[Mapping],
    output: str | Path,
    *,
    x: str = "width",
    name: str | None = None,
    formats: Sequence[str] = FORMATS,
) -> FigureFiles:
    """Theorem 1's gap L(theta) - lower against ``x`` ("width" or "depth"), one colour per
    value of the other, the marker shape by verdict. Uses ``x``, ``theorem1.gap`` and, when
    present, ``theorem1.verdict`` and ``theorem1.tol`` (drawn as the median tolerance). The
    y axis is |gap| on a log scale; negative gaps (L below the certified lower bound, by
    rounding) are drawn hollow and |gap| <= 1e-18 at 1e-18."""
    if x not in ("width", "depth"):
        raise InvalidOptionError(f"x must be 'width' or 'depth'; got {x!r}")
    records = check_records(records)
    formats = check_formats(formats)
    check_output(output)
    rows, skipped = usable_rows(records, [x, "theorem1.gap"], f"gap vs {x}")
    by: str | None = "depth" if x == "width" else "width"
    if len({group_key(rec, by) for rec, _ in rows}) < 2:
        by = None
    fig = new_figure((7.5, 4.8))
    ax = fig.add_subplot()
    colors = iter(PALETTE)
    verdicts_seen = set()
    for key, grp in grouped_rows(rows, by).items():
        color = next(colors)
        xs = np.array([v[0] for _, v in grp])
        gaps = np.array([v[1] for _, v in grp])
        shown = np.maximum(np.abs(gaps), _GAP_FLOOR)
        for (rec, _), xv, g, sv in zip(grp, xs, gaps, shown, strict=False):
            verdict = str(field_or(rec, "theorem1.verdict", ""))
            verdicts_seen.add(verdict)
            ax.scatter(
                xv,
                sv,
                marker=_VERDICT_MARKERS.get(verdict, "o"),
                s=36,
                zorder=3,
                facecolors=color if g > 0 else "none",
                edgecolors=color,
            )
        _median_line(
            ax,
            xs,
            shown,
            color=color,
            lw=1,
            alpha=0.7,
            label=f"{by} = {key}" if by else "median over seeds",
        )
    tols = [
        t for t in (number_or(rec, "theorem1.tol") for rec, _ in rows) if t is not None and t > 0
    ]
    if tols:
        tol = float(np.median(tols))
        ax.axhline(tol, color="tab:red", ls="--", lw=1, label=f"verdict tolerance ({tol:.1e})")
    from matplotlib.lines import Line2D

    handles, _ = ax.get_legend_handles_labels()
    handles += [
        Line2D(
            [], [], marker=_VERDICT_MARKERS.get(v, "o"), ls="", color="0.3", label=v or "no verdict"
        )
        for v in sorted(verdicts_seen)
    ]
    handles.append(
        Line2D([], [], marker="o", ls="", mfc="none", color="0.3", label="gap < 0 (hollow)")
    )
    handles.append(
        Line2D([], [], ls="", label=f"|gap| <= {_GAP_FLOOR:.0e} drawn at {_GAP_FLOOR:.0e}")
    )
    ax.legend(
        handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False
    )
    ax.set_yscale("log")
    ax.set_ylabel(r"$|L(\theta) - $ lower bound on inf over $T|$")
    _cell_axis(ax, np.array([v[0] for _, v in rows]), x)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"Theorem 1 gap against {x} ({_seeds_note(rows)})", fontsize=10)
    return save(fig, output, name or f"gap-vs-{x}", formats, skipped)


def dimensions_figure(
    records: Sequence[Mapping],
    output: str | Path,
    *,
    name: str = "dimensions-vs-width",
    formats: Sequence[str] = FORMATS,
) -> FigureFiles:
    """dim T and dim T~ (``theorem2.dim_T``, ``theorem2.dim_T_tilde``) against ``width``, with
    ``num_outputs`` (m d_y, the most either can be) and ``num_params`` as reference lines when
    the records hold them. Records with several depths get one panel per depth."""
    records = check_records(records)
    formats = check_formats(formats)
    check_output(output)
    rows, skipped = usable_rows(
        records, ["width", "theorem2.dim_T", "theorem2.dim_T_tilde"], "dimensions"
    )
    depths = distinct_depths(rec for rec, _ in rows)
    fig = new_figure((5.2 * len(depths) + 2.3, 4.8))
    axes = fig.subplots(1, len(depths), squeeze=False, sharey=True)[0]
    for ax, depth in zip(axes, depths, strict=False):
        grp = [(rec, v) for rec, v in rows if group_key(rec, "depth") == depth]
        xs = np.array([v[0] for _, v in grp])
        jitter = 0.08
        for j, (column, label, color, marker, ls) in enumerate(
            (
                (1, r"dim $T$ = rank $J(\theta)$", "tab:blue", "o", "-"),
                (
                    2,
                    r"dim $\tilde T$ (perturbable)",
                    "tab:orange",
                    "s",
                    "--",
                ),  # dashed: visible on top of T
            )
        ):
            ys = np.array([v[column] for _, v in grp])
            ax.scatter(
                xs + (j - 0.5) * jitter, ys, color=color, marker=marker, s=30, zorder=3, alpha=0.8
            )
            _median_line(ax, xs, ys, color=color, lw=1.8, ls=ls, label=label)
        for reference, label, color in (
            ("num_outputs", r"$m\,d_y$ (outputs)", "0.2"),
            ("num_params", r"$d_\theta$ (parameters)", "tab:gray"),
        ):
            pts = [(v[0], number_or(rec, reference)) for rec, v in grp]
            pts = sorted({p for p in pts if p[1] is not None})
            if pts:
                ax.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    ls="--" if reference == "num_outputs" else ":",
                    color=color,
                    lw=1.2,
                    label=label,
                )
        _cell_axis(ax, xs, "width")
        ax.grid(True, alpha=0.3)
        ax.set_title(f"depth {depth}" if depth is not None else _seeds_note(grp), fontsize=10)
    axes[0].set_ylabel("dimension")
    outputs = [number_or(rec, "num_outputs") for rec, _ in rows]
    if any(o is not None for o in outputs):
        top = max(o for o in outputs if o is not None)
        axes[0].set_ylim(0, 1.25 * top)
    axes[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle(r"Tangent space $T$ and perturbable space $\tilde T$ against width", fontsize=11)
    return save(fig, output, name, formats, skipped)


def bounds_figure(
    records: Sequence[Mapping],
    output: str | Path,
    *,
    name: str = "bounds-vs-width",
    formats: Sequence[str] = FORMATS,
) -> FigureFiles:
    """L(theta) (``loss_value``) against each bound in ``bounds`` (name -> value, or
    name -> {"value": ...}) over ``width``: every network a point, a line through the median
    over seeds. Bounds missing from a record, or not numbers, are left out of that record and
    named in ``skipped``. The y axis is logarithmic when every value is positive and they span
    more than three decades."""
    records = check_records(records)
    formats = check_formats(formats)
    check_output(output)
    rows, skipped = usable_rows(records, ["width", "loss_value"], "bounds")
    index = {id(rec): i for i, rec in enumerate(records)}
    points = []  # (record, width, L, {bound name: value})
    for rec, (w, L) in rows:
        bounds = rec.get("bounds")
        if not isinstance(bounds, Mapping) or not bounds:
            skipped.append(f"{record_label(index[id(rec)], rec)}: no bounds")
            continue
        values = {}
        for bname, bvalue in bounds.items():
            try:
                values[str(bname)] = bound_value(bvalue)
            except (KeyError, ValueError) as exc:
                skipped.append(f"{record_label(index[id(rec)], rec)}: bound {bname!r} {exc}")
        if values:
            points.append((rec, w, L, values))
    if not points:
        raise SweepRecordError(
            "no record holds bounds (a dict name -> value) for the bounds figure"
        )
    names = list(dict.fromkeys(b for *_, values in points for b in values))
    style = {
        b: (c, m)
        for b, c, m in zip(
            names, PALETTE[1:] * 4, ("s", "^", "v", "D", "P", "X", "<", ">") * 4, strict=False
        )
    }
    finite = [v for _, _, L, values in points for v in (L, *values.values()) if math.isfinite(v)]
    log = bool(finite) and min(finite) > 0 and max(finite) / min(finite) > 1e3
    depths = distinct_depths([rec for rec, *_ in points])
    fig = new_figure((4.6 * len(depths) + 3.2, 4.8))
    axes = fig.subplots(1, len(depths), squeeze=False, sharey=True)[0]
    for ax, depth in zip(axes, depths, strict=False):
        grp = [p for p in points if group_key(p[0], "depth") == depth]
        for b in names:
            pts = [(w, values[b]) for _, w, _, values in grp if b in values]
            if not pts:
                continue
            xs, ys = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
            color, marker = style[b]
            ax.scatter(xs, ys, color=color, marker=marker, s=26, alpha=0.75, zorder=3)
            _median_line(ax, xs, ys, color=color, lw=1.3, marker=marker, label=b)
        xs = np.array([w for _, w, _, _ in grp])
        Ls = np.array([L for _, _, L, _ in grp])
        ax.scatter(xs, Ls, color="black", s=18, zorder=4)
        _median_line(ax, xs, Ls, color="black", lw=2.0, label=r"$L(\theta)$", zorder=4)
        if log:
            ax.set_yscale("log")
        _cell_axis(ax, xs, "width")
        ax.grid(True, alpha=0.3)
        ax.set_title(f"depth {depth}" if depth is not None else "", fontsize=10)
    axes[0].set_ylabel("training loss")
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:  # bounds that only some depths have
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=False):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    axes[-1].legend(
        handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False
    )
    fig.suptitle(
        rf"$L(\theta)$ against each bound ({_seeds_note(rows)}; lines: median over seeds)",
        fontsize=11,
    )
    return save(fig, output, name, formats, skipped)


def sweep_figures(
    records: Sequence[Mapping], output: str | Path, *, formats: Sequence[str] = FORMATS
) -> list[FigureFiles]:
    """Every sweep figure the records allow: gap vs width, gap vs depth (when several depths
    occur), dimensions vs width and bounds vs width. A figure no record can feed is returned
    with no paths and the reason in ``skipped``; if none can be drawn, SweepRecordError."""
    records = check_records(records)
    formats = check_formats(formats)
    check_output(output)
    jobs = [("gap-vs-width", lambda: gap_figure(records, output, x="width", formats=formats))]
    if len({r.get("depth") for r in records if isinstance(r.get("depth"), (int, float))}) > 1:
        jobs.append(
            ("gap-vs-depth", lambda: gap_figure(records, output, x="depth", formats=formats))
        )
    jobs += [
        ("dimensions-vs-width", lambda: dimensions_figure(records, output, formats=formats)),
        ("bounds-vs-width", lambda: bounds_figure(records, output, formats=formats)),
    ]
    results = []
    for fname, job in jobs:
        try:
            results.append(job())
        except SweepRecordError as exc:
            results.append(FigureFiles(fname, (), (str(exc),)))
    if not any(r.paths for r in results):
        raise SweepRecordError(
            "no sweep figure could be drawn: " + "; ".join(r.skipped[0] for r in results)
        )
    return results
