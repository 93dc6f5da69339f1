"""Directions in V[theta, eps]: ||v|| <= 1 and f_X(theta + eps v) = f_X(theta).

Lemma 3 (and so Theorems 2-4) needs more than that: eps below the lemma's eps_0, so that
theta + eps v stays in theta's neighbourhood where it is a local minimum. For piecewise linear
networks the checkable part of that is the activation region: every kinked unit (relu, leaky
relu) keeps the sign of its pre-activation on every sample. A direction that leaves the region
at eps is shrunk (by factors of 10) until it stays; one that never does is rejected. Without
this, a dead relu unit with zero outgoing weights is revived by a large eps (f_X does not move)
and the analysis wrongly concludes theta is no local minimum.

Candidates come from the model's structure, then every one is verified numerically:

* ``layer_null`` — W^(l) += eps a b^T with b^T [h^(l-1)(x_i); 1] = 0 for every sample (the
  left null space of the layer's inputs, bias included): every pre-activation, hence every
  value in the network, is unchanged (section 3.3).
* ``output_null`` — perturbations killed by the linear map downstream: for a ``ResNet``,
  R += eps a b^T with W a = 0 (Theorem 3's construction); for an ``MLP``, W^(l)[J^(l), :] +=
  eps a b^T with a in Null(A^(H+1) ... A^(l+1)) on Theorem 4's locally linear units J.
* ``dead_units`` — incoming weights of relu units whose pre-activation is negative on every
  sample (the unit stays dead for small eps).
* ``zero_outgoing`` — incoming weights of units whose outgoing weights are all exactly 0.

Each kind forms one family closed under sums for small eps (every member leaves every value
the family relies on unchanged), so besides the basis directions themselves S holds random
points of each family's unit ball: J(theta + eps v) is a polynomial in v, and sums reach the
cross terms (e.g. Theorem 4's chains through several layers) that single directions miss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from .. import _core
from .._options import (
    Seed,
    check_seed,
    finite_nonnegative,
    nonnegative_whole,
    positive_step,
    relative_cut,
)
from .._validation import as_samples, as_theta
from ..errors import UnknownNameError
from ..models.base import DenseLayer, Model, check_model
from ..models.mlp import MLP
from ..models.resnet import ResNet
from ..verdict import jsonable
from .linear_units import unit_sets

__all__ = [
    "KINDS",
    "PerturbationSet",
    "Rejection",
    "check_kinds",
    "perturbation_directions",
    "same_activation_region",
    "verified_directions",
]

KINDS = ("layer_null", "output_null", "dead_units", "zero_outgoing")

#: How many times a candidate that leaves the activation region is shrunk by 10 before it is
#: rejected (see :func:`perturbation_directions`).
SHRINK_STEPS = 3


@dataclass(frozen=True)
class Rejection:
    """A candidate that failed verification, and why."""

    kind: str
    reason: str
    change: float  # ||f_X(theta + eps v) - f_X(theta)||_inf (nan when not evaluated)


@dataclass(frozen=True)
class PerturbationSet:
    """A verified finite S subset of V[theta, eps].

    ``directions`` is (|S|, num_params); row j has norm <= 1, moved f_X by ``changes[j]``
    <= ``tol`` (infinity norm) at theta + eps * row, and keeps theta's activation region there
    (:func:`same_activation_region`). ``kinds[j]`` names its family; combined directions are
    tagged ``"<kind>+"``. ``candidates`` counts the structural basis directions found per kind
    before the budget; ``truncated`` how many of them the budget left out. ``scales[j]`` is the
    factor (1, 0.1, 0.01, ...) by which row j was shrunk from its candidate to stay in the
    activation region, and ``shrunk`` counts the rows with a factor below 1.
    """

    directions: np.ndarray = field(repr=False)
    kinds: tuple[str, ...] = field(repr=False)
    changes: np.ndarray = field(repr=False)
    eps: float
    tol: float
    candidates: dict
    truncated: int
    rejected: tuple[Rejection, ...] = field(repr=False)
    scales: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    shrunk: int = 0

    def __len__(self) -> int:
        return int(self.directions.shape[0])

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for k in self.kinds:
            out[k] = out.get(k, 0) + 1
        return out

    def to_dict(self) -> dict:
        return cast(
            dict,
            jsonable(
                {
                    "size": len(self),
                    "eps": self.eps,
                    "tol": self.tol,
                    "counts": self.counts(),
                    "candidates": self.candidates,
                    "truncated": self.truncated,
                    "rejected": len(self.rejected),
                    "shrunk": self.shrunk,
                    "min_scale": float(self.scales.min()) if self.scales.size else 1.0,
                    "max_change": float(self.changes.max()) if self.changes.size else 0.0,
                }
            ),
        )


def check_kinds(kinds: Sequence[str]) -> Sequence[str]:
    """``kinds`` itself when every name is one of :data:`KINDS`, else UnknownNameError."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or isinstance(kinds, str):
        raise UnknownNameError(
            f"unknown perturbation kinds {unknown or kinds!r}; choose from {KINDS}"
        )
    return kinds


# ----------------------------------------------------------------------------- families
def _row_perturbations(
    layer: DenseLayer, rows: np.ndarray, coeffs: np.ndarray, num_params: int
) -> np.ndarray:
    """Directions W[r, :] += c[:in_dim], b[r] += c[in_dim] for every r in rows and every
    coefficient vector c (rows of ``coeffs``; the bias entry is dropped without a bias)."""
    out = []
    for r in rows:
        for c in coeffs:
            v = np.zeros(num_params)
            # W is column-major (out_dim x in_dim): entry (r, j) sits at offset + r + j * out_dim.
            v[layer.weight.offset + r + layer.out_dim * np.arange(layer.in_dim)] = c[: layer.in_dim]
            if layer.bias is not None:
                v[layer.bias.offset + r] = c[layer.in_dim]
            out.append(v)
    return np.array(out).reshape(-1, num_params)


def _outer_perturbations(
    layer: DenseLayer, rows: np.ndarray, a_vectors: np.ndarray, num_params: int
) -> np.ndarray:
    """Directions W[rows, :] += a e_j^T (and the bias with e_bias) for each a (rows of
    ``a_vectors``, unit length, indexed like ``rows``) and each input coordinate j."""
    bias = layer.bias
    width = layer.in_dim + (bias is not None)
    out = []
    for a in a_vectors:
        for j in range(width):
            v = np.zeros(num_params)
            if j < layer.in_dim:
                v[layer.weight.offset + rows + layer.out_dim * j] = a
            elif bias is not None:  # j == in_dim: the bias column
                v[bias.offset + rows] = a
            out.append(v)
    return np.array(out).reshape(-1, num_params)


def _with_ones(H: np.ndarray, bias: bool) -> np.ndarray:
    return np.hstack([H, np.ones((H.shape[0], 1))]) if bias else H


def _null(A: np.ndarray, rtol: float | None) -> np.ndarray:
    """Orthonormal basis (as columns) of {b : A b = 0}, computed in the C++ core."""
    A = np.ascontiguousarray(A, dtype=np.float64)
    if rtol is None:
        rtol = max(A.shape) * float(np.finfo(np.float64).eps)
    return np.asarray(_core.null_basis(A, float(rtol)).basis)


def _layer_null(model: Model, theta: np.ndarray, X: np.ndarray, rtol: float | None) -> np.ndarray:
    blocks = []
    for layer in model.dense_layers():
        H = _with_ones(model.node_values(theta, X, layer.input_node), layer.bias is not None)
        N = _null(H, rtol)
        if N.shape[1]:
            blocks.append(
                _row_perturbations(layer, np.arange(layer.out_dim), N.T, model.num_params)
            )
    return np.vstack(blocks) if blocks else np.zeros((0, model.num_params))


def _output_null(
    model: Model, theta: np.ndarray, X: np.ndarray, rtol: float | None, margin: float
) -> np.ndarray:
    P = model.num_params
    if isinstance(model, ResNet):
        by_name = {l.weight.name: l for l in model.dense_layers()}
        W = model.unflatten(theta)["W"]
        N = _null(W, rtol)  # a with W a = 0, a in R^{d_x}
        R = by_name["R"]
        return (
            _outer_perturbations(R, np.arange(R.out_dim), N.T, P)
            if N.shape[1]
            else np.zeros((0, P))
        )
    if isinstance(model, MLP):
        sets = unit_sets(model, theta, X, margin).sets
        layers = model.dense_layers()
        params = model.unflatten(theta)
        H = len(layers) - 1
        blocks = []
        M = np.eye(layers[H].out_dim)  # A^(H+1) ... A^(l+1) restricted to the linear units
        for l in range(H, 0, -1):  # layer l (1-based) = layers[l - 1]
            W_next = params[layers[l].weight.name]
            M = M @ W_next[np.ix_(sets[l], sets[l - 1])]
            rows = sets[l - 1]
            if rows.size == 0:
                break
            N = _null(M, rtol)
            if N.shape[1]:
                blocks.append(_outer_perturbations(layers[l - 1], rows, N.T, P))
        return np.vstack(blocks) if blocks else np.zeros((0, P))
    return np.zeros((0, P))


def _consumers(model: Model) -> dict[int, list[int]]:
    g = model.core_graph
    out: dict[int, list[int]] = {k: [] for k in range(g.num_nodes)}
    for k in range(g.num_nodes):
        info = g.node_info(k)
        for src in (info["src"], info["src2"]):
            if src >= 0:
                out[src].append(k)
    return out


def _unit_families(
    model: Model, theta: np.ndarray, X: np.ndarray, dead_margin: float
) -> tuple[np.ndarray, np.ndarray]:
    """(dead_units, zero_outgoing) directions: incoming-row perturbations of activation units
    that are dead on every sample (relu) or whose outgoing weights are all 0."""
    g = model.core_graph
    P = model.num_params
    dense = {l.node: l for l in model.dense_layers()}
    params = model.unflatten(theta)
    consumers = _consumers(model)
    dead, zero = [], []
    for k in range(g.num_nodes):
        info = g.node_info(k)
        if info["kind"] != _core.NodeKind.activation or info["src"] not in dense:
            continue
        layer = dense[info["src"]]
        width = layer.in_dim + (layer.bias is not None)
        basis = np.eye(width)
        users = consumers[k]
        if users and k != g.output and all(u in dense and dense[u].input_node == k for u in users):
            silent = np.ones(layer.out_dim, bool)
            for u in users:
                silent &= np.all(params[dense[u].weight.name] == 0.0, axis=0)
            if silent.any():
                zero.append(_row_perturbations(layer, np.flatnonzero(silent), basis, P))
        if info["activation"] == _core.ActivationKind.relu:  # dead units
            pre = model.node_values(theta, X, layer.node)
            rows = np.flatnonzero(pre.max(axis=0) < -dead_margin)
            if rows.size:
                dead.append(_row_perturbations(layer, rows, basis, P))
    stack = lambda b: np.vstack(b) if b else np.zeros((0, P))  # noqa: E731
    return stack(dead), stack(zero)


# ----------------------------------------------------------------------------- activation regions
def kinked_sources(model: Model) -> list[int]:
    """Graph nodes feeding an activation with a kink (relu; leaky relu unless its slope is 1):
    their values are the pre-activations whose signs fix the activation region. The same units
    as the C++ kink margin (``Activation::has_kink``)."""
    g = model.core_graph
    out = []
    for k in range(g.num_nodes):
        info = g.node_info(k)
        if info["kind"] != _core.NodeKind.activation:
            continue
        kind = info["activation"]
        if kind == _core.ActivationKind.relu or (
            kind == _core.ActivationKind.leaky_relu and info["negative_slope"] != 1.0
        ):
            out.append(int(info["src"]))
    return out


def activation_region(
    model: Model, theta: np.ndarray, X: np.ndarray, sources: list[int]
) -> list[np.ndarray]:
    """The sign (-1, 0, +1) of every kinked unit's pre-activation on every sample."""
    return [np.sign(model.node_values(theta, X, src)) for src in sources]


def regions_equal(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=False))


def same_activation_region(model: Model, theta: object, theta2: object, X: object) -> bool:
    """Whether theta2 lies in theta's activation region on the samples X: every kinked unit
    (relu, leaky relu with slope != 1) has a pre-activation of the same sign (-1, 0 or +1) at
    theta2 as at theta, on every sample. Inside one region a piecewise linear network is one
    smooth function of theta, so Lemma 3's argument applies to the segment between the two.
    Models without kinked units are one region: always True."""
    model = check_model(model)
    theta = as_theta(theta, model.num_params)
    theta2 = as_theta(theta2, model.num_params, "theta2")
    X = as_samples(X, model.input_dim)
    sources = kinked_sources(model)
    return regions_equal(
        activation_region(model, theta, X, sources), activation_region(model, theta2, X, sources)
    )


# ----------------------------------------------------------------------------- public API
def perturbation_directions(
    model: Model,
    theta: object,
    X: object,
    *,
    eps: float = 1e-2,
    kinds: Sequence[str] = KINDS,
    budget: int = 256,
    combinations: int = 16,
    tol: float | None = None,
    null_rtol: float | None = None,
    margin: float = 1e-8,
    seed: int = 0,
    shrink_steps: int = SHRINK_STEPS,
) -> PerturbationSet:
    """A verified set S of directions in V[theta, eps] (see the module docstring).

    Parameters
    ----------
    eps : the step of Theorem 2 (> 0); directions are verified at theta + eps * v.
    kinds : which families to build, from :data:`KINDS`.
    budget : at most this many directions in S; when the structural basis directions exceed
        it, a seeded random subset is kept (``truncated`` counts the rest).
    combinations : random points of each family's unit ball added to S (see module docstring).
    tol : accept v when ||f_X(theta + eps v) - f_X(theta)||_inf <= tol; default
        1e-10 * max(1, ||f_X(theta)||_inf), a few hundred roundings of the outputs.
    null_rtol : relative singular-value cut of the null-space bases (default max(shape) * eps).
    margin : pre-activation margin for units counted linear (``output_null`` on an MLP) or
        dead (``dead_units``).
    shrink_steps : a candidate v that passes the f_X check but takes a kinked unit across its
        kink at theta + eps v (a different activation region, so possibly beyond Lemma 3's
        eps_0) is replaced by v / 10, v / 100, ... (this many tries, each re-checked for f_X and
        the region); it is rejected when none stays in the region.
    """
    model = check_model(model)
    theta = as_theta(theta, model.num_params)
    X = as_samples(X, model.input_dim)
    return verified_directions(
        model,
        theta,
        X,
        eps=positive_step(eps),
        null_rtol=None if null_rtol is None else relative_cut(null_rtol, "null_rtol"),
        seed=check_seed(seed),
        kinds=check_kinds(kinds),
        budget=nonnegative_whole(budget, "budget"),
        combinations=nonnegative_whole(combinations, "combinations"),
        margin=finite_nonnegative(margin, "margin"),
        shrink_steps=nonnegative_whole(shrink_steps, "shrink_steps"),
        tol=None if tol is None else finite_nonnegative(tol, "tol"),
    )


def verified_directions(
    model: Model,
    theta: np.ndarray,
    X: np.ndarray,
    *,
    eps: float,
    kinds: Sequence[str],
    budget: int,
    combinations: int,
    margin: float,
    seed: Seed,
    tol: float | None = None,
    null_rtol: float | None = None,
    shrink_steps: int = SHRINK_STEPS,
) -> PerturbationSet:
    """:func:`perturbation_directions` on checked inputs: theta and X float64 arrays of the
    model's shapes (:func:`gradbasis._validation.as_theta`, ``as_samples``) and every option as
    its check returns it (``tol`` None for the default)."""
    f0 = model.forward(theta, X)
    if tol is None:
        tol = 1e-10 * max(1.0, float(np.abs(f0).max()))
    rng = np.random.default_rng(seed)

    families: dict[str, np.ndarray] = {}
    if "layer_null" in kinds:
        families["layer_null"] = _layer_null(model, theta, X, null_rtol)
    if "output_null" in kinds:
        families["output_null"] = _output_null(model, theta, X, null_rtol, margin)
    if "dead_units" in kinds or "zero_outgoing" in kinds:
        dead, zero = _unit_families(model, theta, X, margin)
        if "dead_units" in kinds:
            families["dead_units"] = dead
        if "zero_outgoing" in kinds:
            families["zero_outgoing"] = zero
    families = {k: F for k, F in families.items() if F.shape[0]}

    # Combined directions: random points of each family's unit ball (radius in [1/2, 1]).
    combos, combo_kinds = [], []
    per_family = min(combinations, budget // max(1, 2 * len(families))) if families else 0
    for kind, F in families.items():
        for _ in range(per_family):  # a one-direction family still gains from other radii
            v = rng.standard_normal(F.shape[0]) @ F
            combos.append(v * (rng.uniform(0.5, 1.0) / np.linalg.norm(v)))
            combo_kinds.append(kind + "+")
    singles = np.vstack(list(families.values())) if families else np.zeros((0, model.num_params))
    single_kinds = [k for k, F in families.items() for _ in range(F.shape[0])]
    room = budget - len(combos)
    truncated = max(0, singles.shape[0] - room)
    if truncated:
        keep = np.sort(rng.choice(singles.shape[0], size=room, replace=False))
        singles, single_kinds = singles[keep], [single_kinds[i] for i in keep]
    cand = np.vstack([singles, *combos]) if combos else singles
    cand_kinds = single_kinds + combo_kinds

    accepted, kinds_out, changes, rejected, scales = [], [], [], [], []
    sources = kinked_sources(model)
    region0 = activation_region(model, theta, X, sources) if sources else []
    for v, kind in zip(cand, cand_kinds, strict=False):
        norm = float(np.linalg.norm(v))
        if norm > 1.0 + 1e-12:
            rejected.append(Rejection(kind, f"||v|| = {norm:.6g} > 1", float("nan")))
            continue
        outcome: Rejection | tuple[float, float] | None = None
        for step in range(shrink_steps + 1):
            scale = 10.0 ** (-step)
            moved = theta + eps * (scale * v)
            change = float(np.abs(model.forward(moved, X) - f0).max())
            if not change <= tol:
                outcome = Rejection(
                    kind,
                    f"f_X moved by {change:.3g} > tol {tol:.3g}"
                    + (
                        f" (v shrunk by {scale:g} to stay in the activation region)" if step else ""
                    ),
                    change,
                )
                break
            if sources and not regions_equal(region0, activation_region(model, moved, X, sources)):
                outcome = Rejection(
                    kind,
                    "theta + eps v leaves theta's activation region (a kinked unit changes the sign of "
                    "its pre-activation on some sample)"
                    + (f", and so does every v shrunk down to {scale:g} v" if step else "")
                    + "; eps is beyond Lemma 3's eps_0 for this direction",
                    change,
                )
                continue
            if sources and model.kink_margin(moved, X) == 0.0:
                outcome = Rejection(kind, "theta + eps v puts a kinked unit exactly at 0", change)
                break
            outcome = (scale, change)
            break
        if isinstance(outcome, Rejection):
            rejected.append(outcome)
            continue
        assert outcome is not None  # the loop above runs at least once
        scale, change = outcome
        accepted.append(scale * v)
        kinds_out.append(kind)
        changes.append(change)
        scales.append(scale)
    return PerturbationSet(
        directions=np.array(accepted).reshape(-1, model.num_params),
        kinds=tuple(kinds_out),
        changes=np.array(changes),
        eps=eps,
        tol=float(tol),
        candidates={k: int(F.shape[0]) for k, F in families.items()},
        truncated=int(truncated),
        rejected=tuple(rejected),
        scales=np.array(scales, dtype=np.float64),
        shrunk=int(sum(1 for sc in scales if sc < 1.0)),
    )
