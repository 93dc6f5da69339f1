"""Checks of scalar options (tolerances, counts, seeds) shared by every public entry point.

Each check returns the option as a plain Python number or raises :class:`InvalidOptionError`
naming the option, its valid range and the value given. Values in messages are shown as plain
Python numbers (``0.5``), never as NumPy reprs (``np.float64(0.5)``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import numpy as np

from .errors import InvalidOptionError

__all__ = [
    "show",
    "positive_number",
    "positive_step",
    "nonnegative_number",
    "open_unit_interval",
    "relative_cut",
    "relative_cuts",
    "positive_int",
    "nonnegative_int",
    "check_seed",
]


def show(value: object) -> str:
    """``value`` for an error message: numbers as Python prints them, anything else as its repr."""
    if isinstance(value, (bool, np.bool_)):
        return repr(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    return repr(value)


def _real(value: object, name: str, wanted: str) -> float:
    """``value`` as a float when it is a real number (not a bool), else an error saying ``wanted``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InvalidOptionError(f"{name} must be {wanted}; got {show(value)}")
    return float(value)


def positive_number(value: object, name: str) -> float:
    """A finite number > 0 (an absolute tolerance, a step)."""
    wanted = "a finite number > 0"
    x = _real(value, name, wanted)
    if not (math.isfinite(x) and x > 0.0):
        raise InvalidOptionError(f"{name} must be {wanted}; got {show(value)}")
    return x


def positive_step(value: object, name: str = "eps") -> float:
    """A finite step > 0 (eps of the perturbations)."""
    wanted = "a positive finite step"
    x = _real(value, name, wanted)
    if not (math.isfinite(x) and x > 0.0):
        raise InvalidOptionError(f"{name} must be {wanted}; got {show(value)}")
    return x


def nonnegative_number(value: object, name: str) -> float:
    """A finite number >= 0."""
    wanted = "a finite number >= 0"
    x = _real(value, name, wanted)
    if not (math.isfinite(x) and x >= 0.0):
        raise InvalidOptionError(f"{name} must be {wanted}; got {show(value)}")
    return x


def open_unit_interval(value: object, name: str) -> float:
    """A relative tolerance: a number in (0, 1)."""
    wanted = "a relative tolerance in (0, 1)"
    x = _real(value, name, wanted)
    if not (0.0 < x < 1.0):
        raise InvalidOptionError(f"{name} must be {wanted}; got {show(value)}")
    return x


def relative_cut(value: object, name: str) -> float:
    """A relative singular-value cut: a number in [0, 1)."""
    wanted = "a relative cut in [0, 1)"
    x = _real(value, name, wanted)
    if not (0.0 <= x < 1.0):
        raise InvalidOptionError(f"{name} must be {wanted}; got {show(value)}")
    return x


def relative_cuts(values: Iterable[object], name: str = "cuts") -> list[float]:
    """A sequence of relative cuts, each in [0, 1)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise InvalidOptionError(
            f"{name} must be a sequence of relative cuts in [0, 1); got {show(values)}"
        )
    return [relative_cut(v, name) for v in values]


def _integer(value: object, name: str, wanted: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise InvalidOptionError(f"{name} must be {wanted}; got {show(value)}")
    return int(value)


def positive_int(value: object, name: str) -> int:
    """An integer >= 1 (an iteration count, a number of probes)."""
    n = _integer(value, name, "a positive integer")
    if n < 1:
        raise InvalidOptionError(f"{name} must be a positive integer; got {n}")
    return n


def nonnegative_int(value: object, name: str) -> int:
    """An integer >= 0."""
    n = _integer(value, name, "a non-negative integer")
    if n < 0:
        raise InvalidOptionError(f"{name} must be a non-negative integer; got {n}")
    return n


def check_seed(seed: object, name: str = "seed") -> object:
    """A seed for ``numpy.random.default_rng``: None, an integer >= 0, or a Generator,
    BitGenerator or SeedSequence (passed on as they are)."""
    if seed is None or isinstance(
        seed, (np.random.Generator, np.random.BitGenerator, np.random.SeedSequence)
    ):
        return seed
    wanted = "None, an integer >= 0 or a numpy.random.Generator"
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InvalidOptionError(f"{name} must be {wanted}; got {show(seed)}")
    return int(seed)
