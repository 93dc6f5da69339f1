"""Gram entries the structured kernel cannot give near the float64 limit.

The kernel sums products of per-layer factors (layer inputs times back-propagated output
derivatives), and one factor can overflow where every entry of J is finite: inf * 0 gives NaN
where K is exactly 0. Model.gram and Model.gram_diagonal then recompute the affected rows
from Jacobian rows here.
"""

from __future__ import annotations

import numpy as np

from .._memory import check_allocation
from ..errors import NonFiniteError

__all__ = ["recompute_nonfinite_rows"]


def recompute_nonfinite_rows(
    model,
    theta: np.ndarray,
    X: np.ndarray,
    X2: np.ndarray | None,
    w: list[float],
    out: np.ndarray,
    threads: int,
    memory_budget: int | None,
) -> None:
    """Overwrite the rows of ``out`` (K, or diag K when 1-D) that the kernel left with
    non-finite entries by J_S C J(X2)^T from Jacobian rows; for K(X, X) the columns too.

    The kernel sums products of per-layer factors (layer inputs times back-propagated
    output derivatives), and one factor can overflow where every entry of J is finite: inf
    * 0 gives NaN where K is exactly 0, inf where K is ~1e200. Jacobian rows are scaled by
    powers of two to a largest entry below 1 (:func:`_unit_rows`), so no term of the
    product overflows unless the entry of K does. They are formed a chunk of samples at a
    time, checked against ``memory_budget``. Entries still not finite are beyond float64:
    NonFiniteError.
    """
    r, n = model.output_dim, model.num_params
    symmetric = X2 is None
    cols = X if X2 is None else X2
    m, m2 = X.shape[0], cols.shape[0]
    if out.ndim == 1:
        samples = np.flatnonzero(~np.isfinite(out).reshape(m, r).all(axis=1))
    else:
        pairs = ~np.isfinite(out).reshape(m, r, m2, r).all(axis=(1, 3))  # sample pairs to redo
        if symmetric:
            # A sample whose every pair is bad is redone as a row and, mirrored, as a column,
            # which covers its pairs with the other samples: they need no row of their own.
            whole = pairs.all(axis=1)
            pairs &= ~whole[:, None] & ~whole[None, :]
            samples = np.flatnonzero(whole | pairs.any(axis=1))
        else:
            samples = np.flatnonzero(pairs.any(axis=1))
    rows = (samples[:, None] * r + np.arange(r)).ravel()
    chunk = max(1, _FALLBACK_CHUNK_BYTES // (8 * r * n))
    c_rows, c_cols = min(chunk, samples.size) * r, min(chunk, m2) * r
    # Three copies of each Jacobian chunk (J, its weighted columns, scaled), a block of K, and
    # for K(X, X) the column slices that make the redone samples' block exactly symmetric.
    if out.ndim == 1:
        floats = 3 * c_rows * n
    else:
        floats = (
            3 * (c_rows + c_cols) * n
            + c_rows * c_cols
            + (3 * rows.size * c_rows if symmetric else 0)
        )
    check_allocation(
        8 * floats,
        f"recomputing {samples.size} samples' rows of the Gram matrix from Jacobian rows (the kernel's "
        "layer factors overflow float64 there)",
        memory_budget,
        "rescale the data or theta, use fewer samples, or pass a larger memory_budget",
    )
    # The weight of every theta entry; a block with weight 0 adds nothing, whatever J holds there.
    c = np.zeros(n)
    for layer, c_w, c_b in zip(model.dense_layers(), w[0::2], w[1::2], strict=False):
        c[layer.weight.offset : layer.weight.offset + layer.weight.size] = c_w
        if layer.bias is not None:
            c[layer.bias.offset : layer.bias.offset + layer.bias.size] = c_b
    keep = np.flatnonzero(c)
    root_c = None if np.all(c[keep] == 1.0) else np.sqrt(c[keep])

    def scaled_rows(Xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        J = np.empty((Xs.shape[0] * r, n))
        model.core_graph.jacobian(theta, np.ascontiguousarray(Xs), J, threads)
        J = J[:, keep]
        if not np.isfinite(J).all():
            raise NonFiniteError(
                f"the Gram matrix overflows float64: {int(np.sum(~np.isfinite(J)))} entries of the Jacobian "
                "rows it is made of are inf or NaN; rescale the data or theta"
            )
        A, e = _unit_rows(J)
        if root_c is not None:
            A, e2 = _unit_rows(A * root_c)
            e = e + e2
        return A, e

    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        for i in range(0, samples.size, chunk):
            mine = samples[i : i + chunk]
            R = rows[i * r : (i + chunk) * r]
            A, e = scaled_rows(X[mine])
            if out.ndim == 1:
                out[R] = np.ldexp(np.einsum("ij,ij->i", A, A), 2 * e)
                continue
            for a in range(0, m2, chunk):
                B, f = scaled_rows(cols[a : a + chunk])
                block = np.ldexp(A @ B.T, e[:, None] + f[None, :])
                out[R, a * r : a * r + block.shape[1]] = block
                if symmetric:  # mirror into the rows that are not redone themselves
                    own = np.arange(a * r, a * r + block.shape[1])
                    other = ~np.isin(own, rows)
                    out[own[other][:, None], R] = block.T[other]
        if symmetric and out.ndim == 2:
            # Entry (p, q) of two redone rows came from row p's product and (q, p) from row
            # q's, which may round differently: copy the lower triangle onto the upper.
            for i in range(0, rows.size, c_rows):
                R = rows[i : i + c_rows]
                upper = rows[:, None] > R[None, :]
                out[np.ix_(R, rows)] = np.where(
                    upper.T, out[np.ix_(rows, R)].T, out[np.ix_(R, rows)]
                )
    if not np.isfinite(out).all():
        count = int(np.sum(~np.isfinite(out)))
        what = "diagonal of the Gram matrix" if out.ndim == 1 else "Gram matrix"
        raise NonFiniteError(
            f"the {what} overflows float64 ({count} of {out.size} entries are beyond it, also when "
            "computed from Jacobian rows); rescale the data or theta"
        )


# Bytes of one chunk of Jacobian rows in Model.gram's recomputation of non-finite rows; it
# holds a few such chunks at once.
_FALLBACK_CHUNK_BYTES = 1 << 24


def _unit_rows(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, e) with A = 2^e[:, None] * B and every row's largest entry of B in [0.5, 1) (zero
    rows stay zero), so products of entries of B cannot overflow. Exact, except for entries
    below 2^-1022 times their row's largest, which round far below that row's products."""
    e = np.frexp(np.abs(A).max(axis=1, initial=0.0))[1]
    return np.ldexp(A, -e[:, None]), e
