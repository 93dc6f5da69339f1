"""Figures of the paper's geometry, spectra and sweep records (needs matplotlib)."""

from ..errors import SweepRecordError
from ._figure import FORMATS, FigureFiles, require_matplotlib
from .geometry import (
    GeometryView,
    figure1_toy,
    figure3_toy,
    geometry_figure,
    geometry_generic,
    geometry_perturbable,
    geometry_view,
)
from .record_figures import bounds_figure, dimensions_figure, gap_figure, sweep_figures
from .records import load_records
from .spectrum import spectrum_figure

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
