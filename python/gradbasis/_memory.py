"""How much memory is there, checked before large arrays are allocated."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import MemoryBudgetError

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
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def check_allocation(nbytes: int, what: str, budget: int | None, alternatives: str) -> None:
    """Raise MemoryBudgetError when ``nbytes`` exceeds ``budget`` (default: available memory)."""
    limit = available_memory() if budget is None else int(budget)
    if nbytes > limit:
        source = "available memory" if budget is None else "memory_budget"
        raise MemoryBudgetError(
            f"{what} needs {format_bytes(nbytes)} but {source} is {format_bytes(limit)}; "
            f"{alternatives}"
        )
