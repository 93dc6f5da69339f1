"""Errors raised by gradbasis.

Every error derives from :class:`GradbasisError`; each subclass also derives from the
builtin exception it means (``ValueError``, ``TypeError``, ``MemoryError``) so callers
can catch either.
"""

from __future__ import annotations

__all__ = [
    "GradbasisError",
    "ShapeError",
    "DTypeError",
    "NonFiniteError",
    "InvalidWeightsError",
    "InvalidLabelError",
    "UnknownNameError",
    "MemoryBudgetError",
    "InvalidOptionError",
    "InvalidArgumentError",
    "UnsupportedModelError",
    "UnsupportedModuleError",
    "TorchFileError",
    "SweepRecordError",
    "DataFileError",
    "SweepConfigError",
    "ResultsFileError",
    "SweepError",
    "IndistinctSamplesError",
]


class GradbasisError(Exception):
    """Base class of every error gradbasis raises on purpose."""


class ShapeError(GradbasisError, ValueError):
    """An array has the wrong number of dimensions or the wrong size."""


class DTypeError(GradbasisError, TypeError):
    """An array's dtype cannot be converted to float64 without losing meaning."""


class NonFiniteError(GradbasisError, ValueError):
    """An array holds NaN or infinity."""


class InvalidWeightsError(GradbasisError, ValueError):
    """Sample weights are not all positive and finite."""


class InvalidLabelError(GradbasisError, ValueError):
    """Targets are not valid for the loss (e.g. not probability vectors, not +-1)."""


class UnknownNameError(GradbasisError, ValueError):
    """A name (activation, loss, option) is not one gradbasis knows."""


class MemoryBudgetError(GradbasisError, MemoryError):
    """A requested array would not fit in the memory available."""


class InvalidOptionError(GradbasisError, ValueError):
    """An option is outside its valid range (e.g. a step eps <= 0, a tolerance not in (0, 1))."""


class InvalidArgumentError(GradbasisError, TypeError):
    """An argument of the wrong kind: a model where an Objective is expected, an MLP where a
    ResNet is expected, a residual function that is not a gradbasis model."""


class UnsupportedModelError(GradbasisError, NotImplementedError):
    """The model lacks a structure the computation needs (e.g. no parameter block f is linear
    in, so Assumption 2's g(theta) is not available)."""


# Errors of one part of the package (each also importable from that part).


class UnsupportedModuleError(UnknownNameError):
    """A torch layer, layer setting or arrangement (or a gradbasis model) with no counterpart on
    the other side."""


class TorchFileError(GradbasisError, ValueError):
    """A file cannot be loaded as a torch module."""


class SweepRecordError(GradbasisError, ValueError):
    """Sweep records cannot be read or none of them holds what a figure needs."""


class DataFileError(GradbasisError, ValueError):
    """A data file cannot be read as samples and labels."""


class SweepConfigError(InvalidOptionError):
    """A sweep that cannot run: an unknown key, a bad value or an impossible combination."""


class SweepError(GradbasisError, RuntimeError):
    """The sweep itself could not go on (a worker process died, the file is in use, ...)."""


class IndistinctSamplesError(GradbasisError, ValueError):
    """Two samples cannot be told apart by the construction (equal after normalisation,
    or one does not stick out of the others along its own direction)."""


class ResultsFileError(SweepRecordError):
    """A results file holds a complete line that is not a record (so records cannot be read)."""
