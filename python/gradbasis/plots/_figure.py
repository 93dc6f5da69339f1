"""What every figure shares: matplotlib on demand, a new figure, the palette, and saving.

Every figure function computes what it draws (nothing is drawn by hand), writes one file per
format (PNG and SVG by default) into a directory and returns a :class:`FigureFiles`. matplotlib
is an optional dependency (``pip install "gradbasis[plot]"``); it is imported only when a figure
is drawn, and figures are rendered on their own Agg canvas, so the caller's pyplot backend and
state are left alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ..errors import InvalidOptionError

if TYPE_CHECKING:  # for annotations only: importing this module must not import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

#: The file formats every figure is written in unless told otherwise.
FORMATS = ("png", "svg")

_INSTALL_HINT = 'drawing figures needs matplotlib: pip install "gradbasis[plot]" (or pip install "matplotlib>=3.7")'
_DPI = 150  # PNG resolution

#: Colours of the series of one figure, in the order they are used.
PALETTE = (
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:olive",
    "tab:cyan",
)


@dataclass(frozen=True)
class FigureFiles:
    """The files one figure was written to, and the records left out of it (with the reason)."""

    name: str
    paths: tuple[Path, ...]
    skipped: tuple[str, ...] = ()

    def __str__(self) -> str:
        lines = [
            f"{self.name}: "
            + (", ".join(str(p) for p in self.paths) if self.paths else "not drawn")
        ]
        lines += [f"  left out: {s}" for s in self.skipped]
        return "\n".join(lines)


def require_matplotlib() -> tuple[Any, Any]:
    """(Figure class, Agg canvas class), imported on first use; ImportError naming the
    ``gradbasis[plot]`` extra when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401  (imported first so a missing package is reported as such)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from mpl_toolkits.mplot3d import Axes3D  # noqa: F401  (registers the "3d" projection)
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return Figure, FigureCanvasAgg


def new_figure(figsize: tuple[float, float]) -> Figure:
    """An empty figure of ``figsize`` inches on its own Agg canvas."""
    Figure, FigureCanvasAgg = require_matplotlib()
    fig = Figure(
        figsize=figsize, dpi=_DPI
    )  # measured and saved at one dpi: text layouts are reused
    FigureCanvasAgg(fig)  # the figure draws on Agg whatever pyplot's backend is
    return fig


def check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """``formats`` as a tuple (one format may be given as a string); InvalidOptionError unless
    it is a non-empty selection of :data:`FORMATS`."""
    if isinstance(formats, str):
        formats = (formats,)
    try:
        formats = tuple(formats)
    except TypeError:
        raise InvalidOptionError(
            f"formats must be a selection of {', '.join(FORMATS)}; got {formats!r}"
        ) from None
    bad = [f for f in formats if f not in FORMATS]
    if not formats or bad:
        raise InvalidOptionError(
            f"formats must be a non-empty selection of {', '.join(FORMATS)}; got {list(formats)}"
        )
    return formats


def check_output(output: str | Path) -> None:
    """Fail before any work when the output directory cannot be one."""
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise InvalidOptionError(f"output must be a directory; {str(out)!r} is a file")


def save(
    fig: Figure,
    output: str | Path,
    name: str,
    formats: Sequence[str],
    skipped: Iterable[str] = (),
) -> FigureFiles:
    """Write ``fig`` as <output>/<name>.<format> for every format. SVG output is made
    reproducible (fixed element ids, no date) so regenerated figures diff cleanly."""
    import matplotlib

    check_output(output)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    # The tight bounding box (nothing clipped, no wasted margin) is measured once for all formats;
    # every figure here was made by new_figure, so its canvas is Agg's.
    renderer = cast("FigureCanvasAgg", fig.canvas).get_renderer()
    bbox = fig.get_tightbbox(renderer).padded(0.15)
    with matplotlib.rc_context({"svg.hashsalt": "gradbasis"}):
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            metadata = {"Date": None} if fmt == "svg" else None
            fig.savefig(path, format=fmt, dpi=_DPI, bbox_inches=bbox, metadata=metadata)
            paths.append(path)
    return FigureFiles(name, tuple(paths), tuple(skipped))
