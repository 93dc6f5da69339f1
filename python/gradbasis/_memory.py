"""How much memory is there, checked before large arrays are allocated."""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import SupportsInt, cast

from ._options import show
from .errors import InvalidOptionError, MemoryBudgetError

_GIB = 1024**3


def available_memory() -> int:
    """Bytes this process can still allocate: MemAvailable, capped by a cgroup limit."""
    candidates = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                candidates.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        if limit != "max":
            candidates.append(int(limit) - int(used))
    except (OSError, ValueError):
        pass
    if not candidates:
        try:
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            candidates.append(8 * _GIB)
    return max(0, min(candidates))


def format_bytes(n: float) -> str:
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    for unit in units:
        if abs(n) < 1024 or unit == units[-1]:
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} EiB"  # pragma: no cover


def budget_bytes(memory_budget: object) -> int | None:
    """``memory_budget`` as whole bytes (None: the memory available at each allocation).

    A budget that is not a finite number is an InvalidOptionError; a negative one is left to
    the allocation checks, which report it as a MemoryBudgetError (nothing fits in it).
    """
    if memory_budget is None:
        return None
    if (
        isinstance(memory_budget, bool)
        or not isinstance(memory_budget, numbers.Real)
        or not math.isfinite(float(memory_budget))
    ):
        raise InvalidOptionError(
            f"memory_budget must be a finite number of bytes, or None for the memory available now; "
            f"got {show(memory_budget)}"
        )
    return int(cast(SupportsInt, memory_budget))  # a Real that is not bool: int() accepts it


def check_allocation(nbytes: int, what: str, budget: int | None, alternatives: str) -> None:
    """Raise MemoryBudgetError when ``nbytes`` exceeds ``budget`` (default: available memory)."""
    budget = budget_bytes(budget)
    limit = available_memory() if budget is None else budget
    if nbytes > limit:
        source = "available memory" if budget is None else "memory_budget"
        raise MemoryBudgetError(
            f"{what} needs {format_bytes(nbytes)} but {source} is {format_bytes(limit)}; "
            f"{alternatives}"
        )
