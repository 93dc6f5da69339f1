"""The geometric view of Theorems 1-2 (the paper's Figures 1-4): a model with two parameters on
three outputs, its image surface, the tangent space T, the perturbable space T~, the target y
and its projections onto both, drawn in R^3 from computed quantities."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from .._validation import as_float_array, as_samples, as_theta, check_finite
from ..errors import InvalidOptionError, ShapeError
from ..models.base import Model
from ..models.mlp import MLP
from ..objective import Objective
from ..optimize import minimize
from ..solve.induced import induced_minimum
from ..theory.perturbation import PerturbationSet
from ..theory.theorem2 import Theorem2Result, theorem2
from ._figure import FORMATS, FigureFiles, check_formats, check_output, new_figure, save
from ._viewpoint import DrawnBox, camera, drawn_box

if TYPE_CHECKING:  # for annotations only: importing this module must not import matplotlib
    from matplotlib.artist import Artist
    from mpl_toolkits.mplot3d import Axes3D


# ----------------------------------------------------------------------------- the two toys
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


# ----------------------------------------------------------------------------- what is drawn
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
    theorem2: Theorem2Result


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
    checked = as_theta(theta, model.num_params)
    samples, Y, ranges = _check_view_inputs(model, checked, X, y, theta_ranges, grid)
    return _compute_view(model, checked, samples, Y, S, ranges, grid)


def _check_view_inputs(
    model: Model,
    theta: np.ndarray,
    X: object,
    y: object,
    theta_ranges: Sequence[tuple[float, float]] | None,
    grid: int,
) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float]]]:
    """(X, Y as m x d_y, the two parameter ranges) checked for the view of a checked ``theta``."""
    samples = as_samples(X, model.input_dim)
    if model.num_params != 2 or samples.shape[0] * model.output_dim != 3:
        raise ShapeError(
            "the geometric view needs d_theta = 2 and m * d_y = 3 (f_X(theta) in R^3); got "
            f"d_theta = {model.num_params}, m * d_y = {samples.shape[0]} * {model.output_dim}"
        )
    targets = as_float_array(y, "y").reshape(-1)
    if targets.size != 3:
        raise ShapeError(f"y must hold m * d_y = 3 targets; got {targets.size}")
    check_finite(targets, "y")
    ranges = _theta_ranges(theta, theta_ranges)
    if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 2:
        raise InvalidOptionError(f"grid must be an integer >= 2; got {grid!r}")
    return samples, targets.reshape(samples.shape[0], model.output_dim), ranges


def _theta_ranges(
    theta: np.ndarray, theta_ranges: Sequence[tuple[float, float]] | None
) -> list[tuple[float, float]]:
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


def _compute_view(
    model: Model,
    theta: np.ndarray,
    X: np.ndarray,
    Y: np.ndarray,
    S: PerturbationSet | None,
    ranges: list[tuple[float, float]],
    grid: int,
) -> GeometryView:
    """The view at checked inputs (see :func:`_check_view_inputs`)."""
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
        tangent=_orthonormal_span_basis(pb.jacobian_basis, pb.dim_T),
        perturbable=_orthonormal_span_basis(pb.basis, pb.dim_T_tilde),
        proj_T=induced_minimum(
            pb.jacobian_basis, "squared", Y, rank_tol=pb.rank_tol
        ).fitted.ravel(),
        proj_T_tilde=induced_minimum(pb.basis, "squared", Y, rank_tol=pb.rank_tol).fitted.ravel(),
        w1=w1,
        w2=w2,
        surface=surface.reshape(grid, grid, 3),
        theorem2=r,
    )


def _orthonormal_span_basis(B: np.ndarray, dim: int) -> np.ndarray:
    """An orthonormal basis (``dim`` columns) of the span of B's columns, whose dimension was
    judged to be ``dim``: B's first ``dim`` left singular vectors (none when ``dim`` is 0)."""
    return np.linalg.svd(B, full_matrices=False)[0][:, :dim] if dim else np.zeros((B.shape[0], 0))


# ----------------------------------------------------------------------------- drawing
class _Scene:
    """The 3-D axes with what drawing on them needs: the point f_X(theta) spans are drawn
    through, the drawn box, and the screen's up and right directions (for labels)."""

    def __init__(
        self, ax: Axes3D, origin: np.ndarray, box: DrawnBox, up: np.ndarray, right: np.ndarray
    ) -> None:
        self.ax, self.origin, self.box, self.up, self.right = ax, origin, box, up, right

    def label(
        self, point: np.ndarray, text: str, color: str, dx: float = 0.06, dy: float = 0.06
    ) -> None:
        """``text`` next to ``point``, offset by (dx, dy) box radii right and up on the screen."""
        offset = self.box.radius * (dx * self.right + dy * self.up)
        self.ax.text(*(point + offset), text, color=color, fontsize=12, zorder=10)

    def span(self, U: np.ndarray, color: str, text: str, alpha: float) -> Artist:
        """The span of U's orthonormal columns through the origin point: a square for two or
        more columns, a line for one; returns its legend handle."""
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch
        from mpl_toolkits.mplot3d.art3d import Poly3DCollection

        fx, half = self.origin, self.box.half
        if U.shape[1] >= 2:
            a, b = half * U[:, 0], half * U[:, 1]
            quad = [fx + a + b, fx + a - b, fx - a - b, fx - a + b]
            self.ax.add_collection3d(
                Poly3DCollection([quad], facecolor=color, alpha=alpha, edgecolor=color)
            )
            corner = max(quad, key=lambda q: q @ self.right)
            self.label(corner, text, color, dx=0.02, dy=0.0)
            return Patch(facecolor=color, alpha=min(1.0, alpha + 0.2), edgecolor=color)
        end = fx + 1.25 * half * U[:, 0] * (1 if U[:, 0] @ self.right >= 0 else -1)
        self.ax.plot(*np.vstack([2 * fx - end, end]).T, color=color, lw=3)
        self.label(end, text, color, dx=0.02, dy=0.03)
        return Line2D([], [], color=color, lw=3)


def _draw_surface(ax: Axes3D, surf: np.ndarray, inside: np.ndarray) -> Artist:
    """The image surface as the grid's cells, those with all four corners inside the box."""
    from matplotlib.patches import Patch
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    cells = [
        [surf[i, j], surf[i + 1, j], surf[i + 1, j + 1], surf[i, j + 1]]
        for i in range(surf.shape[0] - 1)
        for j in range(surf.shape[1] - 1)
        if inside[i, j] and inside[i + 1, j] and inside[i + 1, j + 1] and inside[i, j + 1]
    ]
    ax.add_collection3d(
        Poly3DCollection(cells, facecolor="0.55", alpha=0.25, edgecolor="0.4", linewidths=0.25)
    )
    return Patch(
        facecolor="0.55", alpha=0.4, edgecolor="0.45", label=r"image surface $\{f_X(\theta')\}$"
    )


def _draw_perturbable(scene: _Scene, v: GeometryView) -> Artist:
    """T~ where it is larger than T: its plane, or its basis when it is all of R^3; otherwise
    only a legend entry saying why T~ = T."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    r = v.theorem2
    if r.dim_T_tilde > r.dim_T and r.dim_T_tilde == 3:
        # T~ is all of R^3: draw its computed orthonormal basis, turned to point up and right on screen.
        half = scene.box.half
        arrows = [u if u @ (scene.up + 0.5 * scene.right) >= 0 else -u for u in v.perturbable.T]
        for u in arrows:
            scene.ax.quiver(
                *v.fx, *(0.8 * half * u), color="tab:orange", lw=2, arrow_length_ratio=0.12
            )
        scene.label(v.fx + 0.8 * half * arrows[0], r"$\tilde T$", "tab:orange", dx=0.02, dy=0.02)
        return Line2D(
            [],
            [],
            color="tab:orange",
            lw=2,
            label=r"perturbable space $\tilde T = \mathbb{R}^3$ (its basis, dim 3)",
        )
    if r.dim_T_tilde > r.dim_T:
        h = scene.span(v.perturbable, "tab:orange", r"$\tilde T$", 0.2)
        h.set_label(rf"perturbable space $\tilde T$, dim {r.dim_T_tilde}")
        return h
    return Patch(
        facecolor="none",
        edgecolor="none",
        label=r"perturbable space $\tilde T = T$ "
        + (
            f"({r.num_directions} directions add nothing)"
            if r.num_directions
            else "(no direction in $V[\\theta, \\epsilon]$)"
        ),
    )


def _draw_points(scene: _Scene, v: GeometryView) -> list[Artist]:
    """f_X(theta), y, its projection onto T (joined to y) and, where it differs, onto T~;
    returns their legend handles."""
    from matplotlib.lines import Line2D

    ax = scene.ax
    ax.plot(*np.vstack([v.y, v.proj_T]).T, color="tab:green", ls="--", lw=1.5)
    ax.scatter(*v.proj_T, color="tab:green", s=45, marker="D", depthshade=False, zorder=5)
    ax.scatter(*v.fx, color="black", s=30, depthshade=False, zorder=6)
    ax.scatter(*v.y, color="tab:red", s=90, marker="*", depthshade=False, zorder=6)
    at_fx = np.linalg.norm(v.proj_T - v.fx) <= 1e-6 * max(1.0, float(np.linalg.norm(v.y)))
    handles: list[Artist] = [
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
    scene.label(v.fx, r"$f_X(\theta)$", "black", dx=-0.2, dy=-0.12)
    scene.label(v.y, "$y$", "tab:red", dx=0.05, dy=0.03)
    return handles


def _set_axes(ax: Axes3D, box: DrawnBox, X: np.ndarray, output_dim: int) -> None:
    """The box as equal-scaled limits, sparse ticks, and axes named by the samples x_i when
    there are three scalar outputs."""
    for setter, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), box.centre, strict=False):
        setter(c - box.radius, c + box.radius)
    ax.set_box_aspect((1, 1, 1), zoom=0.95)
    ax.locator_params(nbins=4)
    ax.tick_params(labelsize=8, pad=1)
    xs = X.reshape(-1)
    names = (
        [f"$f(x_{i + 1})$, $x_{i + 1}$ = {xs[i]:g}" for i in range(3)]
        if output_dim == 1 and xs.size == 3
        else [f"output {k + 1}" for k in range(3)]
    )
    ax.set_xlabel(names[0], fontsize=9, labelpad=2)
    ax.set_ylabel(names[1], fontsize=9, labelpad=2)
    ax.set_zlabel(names[2], fontsize=9, labelpad=2)


def _title(description: str, theta: np.ndarray, r: Theorem2Result) -> str:
    """``description``, the point with its gradient norm and verdict, and Theorem 2's numbers."""
    numbers = (
        rf"dim $T$ = {r.dim_T}, dim $\tilde T$ = {r.dim_T_tilde};   $L(\theta)$ = {r.loss_value:.4g},   "
        rf"inf over $T$ = {r.gradient_basis_value:.4g},   inf over $\tilde T$ = {r.value:.3g}"
    )
    point = (
        rf"$\theta$ = ({theta[0]:.4g}, {theta[1]:.4g}),  $\|\nabla L(\theta)\|$ = {r.gradient_norm:.1e},  "
        f"Theorem 2: {r.verdict}"
    )
    return "\n".join(s for s in (description, point, numbers) if s)


# ----------------------------------------------------------------------------- figures
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
    formats = check_formats(formats)
    check_output(output)
    checked = as_theta(theta, model.num_params)
    samples, Y, ranges = _check_view_inputs(model, checked, X, y, theta_ranges, grid)
    v = _compute_view(model, checked, samples, Y, S, ranges, grid)
    r = v.theorem2
    fig = new_figure((10.5, 7.2))
    box = drawn_box(np.vstack([v.fx, v.y, v.proj_T, v.proj_T_tilde]), v.surface)
    (elev, azim, roll), up, right = camera(v.tangent, v.y - v.proj_T)

    ax = cast("Axes3D", fig.add_axes((0.0, 0.0, 0.64, 0.86), projection="3d"))
    scene = _Scene(ax, v.fx, box, up, right)
    handles = [_draw_surface(ax, v.surface, box.inside)]
    h = scene.span(v.tangent, "tab:blue", "$T$", 0.35)
    h.set_label(rf"tangent space $T$ = span $J(\theta)$, dim {r.dim_T}")
    handles.append(h)
    handles.append(_draw_perturbable(scene, v))
    handles += _draw_points(scene, v)
    _set_axes(ax, box, samples, model.output_dim)
    ax.view_init(elev, azim, roll)
    fig.suptitle(_title(description, checked, r), fontsize=11, y=0.99)
    fig.legend(
        handles=handles, loc="center left", bbox_to_anchor=(0.64, 0.48), fontsize=9.5, frameon=False
    )
    return save(fig, output, name, formats)


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
