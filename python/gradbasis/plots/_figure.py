"""Figures: the geometric view of the paper's Figures 1-4, the spectrum of J, and sweep figures.

Every function computes what it draws (nothing is drawn by hand), writes one file per format
(PNG and SVG by default) into a directory and returns a :class:`FigureFiles`. matplotlib is an
optional dependency (``pip install "gradbasis[plot]"``); it is imported only when a figure is
drawn, and figures are rendered on their own Agg canvas, so the caller's pyplot backend and
state are left alone.

Sweep figures read a list of records (dicts, one per trained network). The fields they use,
all optional, are::

    {"width": 4, "depth": 1, "seed": 0,             # the cell: hidden width, hidden layers, seed
     "loss_value": 0.031,                          # L(theta)
     "num_params": 17, "num_outputs": 20,          # d_theta and m * d_y (reference lines)
     "theorem1": {"lower": ..., "value": ..., "gap": ..., "tol": ..., "verdict": "holds"},
     "theorem2": {"dim_T": 12, "dim_T_tilde": 14},
     "bounds": {"linear model on x": 0.08, ...},   # name -> value, or name -> {"value": ...}
     "error": "..."}                               # a failed cell: skipped

Numbers may be JSON strings "inf" / "nan" (as :func:`gradbasis.verdict.jsonable` writes
them). A record that lacks a field a figure needs is left out of that figure, and the
returned :class:`FigureFiles` says which records were left out and why.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._validation import as_float_array, as_samples, as_theta, check_finite
from ..errors import InvalidOptionError, ShapeError, SweepRecordError
from ..models.base import Model
from ..models.mlp import MLP
from ..objective import Objective
from ..optimize import minimize
from ..solve.induced import default_rank_tol, induced_minimum
from ..sweep import parse_records
from ..theory.perturbation import PerturbationSet
from ..theory.theorem2 import theorem2

__all__ = [
    "FORMATS",
    "FigureFiles",
    "GeometryView",
    "SweepRecordError",
    "bounds_figure",
    "dimensions_figure",
    "figure1_toy",
    "figure3_toy",
    "gap_figure",
    "geometry_figure",
    "geometry_generic",
    "geometry_perturbable",
    "geometry_view",
    "load_records",
    "require_matplotlib",
    "spectrum_figure",
    "sweep_figures",
]

#: The file formats every figure is written in unless told otherwise.
FORMATS = ("png", "svg")

_INSTALL_HINT = 'drawing figures needs matplotlib: pip install "gradbasis[plot]" (or pip install "matplotlib>=3.7")'
_VERDICT_MARKERS = {"holds": "o", "consistent": "s", "does not apply": "X", "violated": "^"}
_DPI = 150  # PNG resolution
_GAP_FLOOR = 1e-18  # |gap| at or below this (exact zeros included) is drawn on the floor
_SPECTRUM_FLOOR = 1e-18  # relative singular values below this (exact zeros) are drawn on the floor


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


# ----------------------------------------------------------------------------- matplotlib
def require_matplotlib():
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


def _new_figure(figsize: tuple[float, float]):
    Figure, FigureCanvasAgg = require_matplotlib()
    fig = Figure(
        figsize=figsize, dpi=_DPI
    )  # measured and saved at one dpi: text layouts are reused
    FigureCanvasAgg(fig)  # the figure draws on Agg whatever pyplot's backend is
    return fig


def _check_formats(formats: Sequence[str]) -> tuple[str, ...]:
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


def _check_output(output: str | Path) -> None:
    """Fail before any work when the output directory cannot be one."""
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise InvalidOptionError(f"output must be a directory; {str(out)!r} is a file")


def _save(
    fig, output: str | Path, name: str, formats: Sequence[str], skipped: Iterable[str] = ()
) -> FigureFiles:
    """Write ``fig`` as <output>/<name>.<format> for every format. SVG output is made
    reproducible (fixed element ids, no date) so regenerated figures diff cleanly."""
    import matplotlib

    _check_output(output)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    # The tight bounding box (nothing clipped, no wasted margin) is measured once for all formats.
    bbox = fig.get_tightbbox(fig.canvas.get_renderer()).padded(0.15)
    with matplotlib.rc_context({"svg.hashsalt": "gradbasis"}):
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            metadata = {"Date": None} if fmt == "svg" else None
            fig.savefig(path, format=fmt, dpi=_DPI, bbox_inches=bbox, metadata=metadata)
            paths.append(path)
    return FigureFiles(name, tuple(paths), tuple(skipped))


# ----------------------------------------------------------------------------- geometry
def figure1_toy() -> tuple[Objective, np.ndarray]:
    """f(x; w1, w2) = w2 tanh(w1 x) on x = (0.5, 1, 2), squared loss, trained to a critical
    point (||grad L|| <= 1e-12) from (0.8, 0.8): the situation of the paper's Figures 1-2, where
    T is a plane and the projection of y onto T is f_X(theta)."""
    model = MLP([1, 1, 1], "tanh", bias=False)
    X = np.array([[0.5], [1.0], [2.0]])
    y = np.array([[0.2], [0.9], [0.6]])
    obj = Objective(model, "squared", X, y)
    fit = minimize(obj, np.array([0.8, 0.8]), method="lbfgs+newton", gtol=1e-12)
    return obj, fit.theta


def figure3_toy() -> tuple[Objective, np.ndarray]:
    """The same model at w2 = 0 with y orthogonal to tanh(w1 x) (w1 = 0.7): a critical point
    where T is a line, while moving w1 (free because w2 = 0) turns the tangent line, so the
    perturbable space T~ is all of R^3 (the paper's Figures 3-4)."""
    model = MLP([1, 1, 1], "tanh", bias=False)
    X = np.array([[0.5], [1.0], [2.0]])
    w1 = 0.7
    t = np.tanh(w1 * X[:, 0])
    y = np.array([1.0, 0.3, 0.0])
    y -= t * (t @ y) / (t @ t)
    return Objective(model, "squared", X, y[:, None]), np.array([w1, 0.0])


def _orthonormal(B: np.ndarray, dim: int) -> np.ndarray:
    """The first ``dim`` left singular vectors of B: an orthonormal basis of its judged span."""
    return np.linalg.svd(B, full_matrices=False)[0][:, :dim] if dim else np.zeros((B.shape[0], 0))


@dataclass(frozen=True)
class GeometryView:
    """What the geometric view draws, all computed at one point of a d_theta = 2, m d_y = 3 model.

    ``fx`` = f_X(theta); ``tangent`` (3 x dim T) and ``perturbable`` (3 x dim T~) are orthonormal
    bases of T = span J(theta) and of the perturbable space T~; ``proj_T`` and ``proj_T_tilde``
    are the best outputs of the two induced models (the projections of y, squared loss with
    weights 1/3); ``surface`` (grid, grid, 3) is f_X over the parameter grid ``w1`` x ``w2``;
    ``theorem2`` is the check behind the numbers in the title.
    """

    fx: np.ndarray
    y: np.ndarray
    tangent: np.ndarray
    perturbable: np.ndarray
    proj_T: np.ndarray
    proj_T_tilde: np.ndarray
    w1: np.ndarray
    w2: np.ndarray
    surface: np.ndarray
    theorem2: object


def geometry_view(
    model: Model,
    theta: object,
    X: object,
    y: object,
    *,
    S: PerturbationSet | None = None,
    theta_ranges: Sequence[tuple[float, float]] | None = None,
    grid: int = 31,
) -> GeometryView:
    """Compute the quantities of the geometric view (see :func:`geometry_figure`)."""
    theta = as_theta(theta, model.num_params)
    X = as_samples(X, model.input_dim)
    if model.num_params != 2 or X.shape[0] * model.output_dim != 3:
        raise ShapeError(
            "the geometric view needs d_theta = 2 and m * d_y = 3 (f_X(theta) in R^3); got "
            f"d_theta = {model.num_params}, m * d_y = {X.shape[0]} * {model.output_dim}"
        )
    Y = as_float_array(y, "y").reshape(-1)
    if Y.size != 3:
        raise ShapeError(f"y must hold m * d_y = 3 targets; got {Y.size}")
    check_finite(Y, "y")
    Y = Y.reshape(X.shape[0], model.output_dim)
    ranges = _theta_ranges(theta, theta_ranges)
    if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 2:
        raise InvalidOptionError(f"grid must be an integer >= 2; got {grid!r}")

    r = theorem2(Objective(model, "squared", X, Y), theta, S=S)
    pb = r.basis
    w1, w2 = np.meshgrid(
        np.linspace(*ranges[0], grid), np.linspace(*ranges[1], grid), indexing="ij"
    )
    # One forward pass per grid point: the toy is tiny.
    surface = np.array(
        [
            model.forward(np.array([a, b]), X).ravel()
            for a, b in zip(w1.ravel(), w2.ravel(), strict=False)
        ]
    )
    return GeometryView(
        fx=model.forward(theta, X).ravel(),
        y=Y.ravel(),
        tangent=_orthonormal(pb.jacobian_basis, pb.dim_T),
        perturbable=_orthonormal(pb.basis, pb.dim_T_tilde),
        proj_T=induced_minimum(
            pb.jacobian_basis, "squared", Y, rank_tol=pb.rank_tol
        ).fitted.ravel(),
        proj_T_tilde=induced_minimum(pb.basis, "squared", Y, rank_tol=pb.rank_tol).fitted.ravel(),
        w1=w1,
        w2=w2,
        surface=surface.reshape(grid, grid, 3),
        theorem2=r,
    )


def _camera(
    tangent: np.ndarray, residual: np.ndarray
) -> tuple[tuple[float, float, float], np.ndarray, np.ndarray]:
    """((elevation, azimuth, roll), screen-up, screen-right) of a camera that shows T and the
    residual y - proj_T(y) (normal to T) undistorted, the residual pointing up on the screen.

    For a plane T the camera sits 30 degrees above the plane on the side of y (the plane is seen
    foreshortened to sin 30 = 50 %, the residual keeps cos 30 = 87 % of its length); for a line
    it looks along the normal of the plane through T and the residual, tilted 20 degrees."""
    r = float(np.linalg.norm(residual))
    if tangent.shape[1] == 2:
        n = residual / r if r > 0 else np.cross(tangent[:, 0], tangent[:, 1])
        h = np.cross(n, [0.0, 0.0, 1.0])
        h = h / np.linalg.norm(h) if np.linalg.norm(h) > 1e-8 else tangent[:, 0]
        d = np.cos(np.radians(30)) * h + np.sin(np.radians(30)) * n
    elif tangent.shape[1] == 1:
        t = tangent[:, 0]
        n = (
            residual / r
            if r > 0
            else np.cross(t, [0.0, 0.0, 1.0] if abs(t[2]) < 0.9 else [1.0, 0.0, 0.0])
        )
        n = n - (n @ t) * t
        n /= np.linalg.norm(n)
        d = np.cos(np.radians(20)) * np.cross(t, n) + np.sin(np.radians(20)) * n
    else:
        return (22.0, -58.0, 0.0), np.array([0.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0])
    d /= np.linalg.norm(d)
    # Screen axes of the unrolled camera: up is z projected onto the screen, right = up x d; the
    # roll that turns n's projection to straight up is its angle from up (sign checked by
    # projecting with the rendered axes' matrix).
    z = np.array([0.0, 0.0, 1.0]) if abs(d[2]) < 0.999 else np.array([0.0, 1.0, 0.0])
    up = z - (z @ d) * d
    up /= np.linalg.norm(up)
    roll = np.degrees(np.arctan2(n @ np.cross(up, d), n @ up))
    elev = np.degrees(np.arcsin(np.clip(d[2], -1.0, 1.0)))
    return (float(elev), float(np.degrees(np.arctan2(d[1], d[0]))), float(roll)), n, np.cross(n, d)


def _theta_ranges(theta: np.ndarray, theta_ranges) -> list[tuple[float, float]]:
    if theta_ranges is None:
        return [(t - max(1.0, abs(t)), t + max(1.0, abs(t))) for t in theta]
    try:
        ranges = [(float(lo), float(hi)) for lo, hi in theta_ranges]
    except (TypeError, ValueError) as exc:
        raise InvalidOptionError(
            f"theta_ranges must be two (low, high) pairs; got {theta_ranges!r}"
        ) from exc
    if len(ranges) != 2 or not all(
        math.isfinite(lo) and math.isfinite(hi) and lo < hi for lo, hi in ranges
    ):
        raise InvalidOptionError(
            f"theta_ranges must be two finite (low, high) pairs with low < high; got {theta_ranges!r}"
        )
    return ranges


def geometry_figure(
    model: Model,
    theta: object,
    X: object,
    y: object,
    output: str | Path,
    *,
    S: PerturbationSet | None = None,
    theta_ranges: Sequence[tuple[float, float]] | None = None,
    description: str = "",
    name: str = "geometry",
    formats: Sequence[str] = FORMATS,
    grid: int = 31,
) -> FigureFiles:
    """The geometric view of Theorems 1-2 for a model with two parameters on three outputs
    (m d_y = 3, squared loss with weights 1/3), as in the paper's Figures 1-4.

    Drawn from computed quantities (:func:`geometry_view`): the image surface {f_X(w) : w in
    ``theta_ranges``} (default theta_k +- max(1, |theta_k|), a ``grid`` x ``grid`` mesh, cut to
    the drawn box), f_X(theta), the tangent space T = span J(theta) (a plane or a line through
    f_X(theta); f_X(theta) = J g(theta) lies in the span, so the affine and the linear space
    coincide), the perturbable space T~ from :func:`gradbasis.theorem2` (directions ``S``,
    default :func:`perturbation_directions`; drawn as a plane, or as its orthonormal basis when
    it is all of R^3), the target y and its projections onto T and T~ (the ``fitted`` outputs
    of :func:`induced_minimum`, the best models of the two induced problems). Spans are judged
    at theorem2's relative singular-value cut (max(m d_y, d_theta) * machine eps by default).
    The camera looks so that y - proj_T(y) points up. The title gives dim T, dim T~, L(theta)
    and the two infima; ``description`` is a first title line.
    """
    formats = _check_formats(formats)
    _check_output(output)
    v = geometry_view(model, theta, X, y, S=S, theta_ranges=theta_ranges, grid=grid)
    theta = as_theta(theta, model.num_params)
    r = v.theorem2
    fig = _new_figure((10.5, 7.2))
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    key = np.vstack([v.fx, v.y, v.proj_T, v.proj_T_tilde])
    half = 0.6 * max(
        float(np.ptp(key, axis=0).max()), 0.3
    )  # half-size of the drawn planes and lines
    centre = 0.5 * (key.min(axis=0) + key.max(axis=0))
    # Equal scales on the three axes: the smallest cube holding the points and the surface near
    # them (3-D axes do not clip, so grid cells farther than 3.1 * half from the points are left out).
    surf = v.surface
    inside = (np.abs(surf - centre) <= 3.1 * half).all(axis=-1)
    shown = np.vstack([key, surf[inside]])
    lo, hi = shown.min(axis=0), shown.max(axis=0)
    centre = 0.5 * (lo + hi)
    radius = max(0.52 * float((hi - lo).max()), 1.25 * half)
    half = max(half, 0.5 * radius)
    (elev, azim, roll), up, right = _camera(v.tangent, v.y - v.proj_T)

    ax = fig.add_axes((0.0, 0.0, 0.64, 0.86), projection="3d")
    # The surface as the grid's cells, those with all four corners inside the cube.
    cells = [
        [surf[i, j], surf[i + 1, j], surf[i + 1, j + 1], surf[i, j + 1]]
        for i in range(surf.shape[0] - 1)
        for j in range(surf.shape[1] - 1)
        if inside[i, j] and inside[i + 1, j] and inside[i + 1, j + 1] and inside[i, j + 1]
    ]
    ax.add_collection3d(
        Poly3DCollection(cells, facecolor="0.55", alpha=0.25, edgecolor="0.4", linewidths=0.25)
    )
    handles = [
        Patch(
            facecolor="0.55", alpha=0.4, edgecolor="0.45", label=r"image surface $\{f_X(\theta')\}$"
        )
    ]

    def label_at(point, text, color, dx=0.06, dy=0.06):
        ax.text(
            *(point + radius * (dx * right + dy * up)), text, color=color, fontsize=12, zorder=10
        )

    def draw_span(U, color, text, alpha):
        if U.shape[1] >= 2:
            a, b = half * U[:, 0], half * U[:, 1]
            quad = [v.fx + a + b, v.fx + a - b, v.fx - a - b, v.fx - a + b]
            ax.add_collection3d(
                Poly3DCollection([quad], facecolor=color, alpha=alpha, edgecolor=color)
            )
            corner = max(quad, key=lambda q: q @ right)
            label_at(corner, text, color, dx=0.02, dy=0.0)
            return Patch(facecolor=color, alpha=min(1.0, alpha + 0.2), edgecolor=color)
        end = v.fx + 1.25 * half * U[:, 0] * (1 if U[:, 0] @ right >= 0 else -1)
        ax.plot(*np.vstack([2 * v.fx - end, end]).T, color=color, lw=3)
        label_at(end, text, color, dx=0.02, dy=0.03)
        return Line2D([], [], color=color, lw=3)

    h = draw_span(v.tangent, "tab:blue", "$T$", 0.35)
    h.set_label(rf"tangent space $T$ = span $J(\theta)$, dim {r.dim_T}")
    handles.append(h)
    if r.dim_T_tilde > r.dim_T and r.dim_T_tilde == 3:
        # T~ is all of R^3: draw its computed orthonormal basis, turned to point up and right on screen.
        arrows = [u if u @ (up + 0.5 * right) >= 0 else -u for u in v.perturbable.T]
        for u in arrows:
            ax.quiver(*v.fx, *(0.8 * half * u), color="tab:orange", lw=2, arrow_length_ratio=0.12)
        label_at(v.fx + 0.8 * half * arrows[0], r"$\tilde T$", "tab:orange", dx=0.02, dy=0.02)
        handles.append(
            Line2D(
                [],
                [],
                color="tab:orange",
                lw=2,
                label=r"perturbable space $\tilde T = \mathbb{R}^3$ (its basis, dim 3)",
            )
        )
    elif r.dim_T_tilde > r.dim_T:
        h = draw_span(v.perturbable, "tab:orange", r"$\tilde T$", 0.2)
        h.set_label(rf"perturbable space $\tilde T$, dim {r.dim_T_tilde}")
        handles.append(h)
    else:
        handles.append(
            Patch(
                facecolor="none",
                edgecolor="none",
                label=r"perturbable space $\tilde T = T$ "
                + (
                    f"({r.num_directions} directions add nothing)"
                    if r.num_directions
                    else "(no direction in $V[\\theta, \\epsilon]$)"
                ),
            )
        )

    ax.plot(*np.vstack([v.y, v.proj_T]).T, color="tab:green", ls="--", lw=1.5)
    ax.scatter(*v.proj_T, color="tab:green", s=45, marker="D", depthshade=False, zorder=5)
    ax.scatter(*v.fx, color="black", s=30, depthshade=False, zorder=6)
    ax.scatter(*v.y, color="tab:red", s=90, marker="*", depthshade=False, zorder=6)
    at_fx = np.linalg.norm(v.proj_T - v.fx) <= 1e-6 * max(1.0, float(np.linalg.norm(v.y)))
    handles += [
        Line2D([], [], color="black", marker="o", ls="", label=r"$f_X(\theta)$"),
        Line2D([], [], color="tab:red", marker="*", ms=11, ls="", label="target $y$"),
        Line2D(
            [],
            [],
            color="tab:green",
            marker="D",
            ls="--",
            label=r"projection of $y$ onto $T$"
            + (r" (here $f_X(\theta)$ itself)" if at_fx else ""),
        ),
    ]
    if np.linalg.norm(v.proj_T_tilde - v.proj_T) > 1e-6 * max(1.0, float(np.linalg.norm(v.y))):
        ax.scatter(
            *v.proj_T_tilde,
            s=110,
            marker="o",
            facecolors="none",
            edgecolors="tab:orange",
            linewidths=2,
            depthshade=False,
            zorder=7,
        )
        at_y = np.allclose(v.proj_T_tilde, v.y)
        handles.append(
            Line2D(
                [],
                [],
                color="tab:orange",
                marker="o",
                mfc="none",
                mew=2,
                ls="",
                label=r"projection of $y$ onto $\tilde T$" + (" (here $y$ itself)" if at_y else ""),
            )
        )
    label_at(v.fx, r"$f_X(\theta)$", "black", dx=-0.2, dy=-0.12)
    label_at(v.y, "$y$", "tab:red", dx=0.05, dy=0.03)

    for setter, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), centre, strict=False):
        setter(c - radius, c + radius)
    ax.set_box_aspect((1, 1, 1), zoom=0.95)
    ax.locator_params(nbins=4)
    ax.tick_params(labelsize=8, pad=1)
    xs = np.asarray(X, dtype=float).reshape(-1)
    names = (
        [f"$f(x_{i + 1})$, $x_{i + 1}$ = {xs[i]:g}" for i in range(3)]
        if model.output_dim == 1 and xs.size == 3
        else [f"output {k + 1}" for k in range(3)]
    )
    ax.set_xlabel(names[0], fontsize=9, labelpad=2)
    ax.set_ylabel(names[1], fontsize=9, labelpad=2)
    ax.set_zlabel(names[2], fontsize=9, labelpad=2)
    ax.view_init(elev, azim, roll)
    numbers = (
        rf"dim $T$ = {r.dim_T}, dim $\tilde T$ = {r.dim_T_tilde};   $L(\theta)$ = {r.loss_value:.4g},   "
        rf"inf over $T$ = {r.gradient_basis_value:.4g},   inf over $\tilde T$ = {r.value:.3g}"
    )
    point = (
        rf"$\theta$ = ({theta[0]:.4g}, {theta[1]:.4g}),  $\|\nabla L(\theta)\|$ = {r.gradient_norm:.1e},  "
        f"Theorem 2: {r.verdict}"
    )
    fig.suptitle("\n".join(s for s in (description, point, numbers) if s), fontsize=11, y=0.99)
    fig.legend(
        handles=handles, loc="center left", bbox_to_anchor=(0.64, 0.48), fontsize=9.5, frameon=False
    )
    return _save(fig, output, name, formats)


def geometry_generic(output: str | Path, *, formats: Sequence[str] = FORMATS) -> FigureFiles:
    """``geometry-generic``: Figures 1-2 on :func:`figure1_toy` (T is a plane, T~ = T)."""
    obj, theta = figure1_toy()
    return geometry_figure(
        obj.model,
        theta,
        obj.X,
        obj.Y,
        output,
        theta_ranges=[(0.8, 2.2), (0.55, 0.95)],
        name="geometry-generic",
        formats=formats,
        description=(
            r"$f(x; w_1, w_2) = w_2 \tanh(w_1 x)$ at a critical point: "
            r"$f_X(\theta)$ is the projection of $y$ onto $T$"
        ),
    )


def geometry_perturbable(output: str | Path, *, formats: Sequence[str] = FORMATS) -> FigureFiles:
    """``geometry-perturbable``: Figures 3-4 on :func:`figure3_toy` (T a line, T~ = R^3)."""
    obj, theta = figure3_toy()
    return geometry_figure(
        obj.model,
        theta,
        obj.X,
        obj.Y,
        output,
        theta_ranges=[(0.1, 1.8), (-0.45, 0.45)],
        name="geometry-perturbable",
        formats=formats,
        description=(
            r"$f = w_2 \tanh(w_1 x)$ at $w_2 = 0$, $y \perp \tanh(w_1 x)$: "
            r"critical, but moving $w_1$ turns $T$"
        ),
    )


# ----------------------------------------------------------------------------- spectrum
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
    formats = _check_formats(formats)
    _check_output(output)
    J = model.jacobian(theta, X)
    s = np.linalg.svd(J, compute_uv=False)
    rank_tol = default_rank_tol(J.shape) if rank_tol is None else float(rank_tol)
    if not 0.0 <= rank_tol < 1.0:
        raise InvalidOptionError(f"rank_tol must be a relative cut in [0, 1); got {rank_tol!r}")
    if resolution is not None and not (
        math.isfinite(float(resolution)) and float(resolution) >= 0.0
    ):
        raise InvalidOptionError(f"resolution must be a finite value >= 0; got {resolution!r}")
    fig = _new_figure((7.5, 4.8))
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
    import textwrap

    head = "\n".join(textwrap.wrap(description or repr(model), 90))
    ax.set_title(f"{head}\nsingular values of J ({J.shape[0]} x {J.shape[1]})", fontsize=9)
    return _save(fig, output, name, formats)


# ----------------------------------------------------------------------------- sweep records
def load_records(path: str | Path) -> list[dict]:
    """Read a JSON Lines file of sweep records (one object per line; blank lines ignored).

    Raises :class:`ResultsFileError` (a :class:`SweepRecordError`) naming the first line that
    is not a JSON object, and :class:`SweepRecordError` for a missing file or one without
    records."""
    path = Path(path)
    if not path.is_file():
        raise SweepRecordError(f"records file {str(path)!r} does not exist")
    records = parse_records(path.read_bytes(), path, sweep_keys=False)
    if not records:
        raise SweepRecordError(f"{path} holds no records")
    return records


def _check_records(records: object) -> list[Mapping]:
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
        raise SweepRecordError(f"records must be a list of dicts; got {type(records).__name__}")
    records = list(records)
    if not records:
        raise SweepRecordError("records is empty: nothing to draw")
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise SweepRecordError(f"record {i} must be a dict; got {type(rec).__name__}")
    return records


def _label(i: int, rec: Mapping) -> str:
    cell = ", ".join(f"{k}={rec[k]}" for k in ("width", "depth", "seed") if k in rec)
    return f"record {i}" + (f" ({cell})" if cell else "")


def _field(rec: Mapping, dotted: str):
    """rec["a"]["b"] for "a.b", or KeyError naming the part that is missing."""
    value: object = rec
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(dotted)
        value = value[part]
    return value


def _number(rec: Mapping, dotted: str) -> float:
    """A numeric field (JSON strings "inf"/"nan" accepted); KeyError/ValueError say why not."""
    value = _field(rec, dotted)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{dotted} is not a number ({value!r})")
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{dotted} is not a number ({value!r})") from None


def _rows(
    records: list[Mapping], fields: Sequence[str], figure: str
) -> tuple[list[tuple[Mapping, list[float]]], list[str]]:
    """(record, values of ``fields``) for every usable record, and why the others were left out."""
    rows, skipped = [], []
    for i, rec in enumerate(records):
        if rec.get("error"):
            skipped.append(f"{_label(i, rec)}: a failed cell ({str(rec['error'])[:80]})")
            continue
        try:
            values = [_number(rec, f) for f in fields]
        except KeyError as exc:
            skipped.append(f"{_label(i, rec)}: no {exc.args[0]}")
            continue
        except ValueError as exc:
            skipped.append(f"{_label(i, rec)}: {exc}")
            continue
        bad = [f"{f} = {v}" for f, v in zip(fields, values, strict=False) if not math.isfinite(v)]
        if bad:
            skipped.append(f"{_label(i, rec)}: not finite ({', '.join(bad)})")
            continue
        rows.append((rec, values))
    if not rows:
        reasons = "; ".join(skipped[:3]) + (" ..." if len(skipped) > 3 else "")
        raise SweepRecordError(
            f"no record holds {', '.join(fields)} for the {figure} figure ({reasons})"
        )
    return rows, skipped


def _group_key(rec: Mapping, by: str | None):
    """rec[by] as a hashable group label (None when absent; other unhashable values as text)."""
    value = rec.get(by) if by else None
    return value if value is None or isinstance(value, (int, float, str)) else str(value)


def _groups(rows, by: str | None) -> dict:
    out: dict = {}
    for rec, values in rows:
        out.setdefault(_group_key(rec, by), []).append((rec, values))
    return dict(sorted(out.items(), key=lambda kv: _sort_key(kv[0])))


def _median_line(ax, xs: np.ndarray, ys: np.ndarray, **kwargs) -> None:
    """A line through the per-x median (seeds scatter around it)."""
    ux = np.unique(xs)
    ax.plot(ux, [np.median(ys[xs == u]) for u in ux], **kwargs)


def _cell_axis(ax, xs: np.ndarray, x: str) -> None:
    ax.set_xlabel({"width": "hidden width", "depth": "hidden layers (depth)"}.get(x, x))
    if np.allclose(xs, np.round(xs)):
        ax.set_xticks(np.unique(xs))


def _seeds_note(rows) -> str:
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
    records = _check_records(records)
    formats = _check_formats(formats)
    _check_output(output)
    rows, skipped = _rows(records, [x, "theorem1.gap"], f"gap vs {x}")
    by = "depth" if x == "width" else "width"
    if len({_group_key(rec, by) for rec, _ in rows}) < 2:
        by = None
    fig = _new_figure((7.5, 4.8))
    ax = fig.add_subplot()
    colors = iter(_palette())
    verdicts_seen = set()
    for key, grp in _groups(rows, by).items():
        color = next(colors)
        xs = np.array([v[0] for _, v in grp])
        gaps = np.array([v[1] for _, v in grp])
        shown = np.maximum(np.abs(gaps), _GAP_FLOOR)
        for (rec, _), xv, g, sv in zip(grp, xs, gaps, shown, strict=False):
            verdict = str(_field_or(rec, "theorem1.verdict", ""))
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
        t for t in (_number_or(rec, "theorem1.tol") for rec, _ in rows) if t is not None and t > 0
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
    return _save(fig, output, name or f"gap-vs-{x}", formats, skipped)


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
    records = _check_records(records)
    formats = _check_formats(formats)
    _check_output(output)
    rows, skipped = _rows(
        records, ["width", "theorem2.dim_T", "theorem2.dim_T_tilde"], "dimensions"
    )
    depths = _depths(rec for rec, _ in rows)
    fig = _new_figure((5.2 * len(depths) + 2.3, 4.8))
    axes = fig.subplots(1, len(depths), squeeze=False, sharey=True)[0]
    for ax, depth in zip(axes, depths, strict=False):
        grp = [(rec, v) for rec, v in rows if _group_key(rec, "depth") == depth]
        xs = np.array([v[0] for _, v in grp])
        jitter = 0.08
        for j, (field, label, color, marker, ls) in enumerate(
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
            ys = np.array([v[field] for _, v in grp])
            ax.scatter(
                xs + (j - 0.5) * jitter, ys, color=color, marker=marker, s=30, zorder=3, alpha=0.8
            )
            _median_line(ax, xs, ys, color=color, lw=1.8, ls=ls, label=label)
        for field, label, color in (
            ("num_outputs", r"$m\,d_y$ (outputs)", "0.2"),
            ("num_params", r"$d_\theta$ (parameters)", "tab:gray"),
        ):
            pts = [(v[0], _number_or(rec, field)) for rec, v in grp]
            pts = sorted({p for p in pts if p[1] is not None})
            if pts:
                ax.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    ls="--" if field == "num_outputs" else ":",
                    color=color,
                    lw=1.2,
                    label=label,
                )
        _cell_axis(ax, xs, "width")
        ax.grid(True, alpha=0.3)
        ax.set_title(f"depth {depth}" if depth is not None else _seeds_note(grp), fontsize=10)
    axes[0].set_ylabel("dimension")
    outputs = [_number_or(rec, "num_outputs") for rec, _ in rows]
    if any(o is not None for o in outputs):
        top = max(o for o in outputs if o is not None)
        axes[0].set_ylim(0, 1.25 * top)
    axes[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle(r"Tangent space $T$ and perturbable space $\tilde T$ against width", fontsize=11)
    return _save(fig, output, name, formats, skipped)


def _bound_value(value: object) -> float:
    if isinstance(value, Mapping):
        if "value" not in value:
            raise KeyError("value")
        value = value["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"not a number ({value!r})")
    return float(value)


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
    records = _check_records(records)
    formats = _check_formats(formats)
    _check_output(output)
    rows, skipped = _rows(records, ["width", "loss_value"], "bounds")
    index = {id(rec): i for i, rec in enumerate(records)}
    points = []  # (record, width, L, {bound name: value})
    for rec, (w, L) in rows:
        bounds = rec.get("bounds")
        if not isinstance(bounds, Mapping) or not bounds:
            skipped.append(f"{_label(index[id(rec)], rec)}: no bounds")
            continue
        values = {}
        for bname, bvalue in bounds.items():
            try:
                values[str(bname)] = _bound_value(bvalue)
            except (KeyError, ValueError) as exc:
                skipped.append(f"{_label(index[id(rec)], rec)}: bound {bname!r} {exc}")
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
            names, _palette()[1:] * 4, ("s", "^", "v", "D", "P", "X", "<", ">") * 4, strict=False
        )
    }
    finite = [v for _, _, L, values in points for v in (L, *values.values()) if math.isfinite(v)]
    log = bool(finite) and min(finite) > 0 and max(finite) / min(finite) > 1e3
    depths = _depths([rec for rec, *_ in points])
    fig = _new_figure((4.6 * len(depths) + 3.2, 4.8))
    axes = fig.subplots(1, len(depths), squeeze=False, sharey=True)[0]
    for ax, depth in zip(axes, depths, strict=False):
        grp = [p for p in points if _group_key(p[0], "depth") == depth]
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
    return _save(fig, output, name, formats, skipped)


def _depths(records: Iterable[Mapping]) -> list:
    """The distinct ``depth`` values, sorted (None, for records without one, last)."""
    return sorted({_group_key(rec, "depth") for rec in records}, key=_sort_key)


def _sort_key(value: object) -> tuple:
    """Numbers in order, then other values by their text, then None (mixed types never compare)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (value is None, not number, value if number else 0, str(value))


def sweep_figures(
    records: Sequence[Mapping], output: str | Path, *, formats: Sequence[str] = FORMATS
) -> list[FigureFiles]:
    """Every sweep figure the records allow: gap vs width, gap vs depth (when several depths
    occur), dimensions vs width and bounds vs width. A figure no record can feed is returned
    with no paths and the reason in ``skipped``; if none can be drawn, SweepRecordError."""
    records = _check_records(records)
    formats = _check_formats(formats)
    _check_output(output)
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


# ----------------------------------------------------------------------------- helpers
def _palette() -> list[str]:
    return [
        "tab:blue",
        "tab:orange",
        "tab:green",
        "tab:purple",
        "tab:brown",
        "tab:pink",
        "tab:olive",
        "tab:cyan",
    ]


def _field_or(rec: Mapping, dotted: str, default):
    try:
        return _field(rec, dotted)
    except KeyError:
        return default


def _number_or(rec: Mapping, dotted: str) -> float | None:
    try:
        return _number(rec, dotted)
    except (KeyError, ValueError):
        return None
