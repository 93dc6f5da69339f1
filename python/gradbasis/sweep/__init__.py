"""Sweeps: grids of trained networks checked against the theory."""

from .runner import (
    CHECKS,
    Cell,
    ResultsFileError,
    Spectrum,
    Sweep,
    SweepConfigError,
    SweepError,
    figure_records,
    load_records,
    load_sweep,
    parse_records,
    report,
    run,
    run_cell,
    teacher_data,
)

__all__ = [
    "CHECKS",
    "Cell",
    "ResultsFileError",
    "Spectrum",
    "Sweep",
    "SweepConfigError",
    "SweepError",
    "figure_records",
    "load_records",
    "load_sweep",
    "parse_records",
    "report",
    "run",
    "run_cell",
    "teacher_data",
]
