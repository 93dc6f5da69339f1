"""Verdicts of the paper's checks and the small table format their results print as."""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable


class Verdict(str, enum.Enum):
    """What the numbers say about a statement of the paper at one point."""

    HOLDS = "holds"  # the statement's equality/inequality is met within tolerance
    CONSISTENT = "consistent"  # not met exactly, but the gap is explained by a stated bound
    DOES_NOT_APPLY = "does not apply"  # a hypothesis fails (not critical, non-differentiable, ...)
    VIOLATED = "violated"  # beyond every bound: a bug or a broken assumption

    def __str__(self) -> str:
        return self.value


def fmt(x: object) -> str:
    """Numbers to 12 significant digits, infinities and NaN spelled out."""
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, (int,)):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return f"{x:.12g}"
    return str(x)


def table(title: str, rows: Iterable[tuple[str, object]]) -> str:
    rows = list(rows)
    width = max(len(k) for k, _ in rows)
    lines = [title, "-" * len(title)]
    lines += [f"{k:<{width}}  {fmt(v)}" for k, v in rows]
    return "\n".join(lines)


def jsonable(x: object) -> object:
    """JSON-safe copy: infinities and NaN become strings, enums their values."""
    if isinstance(x, enum.Enum):
        return x.value
    if isinstance(x, float) and not math.isfinite(x):
        return fmt(x)
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    return x
