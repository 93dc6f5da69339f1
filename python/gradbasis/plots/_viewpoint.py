"""Where the geometric view looks from and what it shows: the drawn box (equal scales on the
three axes) and the camera that shows T and the residual y - proj_T(y) undistorted."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DrawnBox:
    """The drawn cube (``centre`` +- ``radius`` on every axis), the half-size ``half`` of the
    drawn planes and lines, and which points of the surface grid lie near the drawn points."""

    centre: np.ndarray
    radius: float
    half: float
    inside: np.ndarray


def drawn_box(points: np.ndarray, surface: np.ndarray) -> DrawnBox:
    """Equal scales on the three axes: the smallest cube holding the ``points`` (one a row) and
    the ``surface`` (grid, grid, 3) near them (3-D axes do not clip, so grid cells farther than
    3.1 * half from the points are left out)."""
    half = 0.6 * max(float(np.ptp(points, axis=0).max()), 0.3)
    centre = 0.5 * (points.min(axis=0) + points.max(axis=0))
    inside = (np.abs(surface - centre) <= 3.1 * half).all(axis=-1)
    shown = np.vstack([points, surface[inside]])
    lo, hi = shown.min(axis=0), shown.max(axis=0)
    radius = max(0.52 * float((hi - lo).max()), 1.25 * half)
    return DrawnBox(0.5 * (lo + hi), radius, max(half, 0.5 * radius), inside)


def camera(
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
