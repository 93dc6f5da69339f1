"""The overparameterized ReLU network of Example 2 / footnote 1 (Kawaguchi et al., 2019).

With f(x) = W phi(x; u) + b and features phi(x_i; u) = h_H(x_i) of rank m over the m
samples, the gradient basis of the last layer alone already spans every output
(f_1, ..., f_m), so every differentiable critical point theta = vec(W) with this u is a
global minimum over all of (W, u). This module builds such a u explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._validation import as_float_array, as_samples
from ..errors import IndistinctSamplesError, ShapeError
from .layout import check_layer_sizes
from .mlp import MLP

__all__ = ["IndistinctSamplesError", "OverparameterizedReport", "overparameterized_init"]

_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class OverparameterizedReport:
    """What :func:`overparameterized_init` built, measured with the model's own forward pass.

    ``feature_rank`` is ``numpy.linalg.matrix_rank`` of the (m, d_H) matrix of last-hidden-
    layer features h_H(x_i) (default relative tolerance sigma_max * max(m, d_H) * eps);
    ``rank_ok`` is ``feature_rank >= num_samples``. ``kink_margin`` is
    ``model.kink_margin(theta, X)``: the smallest |pre-activation| over samples and ReLU
    units, > 0 so that theta is a differentiable point (not in Omega).
    """

    num_samples: int
    feature_rank: int
    rank_ok: bool
    kink_margin: float

    def __str__(self) -> str:
        ok = "ok" if self.rank_ok else "TOO LOW"
        return (
            f"overparameterized init: feature rank {self.feature_rank} over "
            f"{self.num_samples} samples ({ok}), kink margin {self.kink_margin:.3g}"
        )


def overparameterized_init(
    X: object,
    hidden_sizes: Sequence[int],
    output_dim: int,
    *,
    seed: int | np.random.Generator | None = 0,
    bias: bool = True,
) -> tuple[MLP, np.ndarray, OverparameterizedReport]:
    """A ReLU MLP and theta whose last hidden layer has rank-m features on the m rows of X.

    Returns ``(model, theta, report)`` with ``model = MLP([d_x, *hidden_sizes, output_dim],
    "relu", bias=bias)``. The construction (footnote 1 of the paper, made strictly
    differentiable):

    * Layer 1, unit j < m (one unit per sample): weight row u_j = x_j / ||x_j|| and bias
      -(||x_j|| - a_j), where ``gap_j = min_{i != j} u_j . (x_j - x_i)`` measures how far
      x_j sticks out of the other samples along its own direction and ``a_j = gap_j / 2``.
      Unit j's pre-activation is then +a_j at sample j and <= -a_j at every other sample:
      active on sample j only. This is the paper's row [x_j^raw, epsilon - 1] with
      epsilon = delta / 2 (per unit) instead of epsilon <= delta, so that no pre-activation
      is exactly 0 at the nearest other sample.
    * Layers l = 2..H: the first m units get W[j, j] = 1 and W[j, k] = -1 for the other
      k < m, bias 0. At sample i only unit i of the previous layer is on (value a_i), so
      unit j's pre-activation is a_j at i = j and -a_i < 0 otherwise: the one-active-unit
      pattern passes through unchanged, h_H(x_i) = a_i e_i. (The footnote's diagonal W
      would leave the inactive pre-activations at exactly 0, i.e. theta in Omega for H >= 2.)
    * Spare units (index >= m) get zero weights from the first m units and pre-activation
      <= -min_j a_j on every sample (bias -max_j a_j in layer 1, weights -1 from the first m
      units in later layers): dead, with margin.
    * The output layer W_{H+1}, b_{H+1} comes from ``model.init(seed)`` (random weights,
      zero bias); ``seed`` affects nothing else.

    So ``report.kink_margin`` = min_j a_j > 0 and the (m, d_H) feature matrix is diag(a) padded
    with zero columns: rank m.

    Requirements: every hidden width >= m; every sample must *stick out* along its own
    direction (gap_j > 0, above rounding: about 1e3 * d_x * eps * max ||x_i||). On the unit
    sphere, as the paper assumes (||x_i^raw|| = 1), this holds exactly when the samples are
    distinct; for raw data it can fail (a sample inside the others' hull, or two samples on
    one ray) - normalise the rows first, ``X / np.linalg.norm(X, axis=1, keepdims=True)``,
    and evaluate the model on the normalised X. Samples that coincide after normalisation
    can never be separated: :class:`IndistinctSamplesError` (a ValueError) says which.

    ``bias=False`` is the paper's own convention x_i = [x_i^raw, 1]: the last column of X
    must be one nonzero constant c (the first layer's bias enters through it) and the
    construction above is applied to X[:, :-1]; layers 2..H need no bias.
    """
    X = as_float_array(X, "X")
    if X.ndim != 2:
        raise ShapeError(f"X must be 2-D (samples, features); got shape {X.shape}")
    X = as_samples(X, X.shape[1])
    m, d_x = X.shape
    if isinstance(hidden_sizes, (str, bytes)) or np.ndim(hidden_sizes) != 1:
        raise ShapeError(
            f"hidden_sizes must be a list of widths [d_1, ..., d_H]; got {hidden_sizes!r}"
        )
    sizes = check_layer_sizes([d_x, *list(hidden_sizes), output_dim])
    hidden = sizes[1:-1]
    if not hidden:
        raise ShapeError("hidden_sizes is empty; the construction needs a hidden ReLU layer")
    narrow = [(l, w) for l, w in enumerate(hidden, start=1) if w < m]
    if narrow:
        l, w = narrow[0]
        raise ShapeError(
            f"hidden layer {l} has width {w} < m = {m} samples; every hidden layer needs at least "
            f"one unit per sample (widths {list(hidden)})"
        )

    if bias:
        raw, const = X, None
    else:
        raw, const = X[:, :-1], X[0, -1]
        if const == 0 or not np.all(X[:, -1] == const):
            raise ShapeError(
                "with bias=False the last column of X must be one nonzero constant (the paper's "
                "x_i = [x_i^raw, 1]); append a column of ones or use bias=True"
            )
        if raw.shape[1] == 0 and m > 1:
            raise IndistinctSamplesError(
                f"with bias=False, X has only the constant column: all {m} samples are equal"
            )

    a, first_w, first_b = _first_layer(raw)
    spare = float(a.max())  # dead units' pre-activation in layer 1: -spare <= -min(a)

    model = MLP([d_x, *hidden, output_dim], "relu", bias=bias)
    params = model.unflatten(model.init(seed))  # random output layer; the rest is set below
    H = len(hidden)

    W1 = np.zeros((hidden[0], d_x))
    b1 = np.full(hidden[0], -spare)
    W1[:m, : raw.shape[1]] = first_w
    b1[:m] = first_b
    if bias:
        params["W1"], params["b1"] = W1, b1
    else:
        W1[:, -1] = b1 / const  # the bias enters through the constant input column
        params["W1"] = W1

    for l in range(2, H + 1):
        W = np.zeros((hidden[l - 1], hidden[l - 2]))
        W[:, :m] = -1.0  # at sample i only unit i < m is on: every other unit sees -a_i
        W[np.arange(m), np.arange(m)] = 1.0  # ... and unit i itself sees +a_i
        params[f"W{l}"] = W
        if bias:
            params[f"b{l}"] = np.zeros(hidden[l - 1])
    theta = model.flatten(params)

    # Measure, do not assume: features and kink margin from the compiled forward pass.
    features = _last_hidden_features(model, theta, X)
    rank = int(np.linalg.matrix_rank(features))
    report = OverparameterizedReport(
        num_samples=m,
        feature_rank=rank,
        rank_ok=rank >= m,
        kink_margin=model.kink_margin(theta, X),
    )
    return model, theta, report


def _first_layer(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-sample activation levels a_j, weight rows u_j and biases of the first m units."""
    m, d = raw.shape
    if m == 1:
        # One sample: a constant unit (always on) already has rank 1.
        return np.ones(1), np.zeros((1, d)), np.ones(1)
    norms = np.linalg.norm(raw, axis=1)
    scale = float(norms.max())
    if scale == 0.0 or (norms == 0).any():
        j = int(np.argmin(norms))
        raise IndistinctSamplesError(
            f"sample {j} is the zero vector: it has no direction to normalise, and the "
            "construction needs nonzero inputs (the paper's ||x_i^raw|| = 1)"
        )
    U = raw / norms[:, None]
    # proj[j, i] = u_j . x_i; sample j sticks out along u_j iff ||x_j|| > proj[j, i] for all i != j.
    proj = U @ raw.T
    np.fill_diagonal(proj, -np.inf)
    nearest = np.argmax(proj, axis=1)
    gap = norms - proj[np.arange(m), nearest]
    tol = 1024.0 * max(d, 1) * _EPS * scale  # rounding of w . x + b in the forward pass
    bad = np.flatnonzero(gap <= tol)
    if bad.size:
        j = int(bad[np.argmin(gap[bad])])
        i = int(nearest[j])
        cos = float(U[j] @ U[i])
        if 1.0 - cos <= tol / scale:
            raise IndistinctSamplesError(
                f"samples {j} and {i} are not distinct after normalisation (x_{i} / ||x_{i}|| = "
                f"x_{j} / ||x_{j}|| up to rounding, cosine {cos!r}); no ReLU unit can be on "
                "for one and off for the other - remove duplicates"
            )
        raise IndistinctSamplesError(
            f"sample {j} does not stick out of the data along its own direction: sample {i} "
            f"reaches {-gap[j]:.3g} further (norms {norms[j]:.3g} vs {norms[i]:.3g}); the "
            "construction needs inputs of equal norm, as in the paper - use "
            "X / np.linalg.norm(X, axis=1, keepdims=True)"
        )
    a = gap / 2.0
    # u_j . x_i + b_j = (u_j . x_i - ||x_j||) + a_j: +a_j at i = j, <= a_j - gap_j = -a_j otherwise.
    return a, U, a - norms


def _last_hidden_features(model: MLP, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """h_H(x_i) for every sample, (m, d_H), from the compiled engine.

    The network without its output layer, MLP([d_x, d_1, ..., d_H]), shares theta's prefix
    (same parameter order) and returns the layer-H pre-activation; ReLU of it is h_H.
    """
    sizes = model.layer_sizes[:-1]
    trunk = MLP(list(sizes), "relu" if len(sizes) > 2 else [], bias=model.bias)
    pre = trunk.forward(theta[: trunk.num_params], X)
    return np.maximum(pre, 0.0)
