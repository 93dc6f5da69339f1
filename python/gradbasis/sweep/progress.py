"""How far a running sweep has got, shown on stderr: a bar, one line per cell, or nothing."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

from ..errors import SweepConfigError
from .reporting import cell_label

# run(progress=...) -> display mode; any other value must be a mode's name.
_MODES: dict[object, str] = {True: "bar", False: "off"}


def display_mode(progress: object) -> str:
    """The display ``progress`` asks for: "bar", "log" or "off"."""
    mode = _MODES.get(progress, progress)
    if not isinstance(mode, str) or mode not in ("bar", "log", "off"):
        raise SweepConfigError(f"progress must be True, False or 'log'; got {progress!r}")
    return mode


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    minutes = f"{seconds // 60 % 60:02d}" if seconds >= 3600 else str(seconds // 60)
    return (f"{seconds // 3600}:" if seconds >= 3600 else "") + f"{minutes}:{seconds % 60:02d}"


class Progress:
    """Cells done / total, failures and the time left, on stderr. ``mode``: "bar" (tqdm when
    installed, else one line redrawn in place), "log" (one line per finished cell), "off"."""

    def __init__(self, mode: str, total: int, done: int, todo: int):
        self.mode, self.total, self.done, self.todo = mode, total, done, todo
        self.failed, self.finished, self.start = 0, 0, time.perf_counter()
        self.tqdm: Any = None  # a tqdm bar (an optional package, untyped here) or None
        if mode == "bar":
            try:
                from tqdm.auto import tqdm
            except ImportError:
                pass
            else:
                self.tqdm = tqdm(
                    total=total, initial=done, unit="cell", desc="sweep", file=sys.stderr
                )
            if self.tqdm is None:
                self._draw()

    def update(self, record: Mapping) -> None:
        self.done += 1
        self.finished += 1
        self.failed += record["status"] != "ok"
        if self.mode == "log":
            verdicts = "".join(f"; {k} {v}" for k, v in record["summary"]["verdicts"].items())
            error = record["error"]
            status = "ok" if error is None else f"FAILED ({error['type']}: {error['message']})"
            cell = f"{record['key']} {cell_label(record['settings'])} seed {record['settings']['seed']}"
            seconds = record["seconds"].get("total", 0.0)
            line = f"[{self.done}/{self.total}] {cell}: {status}{verdicts} ({seconds:.1f} s)"
            print(line, file=sys.stderr, flush=True)
        elif self.tqdm is not None:
            self.tqdm.update(1)
            if self.failed:
                self.tqdm.set_postfix(failed=self.failed)
        elif self.mode == "bar":
            self._draw()

    def _draw(self) -> None:
        elapsed = time.perf_counter() - self.start
        left = elapsed / self.finished * (self.todo - self.finished) if self.finished else None
        width = 24
        filled = int(width * self.done / self.total) if self.total else width
        line = (
            f"sweep {self.done}/{self.total} cells [{'#' * filled}{'.' * (width - filled)}]"
            f"{f' {self.failed} failed' if self.failed else ''} elapsed {_clock(elapsed)}"
            f" left {'?' if left is None else '~' + _clock(left)}"
        )
        tty = sys.stderr.isatty()
        sys.stderr.write(("\r" + line + "\x1b[K") if tty else line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()
        elif self.mode == "bar" and sys.stderr.isatty():
            sys.stderr.write("\n")
            sys.stderr.flush()
