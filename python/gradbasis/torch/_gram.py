"""K = J C J2^T from Jacobian rows computed a chunk of samples at a time: J whole when it fits
beside K, otherwise two chunks at a time (each chunk recomputed once per pair)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np

from .._memory import available_memory, check_allocation
from .._options import show
from .._progress import progress_bar
from ..errors import InvalidOptionError, UnknownNameError
from ..models.base import ParamSpec

#: rows(X_part, out) writes the Jacobian rows of the samples X_part into out ((m d_y, P)).
Rows = Callable[[np.ndarray, np.ndarray], np.ndarray]

_MIRROR_BLOCK = 512  # rows per block when one triangle of K is mirrored onto the other


def column_scale(
    weights: Mapping[str, float] | None, specs: Sequence[ParamSpec], num_params: int
) -> np.ndarray | None:
    """C's diagonal from per-parameter weights (default 1); None when no weights are given."""
    if weights is None:
        return None
    weights = dict(weights)
    by_name = {s.name: s for s in specs}
    unknown = [k for k in weights if k not in by_name]
    if unknown:
        raise UnknownNameError(
            f"gram weights name unknown parameters {unknown}; parameters are {list(by_name)}"
        )
    scale = np.ones(num_params)
    for k, v in weights.items():
        if not (isinstance(v, (int, float, np.floating, np.integer)) and np.isfinite(v) and v >= 0):
            raise InvalidOptionError(
                f"gram weight for {k!r} must be a finite number >= 0; got {show(v)}"
            )
        s = by_name[k]
        scale[s.offset : s.offset + s.size] = float(v)
    return scale


def allocate_gram(shape: tuple[int, int], chunk_bytes: int, budget: int | None) -> np.ndarray:
    """K's array, after checking K and two Jacobian chunks against the budget."""
    check_allocation(
        8 * shape[0] * shape[1] + chunk_bytes,
        f"the Gram matrix {shape[0]} x {shape[1]} (m*d_y square) and two Jacobian chunks",
        budget,
        "use the matrix-free path (strategy='matrix_free'), fewer samples, or pass a memory_budget",
    )
    return np.empty(shape)


def product(
    A: np.ndarray, B: np.ndarray, scale: np.ndarray | None, out: np.ndarray, symmetric: bool
) -> None:
    """out = A diag(scale) B^T; when ``symmetric`` (B is A) one triangle is mirrored onto the
    other, so out is exactly symmetric whatever the BLAS does."""
    if scale is not None:
        root = np.sqrt(scale)
        A = A * root
        B = A if symmetric else B * root
    np.matmul(A, B.T, out=out)
    if symmetric:
        n = out.shape[0]
        for i in range(0, n, _MIRROR_BLOCK):
            block = out[i : i + _MIRROR_BLOCK, i : i + _MIRROR_BLOCK]
            block[:] = np.triu(block) + np.triu(block, 1).T
            out[i + _MIRROR_BLOCK :, i : i + _MIRROR_BLOCK] = out[
                i : i + _MIRROR_BLOCK, i + _MIRROR_BLOCK :
            ].T


def _spans(m: int, size: int) -> Iterator[tuple[int, int]]:
    return ((r0, min(r0 + size, m)) for r0 in range(0, m, size))


def gram_from_rows(
    rows: Rows,
    X: np.ndarray,
    X2: np.ndarray | None,
    scale: np.ndarray | None,
    out: np.ndarray | None,
    *,
    d: int,
    num_params: int,
    chunk: int,
    budget: int | None,
    check_out: Callable[[np.ndarray, tuple[int, int]], None],
) -> np.ndarray:
    """K(X, X2) (X2 None: K(X, X)) from Jacobian rows, into ``out`` (allocated when None,
    checked first against ``budget`` with two Jacobian chunks): J whole when it fits beside K,
    else chunks of ``chunk`` samples, two at a time."""
    P = num_params
    m2 = X.shape[0] if X2 is None else X2.shape[0]
    shape = (X.shape[0] * d, m2 * d)
    chunk_bytes = 8 * 2 * min(X.shape[0], chunk) * d * P
    if out is None:
        out = allocate_gram(shape, chunk_bytes, budget)
    else:
        check_out(out, shape)
        check_allocation(chunk_bytes, "two Jacobian chunks", budget, "pass a larger budget")
    limit = available_memory() if budget is None else budget
    whole = 8 * (X.shape[0] + (0 if X2 is None else m2)) * d * P
    if whole <= (limit - 8 * shape[0] * shape[1]) // 2:
        JL = rows(X, np.empty((X.shape[0] * d, P)))
        JR = JL if X2 is None else rows(X2, np.empty((m2 * d, P)))
        product(JL, JR, scale, out, X2 is None)
        return out
    right = X if X2 is None else X2
    left = list(_spans(X.shape[0], chunk))
    bar = progress_bar(len(left), "Gram matrix (Jacobian chunks)")
    try:
        for a0, a1 in left:
            Ja = rows(X[a0:a1], np.empty(((a1 - a0) * d, P)))
            for b0, b1 in _spans(right.shape[0], chunk):
                if X2 is None and b1 <= a0:
                    continue  # filled from the transpose
                diagonal = X2 is None and b0 == a0
                Jb = Ja if diagonal else rows(right[b0:b1], np.empty(((b1 - b0) * d, P)))
                block = out[a0 * d : a1 * d, b0 * d : b1 * d]
                product(Ja, Jb, scale, block, diagonal)
                if X2 is None and not diagonal:
                    out[b0 * d : b1 * d, a0 * d : a1 * d] = block.T
            bar.update(1)
    finally:
        bar.close()
    return out
