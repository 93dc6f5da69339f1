"""Small torch helpers of the TorchModel: numpy views as tensors, thread counts."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.func import jvp

from .._progress import progress_bar
from ..models.base import ParamSpec


def tensor(a: np.ndarray) -> torch.Tensor:
    """A float64 tensor sharing ``a``'s memory where it can (a read-only or strided array is
    copied: torch cannot wrap one without a warning)."""
    if not (a.flags.writeable and a.flags.c_contiguous):
        a = np.array(a, order="C")
    return torch.from_numpy(a)


def params_of(specs: Sequence[ParamSpec], theta: np.ndarray) -> dict[str, torch.Tensor]:
    """theta as the module's parameter dict (views, no copy)."""
    t = tensor(theta)
    return {s.name: t[s.offset : s.offset + s.size].view(s.shape) for s in specs}


def params_batch(specs: Sequence[ParamSpec], V: np.ndarray) -> dict[str, torch.Tensor]:
    """The k columns of V (num_params, k) as parameter dicts stacked along a leading axis."""
    t = tensor(np.ascontiguousarray(V.T))
    return {s.name: t[:, s.offset : s.offset + s.size].reshape(-1, *s.shape) for s in specs}


def flat(specs: Sequence[ParamSpec], grads: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """A parameter dict as one vector in theta order."""
    return torch.cat([grads[s.name].reshape(-1) for s in specs])


def flat_batch(specs: Sequence[ParamSpec], grads: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Stacked parameter dicts as a (k, num_params) matrix in theta order."""
    k = next(iter(grads.values())).shape[0]
    return torch.cat([grads[s.name].reshape(k, -1) for s in specs], dim=1)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to n (0: left as they are) and restored afterwards."""
    if n <= 0:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_forward_mode() -> None:
    """torch loads its forward-mode derivative rules on the first ``jvp`` and, doing so, warns
    that ``torch.jit.script`` (which it calls itself) is deprecated: load them once with that
    warning silenced, so a user's warning filters never see torch's own deprecation."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        one = torch.ones(1, dtype=torch.float64)
        jvp(lambda t: t * 2, (one,), (one,))


def chunk_spans(m: int, size: int, what: str | None = None) -> Iterator[tuple[int, int]]:
    """(start, stop) of the chunks of ``size`` samples among m; with ``what``, a progress bar
    over them (shown within ``gradbasis.show_progress()`` when the step takes a while)."""
    starts = range(0, m, size)
    if what is None or len(starts) < 2:
        yield from ((r0, min(r0 + size, m)) for r0 in starts)
        return
    bar = progress_bar(len(starts), f"{what} ({len(starts)} chunks of {size} samples)")
    try:
        for r0 in starts:
            yield r0, min(r0 + size, m)
            bar.update(1)
    finally:
        bar.close()
