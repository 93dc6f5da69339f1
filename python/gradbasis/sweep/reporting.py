"""Finished records read back for people: the summary table of :func:`report`, the flat rows the
sweep figures read (:func:`figure_records`) and the short names of cells both use."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .checks import CHECKS
from .config import canonical_json

__all__ = ["figure_records", "report"]


def cell_label(settings: Mapping) -> str:
    """A short name for a cell's group: data, model, hidden sizes, activation, loss."""
    return " ".join(_group_columns(settings))


def _group_columns(settings: Mapping) -> list[str]:
    hidden = "-".join(str(w) for w in settings["hidden"]) or "-"
    return [
        _data_label(settings["data"]),
        settings["model"],
        hidden,
        settings["activation"] or "-",
        settings["loss"],
    ]


def _data_label(spec: Mapping) -> str:
    if spec["name"] == "teacher" and "path" not in spec:
        text = f"teacher-{spec['m']}x{spec['d_x']}-s{spec['seed']}"
    else:
        text = str(spec["name"])
    return text + (f"[:{spec['max_samples']}]" if "max_samples" in spec else "")


def figure_records(records: Sequence[Mapping]) -> list[dict]:
    """The records in the flat form :func:`gradbasis.plots.sweep_figures` reads: ``width``,
    ``depth``, ``seed``, ``loss_value``, ``num_params``, ``num_outputs``, ``theorem1`` (that
    check's dict), ``theorem2`` (its dict, or dim_T / dim_T_tilde from Theorem 3 or 4),
    ``bounds`` (the finite ones) and, for a failed cell, ``error`` ("Type: message")."""
    flat = []
    for r in records:
        s, summary, checks = r["settings"], r["summary"], r["checks"]
        row: dict[str, Any] = {
            "key": r["key"],
            "model": s["model"],
            "width": s["width"],
            "depth": s["depth"],
            "seed": s["seed"],
            "loss_value": summary["L"],
            "num_params": summary["num_params"],
            "num_outputs": summary.get("num_outputs"),
            "bounds": {k: v for k, v in summary["bounds"].items() if v is not None},
        }
        if "theorem1" in checks:
            row["theorem1"] = checks["theorem1"]
        if "theorem2" in checks:
            row["theorem2"] = checks["theorem2"]
        elif summary["dim_T"] is not None and summary["dim_T_tilde"] is not None:
            row["theorem2"] = {"dim_T": summary["dim_T"], "dim_T_tilde": summary["dim_T_tilde"]}
        if r["status"] != "ok":
            row["error"] = f"{r['error']['type']}: {r['error']['message']}"
        flat.append({k: v for k, v in row.items() if v is not None})
    return flat


# "computed" is the spectrum's (it has no verdict): counted without a letter.
_VERDICT_CODES = {
    "holds": "h",
    "consistent": "c",
    "does not apply": "n",
    "violated": "v",
    "error": "e",
    "computed": "",
}
_POINT_CODES = {
    "local-minimum candidate": "m",
    "saddle": "s",
    "critical, curvature unknown": "u",
    "approximate critical point": "a",
    "not critical": "x",
    "non-differentiable": "k",
    "error": "e",
}


def _counts(values: Iterable[str], codes: Mapping[str, str]) -> str:
    tally: dict[str, int] = {}
    for v in values:
        code = codes.get(v, "?")
        tally[code] = tally.get(code, 0) + 1
    order = list(dict.fromkeys(codes.values())) + ["?"]
    return " ".join(f"{tally[c]}{c}" for c in order if c in tally) or "-"


def report(records: Sequence[Mapping]) -> str:
    """The summary table: one row per group of cells that differ only in their seed, with the
    number of cells and failures, each check's verdict counts, the median L(theta), the largest
    gap L - lower over Theorems 1-4 and the mean dim T / dim T~; then the failed cells."""
    if not records:
        return "no records"
    groups: dict[str, list[Mapping]] = {}
    for r in records:
        s = {k: v for k, v in r["settings"].items() if k != "seed"}
        groups.setdefault(canonical_json(s), []).append(r)
    checks = [c for c in CHECKS if any(c in r["settings"]["checks"] for r in records)]
    trains = {canonical_json(r["settings"]["train"]) for r in records}
    header = ["data", "model", "hidden", "activation", "loss"] + (
        ["train"] if len(trains) > 1 else []
    )
    header += ["cells", "failed", *checks, "median L", "max gap", "dim T", "dim T~"]
    rows = []
    for members in groups.values():
        s = members[0]["settings"]
        row = _group_columns(s)
        if len(trains) > 1:
            t = s["train"]
            row.append(f"{t['method']} {t['gtol']:g} {t['max_iter']}")
        ok = [m for m in members if m["status"] == "ok"]
        row += [str(len(members)), str(len(members) - len(ok))]
        for c in checks:
            verdicts = [
                m["summary"]["verdicts"][c] for m in members if c in m["summary"]["verdicts"]
            ]
            row.append(_counts(verdicts, _POINT_CODES if c == "classify" else _VERDICT_CODES))
        Ls = [m["summary"]["L"] for m in ok if m["summary"]["L"] is not None]
        gaps = [g for m in ok for g in m["summary"]["gaps"].values() if g is not None]
        dT = [m["summary"]["dim_T"] for m in ok if m["summary"]["dim_T"] is not None]
        dTt = [m["summary"]["dim_T_tilde"] for m in ok if m["summary"]["dim_T_tilde"] is not None]
        row += [
            f"{statistics.median(Ls):.6g}" if Ls else "-",
            f"{max(gaps):.2e}" if gaps else "-",
            f"{statistics.fmean(dT):.1f}" if dT else "-",
            f"{statistics.fmean(dTt):.1f}" if dTt else "-",
        ]
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    numeric = set(range(header.index("cells"), len(header)))

    def fmt(cells: Sequence[str]) -> str:
        padded = (
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=False))
        )
        return "  ".join(padded).rstrip()

    n_failed = sum(r["status"] != "ok" for r in records)
    lines = [f"sweep: {len(records)} cells in {len(groups)} groups, {n_failed} failed"]
    lines += [fmt(header), fmt(["-" * w for w in widths])]
    lines += [fmt(r) for r in rows]
    lines.append("verdicts: h holds, c consistent, n does not apply, v violated, e error")
    if "classify" in checks:
        lines.append(
            "classify: m local-minimum candidate, s saddle, u critical of unknown curvature, a approximate critical point, x not critical, k kink"
        )
    lines.append(
        "max gap: largest L(theta) - certified lower end over Theorems 1-4; dim T = rank J, dim T~ with perturbations"
    )
    failed = [r for r in records if r["status"] != "ok"]
    for r in failed[:10]:
        e = r["error"]
        cell = (
            f"{r['key']} ({cell_label(r['settings'])} seed {r['settings']['seed']}, {e['stage']})"
        )
        lines.append(f"failed {cell}: {e['type']}: {e['message']}")
    if len(failed) > 10:
        lines.append(f"... and {len(failed) - 10} more failed cells")
    return "\n".join(lines)
