"""Checks of scalar options (tolerances, counts, seeds) shared by every public entry point.

Each check returns the option as a plain Python number or raises :class:`InvalidOptionError`
naming the option, its valid range and the value given. Values in messages are shown as plain
Python numbers (``0.5``), never as NumPy reprs (``np.float64(0.5)``).
"""

from __future__ import annotations

import difflib
import enum
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .errors import InvalidOptionError, UnknownNameError

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
    "Seed",
    "nonempty_string",
    "one_of",
    "true_or_false",
    "option_table",
    "known_keys",
    "one_or_more",
    "finite_nonnegative",
    "nonnegative_whole",
    "check_tolerances",
    "Strategy",
    "STRATEGIES",
    "check_strategy",
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


#: What ``numpy.random.default_rng`` takes and :func:`check_seed` passes on.
Seed = int | np.random.Generator | np.random.BitGenerator | np.random.SeedSequence | None


def check_seed(seed: object, name: str = "seed") -> Seed:
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


# Options that are names, switches, tables of options (a config file's sections) and axes.


def nonempty_string(value: object, name: str) -> str:
    """A string with more than whitespace in it (a name, a path), stripped."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidOptionError(f"{name} must be a non-empty string; got {show(value)}")
    return value.strip()


def one_of(value: object, name: str, allowed: Sequence[str]) -> str:
    """One of the names ``allowed`` (a method, a kind of model), exactly as written there."""
    if not isinstance(value, str) or value not in allowed:
        raise InvalidOptionError(
            f"{name}: unknown value {show(value)}; choose from {', '.join(allowed)}"
        )
    return value


def true_or_false(value: object, name: str) -> bool:
    """A bool: no number or string stands in for one."""
    if not isinstance(value, bool):
        raise InvalidOptionError(f"{name} must be true or false; got {show(value)}")
    return value


def option_table(value: object, name: str) -> Mapping:
    """A table of options (a mapping, as a TOML table is read)."""
    if not isinstance(value, Mapping):
        raise InvalidOptionError(f"{name} must be a table; got {show(value)}")
    return value


def known_keys(table: Mapping, allowed: Sequence[str], where: str = "") -> None:
    """Refuse the first key of ``table`` (the table named ``where``) that is not ``allowed``,
    naming the allowed key it most resembles (a typo) or else every allowed key."""
    for key in table:
        if key not in allowed:
            near = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; allowed: {', '.join(allowed)}"
            raise InvalidOptionError(f"unknown key {where + '.' if where else ''}{key}{hint}")


def one_or_more(value: object, name: str) -> list:
    """One value or a non-empty list of them, as a list (e.g. the values of one grid axis)."""
    values = list(value) if isinstance(value, list) else [value]
    if not values:
        raise InvalidOptionError(f"{name} must not be an empty list")
    return values


# Options of the theorem checks: margins, counts, the tolerances every check takes, strategies.


def finite_nonnegative(value: object, name: str) -> float:
    """A finite number >= 0 (a pre-activation margin, an output tolerance)."""
    wanted = "finite and >= 0"
    x = _real(value, name, wanted)
    if not (math.isfinite(x) and x >= 0.0):
        raise InvalidOptionError(f"{name} must be {wanted}; got {show(value)}")
    return x


def nonnegative_whole(value: object, name: str) -> int:
    """A count >= 0 given as an integer or a whole float such as 16.0."""
    x = math.nan
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        x = float(value)
    if not (x.is_integer() and x == value and x >= 0.0):  # x == value: exact in float64
        raise InvalidOptionError(f"{name} must be a non-negative integer; got {show(value)}")
    return int(x)


def check_tolerances(
    rtol: object,
    grad_tol: object,
    rank_tol: object,
    cuts: Iterable[object],
    curvature_tol: object = 0.0,
) -> tuple[float, float, float | None, list[float], float]:
    """The tolerances the theorem checks take: rtol in (0, 1), grad_tol > 0 (a scale-free gain,
    see :func:`gradbasis.theory.certificate.stationarity`), rank_tol None or a relative cut in [0, 1),
    cuts relative cuts, curvature_tol >= 0 (all finite)."""
    return (
        open_unit_interval(rtol, "rtol"),
        positive_number(grad_tol, "grad_tol"),
        None if rank_tol is None else relative_cut(rank_tol, "rank_tol"),
        relative_cuts(cuts),
        nonnegative_number(curvature_tol, "curvature_tol"),
    )


class Strategy(str, enum.Enum):
    """How the span of a Jacobian is built and solved (see :mod:`gradbasis.solve.strategies`).
    Members equal their names and print, format and serialise as them."""

    AUTO = "auto"
    DENSE = "dense"
    GRAM = "gram"
    MATRIX_FREE = "matrix_free"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


#: Every strategy's name, as users pass it.
STRATEGIES: tuple[str, ...] = tuple(s.value for s in Strategy)


def check_strategy(value: object, only: Sequence[Strategy] = (), user: str = "") -> Strategy:
    """``value`` as a :class:`Strategy`, or UnknownNameError. ``only`` narrows the strategies
    that the function named ``user`` takes (every strategy when empty)."""
    shown = repr(str(value)) if isinstance(value, Strategy) else repr(value)
    if not only and value not in STRATEGIES:
        raise UnknownNameError(f"unknown strategy {shown}; choose from {STRATEGIES}")
    if only and value not in only:
        names = " or ".join(repr(s.value) for s in only)
        raise UnknownNameError(f"{user} strategy must be {names}; got {shown}")
    return Strategy(value)
