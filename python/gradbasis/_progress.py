"""Progress bars for the steps that can take more than a few seconds.

Library calls show none unless asked: ``with gradbasis.show_progress(): ...`` (the command line
does so unless ``--quiet``). A bar appears on stderr only once its step has run for
``DELAY_S`` seconds, so quick steps stay silent, and only when tqdm is installed (progress is a
nicety: without tqdm nothing is shown).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from ._options import true_or_false

__all__ = ["show_progress", "progress_bar", "progress_enabled"]

DELAY_S = 2.0
_ENABLED: contextvars.ContextVar[bool] = contextvars.ContextVar("gradbasis_progress", default=False)


@contextlib.contextmanager
def show_progress(enabled: bool = True) -> Iterator[None]:
    """Within the block, long steps (training, Jacobian chunks, Lanczos, induced solves) show a
    tqdm progress bar on stderr (``enabled=False`` silences them)."""
    token = _ENABLED.set(true_or_false(enabled, "enabled"))
    try:
        yield
    finally:
        _ENABLED.reset(token)


def progress_enabled() -> bool:
    return _ENABLED.get()


class _Silent:
    """The bar shown when none is wanted: every call does nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args: object, **kwargs: object) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int | None, desc: str, unit: str = "it", force: bool | None = None):
    """A tqdm bar (or a silent stand-in) for ``total`` steps; ``force`` overrides
    :func:`show_progress` (True: show even outside it, False: never)."""
    enabled = progress_enabled() if force is None else force
    if not enabled:
        return _Silent()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Silent()
    return tqdm(total=total, desc=desc, unit=unit, delay=DELAY_S, leave=False)
