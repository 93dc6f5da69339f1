"""The report pages: JSON, one-page HTML and Markdown with SVG charts (see gradbasis.report)."""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..verdict import fmt, jsonable
from .svg import Chart, Series, interval_chart

__all__ = ["write_report", "versions"]

_VERDICT_COLORS = {
    "holds": "#2ca02c",
    "consistent": "#1f77b4",
    "does not apply": "#7f7f7f",
    "violated": "#d62728",
}
_SPECTRUM_POINTS = 600  # a longer spectrum is drawn from this many evenly spaced indices


def versions() -> dict[str, str]:
    """Versions of Python, gradbasis and the numerical libraries in use."""
    out = {"python": platform.python_version(), "gradbasis": __version__, "numpy": np.__version__}
    for name in ("scipy", "torch", "sklearn"):
        module = sys.modules.get(name)
        if module is not None:
            out[name] = str(getattr(module, "__version__", "?"))
    return out


def write_report(
    directory: str | os.PathLike,
    theorem1: Any,
    *,
    point: Any = None,
    setting: Mapping[str, object] | None = None,
    seconds: Mapping[str, float] | None = None,
    payload: Mapping[str, object] | None = None,
) -> dict[str, Path]:
    """Write the report of a :class:`~gradbasis.Theorem1Result` into ``directory`` (created if
    needed); returns the paths written by kind. ``point`` is the :class:`~gradbasis.PointClass`
    of theta (its Hessian extremes), ``setting`` rows describing data, model and training,
    ``seconds`` timings of the steps before Theorem 1, ``payload`` the JSON to write (default:
    the results and versions)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    setting = dict(setting or {})
    seconds = {**dict(seconds or {}), **{f"theorem1 {k}": v for k, v in theorem1.seconds.items()}}
    if payload is None:
        payload = {
            "theorem1": theorem1.to_dict(),
            "point": point.to_dict() if point is not None else None,
            "setting": setting,
            "seconds": seconds,
        }
    payload = {**dict(payload), "versions": versions()}
    charts = {
        "interval": interval_chart(
            theorem1.loss_value, theorem1.lower, theorem1.value, theorem1.tol
        ),
        "profile": _profile_chart(theorem1),
        "spectrum": _spectrum_chart(theorem1),
    }
    sections = _sections(theorem1, point, setting, seconds)
    written = {
        "json": out / "report.json",
        "html": out / "report.html",
        "markdown": out / "report.md",
    }
    _atomic(written["json"], json.dumps(jsonable(payload), indent=2) + "\n")
    for name, svg in charts.items():
        written[name] = out / f"{name}.svg"
        _atomic(written[name], svg)
    _atomic(written["html"], _html(theorem1, sections, charts))
    _atomic(written["markdown"], _markdown(theorem1, sections))
    return written


# ----------------------------------------------------------------------------- content
def _sections(
    thm: Any, point: Any, setting: dict, seconds: Mapping[str, float]
) -> list[tuple[str, list[tuple[str, object]]]]:
    certificate = [
        ("L(theta)", thm.loss_value),
        ("induced infimum >=", thm.lower),
        ("induced infimum <=", thm.value),
        ("gap L - lower", thm.gap),
        ("tolerance", thm.tol),
        ("over", thm.scope),
        ("rank of J", f"{thm.rank} of {thm.num_outputs} x {thm.num_params}"),
        ("relative rank cut", thm.rank_tol),
        ("largest one-parameter gain (relative)", thm.relative_gradient),
        ("||grad L||", thm.gradient_norm),
        ("first-order bound", thm.first_order_bound),
        ("kink margin", "unknown (nan)" if np.isnan(thm.kink_margin) else thm.kink_margin),
        ("strategy (judged by)", f"{thm.strategy} ({thm.judged_by})"),
        ("solve converged", thm.converged),
    ]
    profile = [
        (f"cut {p.cut:.1e}", f"rank {p.rank}: value {fmt(p.value)}, lower {fmt(p.lower)}")
        for p in thm.profile
    ]
    out = [("Certificate", certificate), ("Profile over the singular-value cut", profile)]
    if point is not None:
        out.append(
            (
                "The point",
                [
                    ("kind", str(point.kind)),
                    ("smallest Hessian eigenvalue", point.min_eigenvalue),
                    ("largest Hessian eigenvalue", point.max_eigenvalue),
                    ("eigenvalues by", point.eigen_method),
                    ("differentiable", point.differentiable),
                    ("critical", point.critical),
                ],
            )
        )
    if setting:
        out.append(("Setting", list(setting.items())))
    out.append(("Timings (s)", [(k, round(float(v), 4)) for k, v in seconds.items()]))
    out.append(("Versions", list(versions().items())))
    return out


def _profile_chart(thm: Any) -> str:
    cuts = [p.cut for p in thm.profile]
    chart = Chart(
        "Induced infimum over the singular-value cut",
        "relative cut (directions with sigma <= cut * sigma_max left out)",
        "infimum",
        series=[
            Series("value (upper end)", cuts, [p.value for p in thm.profile]),
            Series("lower (certified)", cuts, [p.lower for p in thm.profile], dashed=True),
        ],
        hlines=[(thm.loss_value, "L(theta)")],
        vlines=[(thm.rank_tol, "verdict's cut")],
        logx=True,
    )
    return chart.render()


def _spectrum_chart(thm: Any) -> str:
    sigma = np.asarray(getattr(thm.induced, "singular_values", np.empty(0)), dtype=float)
    if sigma.size == 0:
        chart = Chart(
            f"Spectrum of J: not computed by the {thm.judged_by} strategy",
            "index",
            "singular value",
        )
        return chart.render()
    idx = np.unique(np.linspace(0, sigma.size - 1, min(sigma.size, _SPECTRUM_POINTS)).astype(int))
    cut = thm.rank_tol * float(sigma[0])
    chart = Chart(
        "Singular values of J with the rank cut",
        "index",
        "singular value",
        series=[
            Series("sigma_j", (idx + 1).tolist(), sigma[idx].tolist(), markers=sigma.size <= 80)
        ],
        hlines=[(cut, f"cut {thm.rank_tol:.2g} sigma_max")],
        vlines=[(thm.rank + 0.5, f"rank {thm.rank}")] if 0 < thm.rank < sigma.size else [],
        logy=True,
    )
    return chart.render()


# ----------------------------------------------------------------------------- pages
_CSS = """body{font-family:sans-serif;max-width:980px;margin:24px auto;padding:0 12px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px}td{padding:3px 10px;border-bottom:1px solid #eee;vertical-align:top}
td:first-child{color:#555;white-space:nowrap}.verdict{display:inline-block;padding:4px 12px;border-radius:4px;color:#fff;font-weight:bold}
.reason{margin:10px 0 18px}.charts svg{margin:6px 8px 6px 0}"""


def _html(thm: Any, sections: list, charts: dict[str, str]) -> str:
    verdict = str(thm.verdict)
    color = _VERDICT_COLORS.get(verdict, "#444")
    rows = []
    for title, items in sections:
        body = "".join(f"<tr><td>{escape(k)}</td><td>{escape(fmt(v))}</td></tr>" for k, v in items)
        rows.append(f"<h2>{escape(title)}</h2><table>{body}</table>")
    svgs = "".join(charts[k] for k in ("interval", "profile", "spectrum"))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>gradbasis report: {escape(verdict)}</title><style>{_CSS}</style></head><body>\n"
        "<h1>Theorem 1 at theta: is L(theta) the global minimum of the gradient basis model?</h1>\n"
        f'<span class="verdict" style="background:{color}">{escape(verdict)}</span>\n'
        f'<p class="reason">{escape(thm.reason)}</p>\n'
        f'<div class="charts">{svgs}</div>\n' + "\n".join(rows) + "\n</body></html>\n"
    )


def _markdown(thm: Any, sections: list) -> str:
    lines = [
        "# Theorem 1 at theta: is L(theta) the global minimum of the gradient basis model?",
        "",
        f"**Verdict: {thm.verdict}** -- {thm.reason}",
        "",
        "![L(theta) against the certified interval](interval.svg)",
        "",
        "![Induced infimum over the singular-value cut](profile.svg)",
        "",
        "![Singular values of J with the rank cut](spectrum.svg)",
    ]
    for title, items in sections:
        lines += ["", f"## {title}", "", "| | |", "|---|---|"]
        lines += [f"| {k} | {fmt(v).replace('|', '/')} |" for k, v in items]
    return "\n".join(lines) + "\n"


def _atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
