"""The gradient basis model on data too large for one machine, with Dask.

The sample axis is cut into chunks; every chunk (and every pair of chunks, for the Gram
matrix) is one Dask task that runs the C++ core inside a worker. Three entry points:

* :func:`distributed_jacobian` — J as a Dask array of row blocks J(X_i), rows ordered like
  :meth:`Model.jacobian` (row ``i * d_y + k`` is output k of sample i).
* :func:`distributed_gram` — K = J J^T as a Dask array of blocks K_ij = J(X_i) J(X_j)^T
  computed by :meth:`Model.gram` for i <= j only; K_ji is the transpose of K_ij.
* :func:`distributed_induced_minimum` — the infimum of the gradient basis model as an
  :class:`InducedResult` with the same certificates (``value``, ``lower``) as
  :func:`gradient_basis_minimum`.

  ``method="tsqr"`` (squared loss): a tall-skinny QR (:func:`dask.array.linalg.tsqr`) of
  the rows [J | y] leaves a (P+1) x (P+1) factor R on which the small problem is solved
  exactly: the SVD of its first P columns gives J's singular values and the rank cut, its
  last column the projected targets and the residual outside the span. J and Q are never
  gathered. Unequal weights lambda_i take [J | S J | S y], S = diag(sqrt(lambda_i / max
  lambda)), 2P+1 columns, so that the span is still cut on J's own singular values.

  ``method="gram"`` (any loss): the upper blocks of K are gathered into one matrix on the
  driver, which then follows the ``gram`` strategy (pivoted Cholesky of K, see
  :mod:`gradbasis.solve.gram`); the coefficients go back to theta coordinates by reverse sweeps on the
  workers.

  ``method="resolved"`` (any loss): Theorem 1's certificate over J's numerical span at the
  rounding-level cut, as the single-machine Gram strategy of :func:`gradbasis.theorem1`
  (:mod:`gradbasis.solve.resolved_span`): K gathered as for ``gram``, then the rows its
  pivoted Cholesky left out resolved from J v and J^T u products computed chunk by chunk on
  the workers (one task per chunk and block of probe vectors).

Running on a cluster
--------------------
Connect a client before calling, or pass it::

    from dask.distributed import Client
    client = Client("tcp://scheduler:8786")         # the scheduler of a running cluster
    X = dask.array.from_zarr("s3://bucket/X.zarr")  # read by the workers, chunked by rows
    Y = dask.array.from_zarr("s3://bucket/Y.zarr")
    res = distributed_induced_minimum((model, "squared", X, Y), theta, client=client)

Every worker needs gradbasis installed (the driver's version, with its compiled core):
models and losses are pickled as their class and constructor arguments and rebuilt in the
worker. Without a client the default scheduler runs the tasks (the last ``Client``
created, else local threads).

What travels over the network: the model (its constructor arguments, a few bytes) and theta
(P floats), each once per worker; the chunks of X (and of Y and the weights for ``tsqr``).
Back to the driver: for ``tsqr`` only R ((P+1)^2 floats) and the fitted outputs (m d_y); for
``gram`` the upper blocks of K (half of (m d_y)^2 floats) and P floats per chunk for the
coefficients. A NumPy X is cut into chunks on the driver and shipped from there; pass a
Dask array that the workers read themselves when X does not fit the driver.

Memory per worker (c samples per chunk, r = d_y, P = num_params, 8 bytes a float): ``tsqr``
holds a row block of c r (P+1) floats (c r (2P+1) with unequal weights) and its QR factors,
about three times that, and the stacked R factors at the reduction step (chunks of at least
2(P+1)/r samples keep that step small; the default chunking does). ``gram`` holds a block of
(c r)^2 floats and the layer factors of 2c samples (inputs and output cotangents of every
dense layer). The driver holds K, factorised in place, and the factor's QR (or its small
Gram matrix), about 2 (m r)^2 floats at most, for ``gram``; only small factors for ``tsqr``. The C++ core in each task uses ``n_threads``
threads (default: every core of the worker's machine; give the cores per worker when
several workers share a machine).

Dask is an optional dependency: ``pip install 'gradbasis[distributed]'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .._memory import check_allocation
from .._options import open_unit_interval, positive_int, relative_cut, relative_cuts
from .._validation import as_theta, as_threads, as_weights
from ..errors import (
    InvalidOptionError,
    InvalidWeightsError,
    UnknownNameError,
)
from ..models.base import Model
from ..objective import Objective
from .dask_tasks import (
    coefficient_block,
    compute,
    dask_modules,
    default_gram_chunk,
    default_jacobian_chunk,
    fitted_block,
    gram_block,
    jacobian_block,
    jvp_columns,
    problem_parts,
    rows_like,
    sample_chunks,
    shared_keys,
    tsqr_rows,
    vjp_columns,
)
from .gram import solve_gram_pivoted
from .induced import DEFAULT_CUTS, InducedResult, ProfileEntry, default_rank_tol, induced_minimum
from .resolved_span import JacobianProducts, resolved_span_minimum

if TYPE_CHECKING:  # pragma: no cover
    import dask.array

__all__ = ["METHODS", "distributed_gram", "distributed_induced_minimum", "distributed_jacobian"]

#: Methods of :func:`distributed_induced_minimum`.
METHODS = ("tsqr", "gram", "resolved")


def distributed_jacobian(
    model: Model,
    theta: object,
    X: Any,
    *,
    chunk_size: int | None = None,
    client: Any = None,
    n_threads: int | None = None,
) -> dask.array.Array:
    """J = d f_X / d theta as a Dask array of row blocks, one per chunk of samples.

    ``X`` is a NumPy array or a Dask array chunked along samples (its row chunks are kept
    unless ``chunk_size``, samples per chunk, is given; the default for NumPy input makes
    blocks of about 64 MiB). Block i has shape (m_i d_y, num_params). With ``client`` the
    blocks are computed now and kept on its workers (``client.persist``); without, the array
    is lazy. See the module docstring for what travels and the memory per worker.
    """
    dask, da = dask_modules()
    theta = as_theta(theta, model.num_params)
    threads = as_threads(n_threads) or None
    Xd = sample_chunks(da, X, model.input_dim, chunk_size, default_jacobian_chunk(model))
    m_d, t_d = shared_keys(dask, model, theta)
    J = da.map_blocks(
        jacobian_block,
        Xd,
        m_d,
        t_d,
        threads,
        chunks=(tuple(c * model.output_dim for c in Xd.chunks[0]), (model.num_params,)),
        dtype=np.float64,
        meta=np.empty((0, 0)),
    )
    return J if client is None else client.persist(J)


def _gram_array(dask, da, model: Model, theta: np.ndarray, Xd, n_threads) -> dask.array.Array:
    """K over the sample chunks of Xd: one task per block, model.gram for i <= j and the
    transpose of block (j, i) below the diagonal."""
    from dask.highlevelgraph import HighLevelGraph

    m_d, t_d = shared_keys(dask, model, theta)
    name = "gradbasis-gram-" + dask.base.tokenize(m_d.key, t_d.key, Xd.name, n_threads)
    n = Xd.numblocks[0]
    layer: dict[Any, Any] = {
        (name, i, j): (
            gram_block,
            m_d.key,
            t_d.key,
            (Xd.name, i, 0),
            None if i == j else (Xd.name, j, 0),
            n_threads,
        )
        if i <= j
        else (np.transpose, (name, j, i))
        for i in range(n)
        for j in range(n)
    }
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[Xd, m_d, t_d])
    rows = tuple(c * model.output_dim for c in Xd.chunks[0])
    return da.Array(graph, name, chunks=(rows, rows), dtype=np.float64, meta=np.empty((0, 0)))


def distributed_gram(
    model: Model,
    theta: object,
    X: Any,
    *,
    client: Any = None,
    chunk_size: int | None = None,
    n_threads: int | None = None,
) -> dask.array.Array:
    """K = J(X) J(X)^T as a Dask array of blocks K_ij = ``model.gram(theta, X_i, X_j)``.

    Only the blocks with i <= j are computed (one task per pair of chunks); K_ji is their
    transpose, so K is exactly symmetric. Rows and columns are ordered like Jacobian rows.
    ``X`` is a NumPy array or a Dask array chunked along samples (its row chunks are kept
    unless ``chunk_size``, samples per chunk, is given; the default for NumPy input makes
    blocks of about 64 MiB). With ``client`` the blocks are computed now and kept on its
    workers (``client.persist``); without, the array is lazy. See the module docstring for
    what travels and the memory per worker.
    """
    dask, da = dask_modules()
    theta = as_theta(theta, model.num_params)
    Xd = sample_chunks(da, X, model.input_dim, chunk_size, default_gram_chunk(model))
    K = _gram_array(dask, da, model, theta, Xd, as_threads(n_threads) or None)
    return K if client is None else client.persist(K)


# ----------------------------------------------------------------------------- infimum
def distributed_induced_minimum(
    problem: Objective | tuple,
    theta: object,
    *,
    client: Any = None,
    chunk_size: int | None = None,
    method: str = "tsqr",
    rank_tol: float | None = None,
    cuts: Sequence[float] = DEFAULT_CUTS,
    tol: float = 1e-12,
    max_iter: int = 200,
    n_threads: int | None = None,
    memory_budget: int | None = None,
) -> InducedResult:
    """inf_alpha sum_i lambda_i l((J(theta) alpha)_i, y_i) with the samples spread over Dask workers.

    ``problem`` is an :class:`Objective` or a tuple ``(model, loss, X, Y)`` /
    ``(model, loss, X, Y, weights)`` whose X, Y (and weights) may be Dask arrays chunked
    along samples (default weights 1/m). Returns an :class:`InducedResult` with ``alpha`` in
    theta coordinates, as :func:`gradient_basis_minimum` does.

    ``method="tsqr"`` (squared loss only) agrees with the ``dense`` strategy: the same rank
    cut (default ``max(m d_y, P) eps``) on J's singular values, the same profile. ``value`` is
    Phi at ``alpha`` evaluated on the data (one forward-mode sweep per chunk); ``lower`` and
    ``profile`` come from the reduced problem on R, whose infimum equals the full one up to
    the rounding of the (backward stable) QR. ``method="gram"`` (any loss) agrees with the
    ``gram`` strategy, Gram floor and all; before any block is computed, K and its
    factorisation are checked against ``memory_budget`` (bytes the driver may use,
    default the memory available now). The result's ``strategy`` is ``"distributed_tsqr"``
    or ``"distributed_gram"``; ``details`` gives the chunking.
    """
    if method not in METHODS:
        raise UnknownNameError(f"unknown method {method!r}; choose from {METHODS}")
    dask, da = dask_modules()
    model, loss, X, Y, weights = problem_parts(problem)
    theta = as_theta(theta, model.num_params)
    threads = as_threads(n_threads) or None
    rank_tol = None if rank_tol is None else relative_cut(rank_tol, "rank_tol")
    cuts = relative_cuts(cuts)
    tol = open_unit_interval(tol, "tol")
    max_iter = positive_int(max_iter, "max_iter")
    if method == "tsqr":
        if loss.name != "squared":
            raise InvalidOptionError(
                f"method='tsqr' solves the squared loss only; use method='gram' for {loss.name}"
            )
        Xd = sample_chunks(da, X, model.input_dim, chunk_size, default_jacobian_chunk(model))
        solve = _tsqr_solve
    else:
        Xd = sample_chunks(da, X, model.input_dim, chunk_size, default_gram_chunk(model))
        n = Xd.shape[0] * model.output_dim
        check_allocation(
            8 * 3 * n * n,
            f"the Gram matrix {n} x {n} and its factorisation on the driver",
            memory_budget,
            "use method='tsqr' (squared loss), fewer samples, or pass a memory_budget",
        )
        solve = _gram_solve if method == "gram" else _resolved_solve
    res = solve(
        dask, da, client, model, loss, theta, Xd, Y, weights, rank_tol, cuts, tol, max_iter, threads
    )
    details = dict(
        res.details, method=method, num_chunks=len(Xd.chunks[0]), chunk_samples=max(Xd.chunks[0])
    )
    return replace(res, strategy=f"distributed_{method}", details=details)


def _weights(dask, da, client, weights: Any, Xd) -> tuple[Any, float, float]:
    """(weights as an (m, 1) array chunked like Xd, their smallest and largest value)."""
    m = Xd.shape[0]
    if weights is None:
        return da.full((m, 1), 1.0 / m, chunks=(Xd.chunks[0], (1,))), 1.0 / m, 1.0 / m
    if not isinstance(weights, da.Array):
        w = as_weights(weights, m)
        return rows_like(da, w, Xd, 1), float(w.min()), float(w.max())
    wd = rows_like(da, weights, Xd, 1)
    w_min, w_max = compute(dask, client, wd.min(), wd.max())
    if not (0 < w_min and np.isfinite(w_max)):
        raise InvalidWeightsError(
            f"weights must be positive and finite; they range over [{float(w_min):.6g}, {float(w_max):.6g}]"
        )
    return wd, float(w_min), float(w_max)


def _tsqr_solve(
    dask, da, client, model, loss, theta, Xd, Y, weights, rank_tol, cuts, tol, max_iter, threads
):
    """Squared loss from the R factor of the weighted rows; Q is never formed."""
    m, d, P = Xd.shape[0], model.output_dim, model.num_params
    rank_tol = (
        default_rank_tol((m * d, P)) if rank_tol is None else rank_tol
    )  # checked by the caller
    if not isinstance(Y, da.Array):
        Y = loss.check_targets(Y, d, m)
    Yd = rows_like(da, Y, Xd, d)
    wd, w_min, w_ref = _weights(dask, da, client, weights, Xd)
    equal = w_min == w_ref
    m_d, t_d = shared_keys(dask, model, theta)
    rows = da.map_blocks(
        tsqr_rows,
        Xd,
        Yd,
        wd,
        m_d,
        t_d,
        w_ref,
        equal,
        threads,
        chunks=(tuple(c * d for c in Xd.chunks[0]), (P + 1 if equal else 2 * P + 1,)),
        dtype=np.float64,
        meta=np.empty((0, 0)),
    )
    (R,) = compute(dask, client, da.linalg.tsqr(rows)[1])
    if equal:
        # Phi(a) = w ||J a - y||^2 = w ||R[:, :P] a - R[:, P]||^2 for [J | y] = Q R; R's last
        # row carries the part of y outside range(J).
        small = induced_minimum(
            R[:, :P],
            "squared",
            R[:, P:],
            np.full(R.shape[0], w_ref),
            rank_tol=rank_tol,
            cuts=cuts,
            tol=tol,
            max_iter=max_iter,
            n_threads=threads,
        )
    else:
        small = _unequal_weights_solve(R, P, w_ref, rank_tol, cuts, tol, max_iter, threads)
    # Phi at alpha on the data itself (one forward-mode sweep per chunk), and J alpha.
    F = da.map_blocks(
        fitted_block,
        Xd,
        m_d,
        t_d,
        dask.delayed(small.alpha, pure=True),
        threads,
        chunks=(Xd.chunks[0], (d,)),
        dtype=np.float64,
        meta=np.empty((0, 0)),
    )
    value = (wd[:, 0] * ((F - Yd) ** 2).sum(axis=1)).sum()
    F, value = compute(dask, client, F, value)
    details = {"reduced_value": small.value, "qr_columns": int(R.shape[1]), "equal_weights": equal}
    return replace(small, value=float(value), fitted=F, details=details)


def _unequal_weights_solve(R, P, w_ref, rank_tol, cuts, tol, max_iter, threads) -> InducedResult:
    """[J | S J | S y] = Q R with S = diag(sqrt(lambda / w_ref)). As in the dense path the span
    at a cut is J V_k, V_k J's leading right singular vectors (R[:, :P] is J's factor); on it
    Phi(V_k c) = w_ref ||R[:, P:2P] V_k c - R[:, 2P]||^2, one small solve per cut."""
    _, sigma, Vt = np.linalg.svd(R[:, :P], full_matrices=False)
    target, weights = R[:, 2 * P :], np.full(R.shape[0], w_ref)
    entries, main = [], None
    for cut in sorted({rank_tol, *cuts}, reverse=True):
        k = int(np.sum(sigma > cut * sigma[0])) if sigma.size and sigma[0] > 0 else 0
        V = Vt[:k].T if k else np.zeros((P, 1))  # k = 0: the span {0}; one zero column
        sol = induced_minimum(
            R[:, P : 2 * P] @ V,
            "squared",
            target,
            weights,
            rank_tol=0.0,
            cuts=(),
            tol=tol,
            max_iter=max_iter,
            n_threads=threads,
        )
        entries.append(ProfileEntry(cut, k, sol.value, sol.lower, sol.iterations, sol.attained))
        if cut == rank_tol:
            main = replace(sol, alpha=V @ sol.alpha, rank=k, rank_tol=rank_tol)
    assert main is not None  # rank_tol is one of the cuts looped over
    return replace(main, singular_values=sigma, profile=tuple(entries))


def _gathered_gram(dask, da, client, model, theta, Xd, Y, weights, loss, threads):
    """(K, Y, w) on the driver: the upper blocks of K gathered into one matrix (the lower ones
    are their transposes), with the targets and weights checked."""
    m, d = Xd.shape[0], model.output_dim
    # The solve runs on the driver: Y and the weights come here (m d_y + m floats), checked first.
    Y, w = (compute(dask, client, A)[0] if isinstance(A, da.Array) else A for A in (Y, weights))
    Y, w = loss.check_targets(Y, d, m), as_weights(w, m)
    grid = _gram_array(dask, da, model, theta, Xd, threads).to_delayed()
    pairs = [(i, j) for i in range(grid.shape[0]) for j in range(i, grid.shape[0])]
    blocks = compute(dask, client, *(grid[i, j] for i, j in pairs))
    at = np.concatenate([[0], np.cumsum([c * d for c in Xd.chunks[0]])])
    K = np.empty((m * d, m * d))
    for (i, j), blk in zip(pairs, blocks, strict=False):
        K[at[i] : at[i + 1], at[j] : at[j + 1]] = blk
        K[at[j] : at[j + 1], at[i] : at[i + 1]] = blk.T
    return K, Y, w


class _ChunkedProducts(JacobianProducts):
    """J W and J^T U computed chunk by chunk on the workers (one task per chunk and block)."""

    def __init__(self, dask, client, model, theta, Xd, threads):
        super().__init__(model, theta, None, threads)
        self.dask, self.client, self.Xd = dask, client, Xd
        self.chunks = Xd.to_delayed().ravel()
        d = model.output_dim
        self.at = np.concatenate([[0], np.cumsum([c * d for c in Xd.chunks[0]])])
        self.m_d, self.t_d = shared_keys(dask, model, theta)

    def jv(self, W: np.ndarray) -> np.ndarray:
        delayed = self.dask.delayed
        W_d = delayed(W, pure=True)
        tasks = [
            delayed(jvp_columns)(c, W_d, self.m_d, self.t_d, self.threads) for c in self.chunks
        ]
        return np.vstack(compute(self.dask, self.client, *tasks))

    def jtu(self, U: np.ndarray) -> np.ndarray:
        delayed = self.dask.delayed
        tasks = [
            delayed(vjp_columns)(
                c, U[self.at[i] : self.at[i + 1]], self.m_d, self.t_d, self.threads
            )
            for i, c in enumerate(self.chunks)
        ]
        return np.sum(compute(self.dask, self.client, *tasks), axis=0)


def _resolved_solve(
    dask, da, client, model, loss, theta, Xd, Y, weights, rank_tol, cuts, tol, max_iter, threads
):
    """Theorem 1's certificate over the numerical span: K from the workers, the left-out rows
    from J W / J^T U products on the workers (:mod:`gradbasis.solve.resolved_span`)."""
    K, Y, w = _gathered_gram(dask, da, client, model, theta, Xd, Y, weights, loss, threads)
    products = _ChunkedProducts(dask, client, model, theta, Xd, threads)
    res, _how = resolved_span_minimum(
        model,
        theta,
        None,
        loss,
        Y,
        w,
        rank_tol=rank_tol,
        cuts=cuts,
        tol=tol,
        max_iter=max_iter,
        gram=K,
        products=products,
        n_threads=threads,
    )
    return res


def _gram_solve(
    dask, da, client, model, loss, theta, Xd, Y, weights, rank_tol, cuts, tol, max_iter, threads
):
    """The ``gram`` strategy with K assembled from its blocks and alpha = sum_i J(X_i)^T beta_i."""
    d = model.output_dim
    K, Y, w = _gathered_gram(dask, da, client, model, theta, Xd, Y, weights, loss, threads)
    res, beta = solve_gram_pivoted(K, loss, Y, w, rank_tol, cuts, tol, max_iter, n_threads=threads)
    del K
    m_d, t_d = shared_keys(dask, model, theta)
    parts = da.map_blocks(
        coefficient_block,
        Xd,
        da.from_array(beta, chunks=(Xd.chunks[0], (d,))),
        m_d,
        t_d,
        threads,
        chunks=((1,) * len(Xd.chunks[0]), (model.num_params,)),
        dtype=np.float64,
        meta=np.empty((0, 0)),
    )
    (alpha,) = compute(
        dask, client, parts.sum(axis=0)
    )  # J alpha = the fitted outputs: the representer form
    return replace(res, alpha=alpha)
