"""The Dask side of :mod:`gradbasis.solve.distributed`: the optional import, the inputs cut
into sample chunks, and the tasks the workers run (module-level functions, so that tasks are
pickled by reference)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import as_samples, as_weights
from ..errors import InvalidArgumentError, InvalidOptionError, ShapeError
from ..losses import Loss, get_loss
from ..models.base import Model
from ..objective import Objective

if TYPE_CHECKING:  # pragma: no cover
    import dask.array

BLOCK_BYTES = 64 * 2**20  # default chunking aims at blocks of about this size


def dask_modules():
    """(dask, dask.array), or an ImportError that names the extra to install."""
    try:
        import dask
        import dask.array as da
    except ImportError as exc:
        raise ImportError(
            "gradbasis.distributed needs Dask; install the extra with pip install 'gradbasis[distributed]' "
            "(dask[array] and distributed)"
        ) from exc
    return dask, da


# ----------------------------------------------------------------------------- inputs
def sample_chunks(
    da, X: Any, input_dim: int, chunk_size: int | None, default: int
) -> dask.array.Array:
    """X as a Dask array chunked along samples only (one chunk across the features)."""
    integer = isinstance(chunk_size, (int, np.integer)) and not isinstance(chunk_size, bool)
    if chunk_size is not None and not (integer and chunk_size >= 1):
        raise InvalidOptionError(
            f"chunk_size must be a positive number of samples; got {chunk_size!r}"
        )
    if isinstance(X, da.Array):
        if X.ndim != 2 or X.shape[1] != input_dim:
            raise ShapeError(f"X must be 2-D (samples, {input_dim}); got shape {X.shape}")
        if any(math.isnan(c) for c in X.chunks[0]):
            raise ShapeError("X has chunks of unknown size; call X.compute_chunk_sizes() first")
        return X.rechunk({0: int(chunk_size) if chunk_size is not None else X.chunks[0], 1: -1})
    X = as_samples(X, input_dim)
    return da.from_array(X, chunks=(int(chunk_size or default), input_dim))


def rows_like(da, A: Any, Xd: dask.array.Array, columns: int) -> dask.array.Array:
    """A 2-D array (m, columns) chunked by the same samples as Xd, one chunk across."""
    if not isinstance(A, da.Array):
        A = np.asarray(A)
    A = A.reshape(A.shape[0], -1) if A.ndim == 1 else A
    if A.ndim != 2 or A.shape != (Xd.shape[0], columns):
        raise ShapeError(
            f"expected shape ({Xd.shape[0]}, {columns}), one row per sample; got {A.shape}"
        )
    if isinstance(A, da.Array):
        return A.rechunk((Xd.chunks[0], (columns,)))
    return da.from_array(A, chunks=(Xd.chunks[0], (columns,)))


def problem_parts(problem: Objective | tuple) -> tuple[Model, Loss, Any, Any, Any]:
    """(model, loss, X, Y, weights) from an Objective or a tuple (model, loss, X, Y[, weights])."""
    if isinstance(problem, Objective):
        return problem.model, problem.loss, problem.X, problem.Y, problem.weights
    if isinstance(problem, tuple) and len(problem) in (4, 5) and isinstance(problem[0], Model):
        model, loss, X, Y, *weights = problem
        return model, get_loss(loss), X, Y, weights[0] if weights else None
    raise InvalidArgumentError(
        "the problem must be a gradbasis Objective or a tuple (model, loss, X, Y) or (model, loss, X, Y, weights); "
        f"got {type(problem).__name__}"
    )


def shared_keys(dask, model: Model, theta: np.ndarray):
    """The model and theta as single graph keys, so each reaches a worker once, not once per task."""
    return dask.delayed(model, pure=True), dask.delayed(theta, pure=True)


def compute(dask, client, *collections):
    """Compute on ``client`` when given, else on the default scheduler."""
    if client is None:
        return dask.compute(*collections)
    return tuple(client.compute(list(collections), sync=True))


# ----------------------------------------------------------------------------- worker tasks
# Module-level functions: tasks are pickled by reference and run in the workers.
def jacobian_block(X, model, theta, n_threads):
    return model.jacobian(theta, X, n_threads=n_threads)


def gram_block(model, theta, X1, X2, n_threads):
    """K(X1, X2); the diagonal blocks (X2 None) are exactly symmetric."""
    return model.gram(theta, X1, X2, n_threads=n_threads)


def tsqr_rows(X, Y, w, model, theta, w_ref, equal, n_threads):
    """One chunk's rows [J | y] (equal weights) or [J | S J | S y], S = diag(sqrt(lambda_i / w_ref))
    repeated per output, ordered like Jacobian rows."""
    Y = get_loss("squared").check_targets(Y, model.output_dim, X.shape[0]).reshape(-1, 1)
    J = model.jacobian(theta, X, n_threads=n_threads)
    if equal:
        return np.hstack([J, Y])
    s = np.repeat(np.sqrt(as_weights(w[:, 0], X.shape[0]) / w_ref), model.output_dim)[:, None]
    return np.hstack([J, s * J, s * Y])


def fitted_block(X, model, theta, alpha, n_threads):
    return model.jvp(theta, X, alpha, n_threads=n_threads)


def coefficient_block(X, beta, model, theta, n_threads):
    """J(X_i)^T beta_i as one row: the chunk's share of alpha = J^T beta."""
    return model.vjp(theta, X, beta, n_threads=n_threads)[None, :]


def jvp_columns(X, W, model, theta, n_threads):
    """J(X_i) W for a block of directions W (num_params x b): rows of the chunk, b columns."""
    cols = [model.jvp(theta, X, W[:, j], n_threads=n_threads).ravel() for j in range(W.shape[1])]
    return np.stack(cols, axis=1)


def vjp_columns(X, U, model, theta, n_threads):
    """J(X_i)^T U_i for the chunk's rows U_i (c d_y x b): the chunk's share of J^T U."""
    d = model.output_dim
    cols = [
        model.vjp(theta, X, U[:, j].reshape(-1, d), n_threads=n_threads) for j in range(U.shape[1])
    ]
    return np.stack(cols, axis=1)


# ----------------------------------------------------------------------------- arrays
def default_jacobian_chunk(model: Model) -> int:
    """Samples per chunk for blocks of J (with one extra column) of about BLOCK_BYTES."""
    cols = model.num_params + 1
    return max(1, BLOCK_BYTES // (8 * cols * model.output_dim), -(-2 * cols // model.output_dim))


def default_gram_chunk(model: Model) -> int:
    """Samples per chunk for square blocks of K of about BLOCK_BYTES."""
    return max(1, math.isqrt(BLOCK_BYTES // 8) // model.output_dim)
