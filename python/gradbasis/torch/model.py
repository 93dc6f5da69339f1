"""TorchModel: any ``nn.Module`` whose last operation is an ``nn.Linear``, as a gradbasis model.

Every network whose output is an affine layer f = W h + b satisfies Assumption 2 with g = (W, b)
on that layer and 0 elsewhere, so Theorem 1's certificate applies to convolutional, residual,
normalised and embedding networks as they are; they run through ``torch.func`` in float64.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, jacrev, jvp, vjp, vmap

from .._memory import budget_bytes, check_allocation
from .._options import check_seed
from .._validation import as_samples, as_theta, as_threads
from ..errors import (
    DTypeError,
    UnsupportedModelError,
    UnsupportedModuleError,
)
from ..models.base import Model, check_finite_outputs
from ._gram import column_scale, gram_from_rows
from ._runtime import (
    chunk_spans,
    flat,
    flat_batch,
    load_forward_mode,
    params_batch,
    params_of,
    tensor,
    torch_threads,
)
from ._wrapping import (
    as_shape,
    check_chunk_size,
    check_input_dtype,
    check_modes,
    check_per_sample,
    find_output_layer,
    float64_copy,
    measure_costs,
    probe_batch,
    reinitialised,
    trainable_parameters,
)
from .kinks import record_kinks, record_patterns

__all__ = ["TorchModel"]

# Memory one chunk of samples may take (activations, its Jacobian rows) unless a budget says less.
_CHUNK_BYTES = 256 * 1024**2
# Directions handled together in the vectorised Hessian products (memory: this many sweeps).
_VECTORS = 32

_GRAPH_ONLY = (
    "a TorchModel has no {what}; this computation needs a gradbasis graph model (MLP, SkipMLP, "
    "ResNet, BasisModel); torch modules run classify_point, theorem1, minimize and the objective"
)

load_forward_mode()


class TorchModel(Model):
    """A PyTorch module as a gradbasis model: f(x; theta) = module(x) with theta its parameters.

    ``module``: any ``nn.Module`` whose output, shape (batch, d_y), is the output of an
    ``nn.Linear`` (Assumption 2's g(theta) is that layer's weight and bias). It is copied and
    computed in float64 (float32 weights widen exactly); batch norm, dropout and other random
    layers must be in eval mode; what ``torch.func`` cannot transform raises
    :class:`UnsupportedModuleError` naming the module or the operation. ``input_shape``: one
    sample's shape as the module takes it, e.g. ``(1, 8, 8)``; X holds one sample per row,
    prod(input_shape) values reshaped row-major. ``input_dtype``: ``"float64"`` or ``"long"``
    (token indices for an ``nn.Embedding``; X then holds whole numbers, checked).

    theta is the parameters with ``requires_grad=True`` in ``module.named_parameters()`` order
    (shared ones once), each flattened row-major, as ``torch.nn.utils.parameters_to_vector``
    does (:attr:`param_specs`, :meth:`unflatten`, :meth:`flatten`, :meth:`state_dict`). Frozen
    parameters and buffers (batch norm's running statistics) are held fixed.

    Forward, ``jvp`` and ``vjp`` run on chunks of samples (``chunk_size``, default from the
    activation memory measured on one sample, ~256 MiB a chunk), the Jacobian by
    ``vmap(jacrev)`` per chunk, the Gram matrix from Jacobian chunks (never J whole when it does
    not fit ``memory_budget``); exact up to the rounding of torch's float64 kernels. The kink
    margin covers the rectifiers and max-pools :mod:`gradbasis.torch.kinks` locates and is NaN
    (unknown), not +inf, when the network uses an operation whose kinks it cannot locate.
    """

    def __init__(
        self,
        module: nn.Module,
        input_shape: int | Sequence[int],
        *,
        input_dtype: str = "float64",
        chunk_size: int | None = None,
    ):
        if not isinstance(module, nn.Module):
            raise UnsupportedModuleError(
                f"module must be a torch nn.Module; got {type(module).__name__}"
            )
        self.input_shape = as_shape(input_shape)
        self.input_dtype = check_input_dtype(input_dtype)
        self._chunk_option = check_chunk_size(chunk_size)
        self._source = module
        self._module = float64_copy(module)
        check_modes(self._module)
        self._specs, self._theta0 = trainable_parameters(self._module)
        for p in self._module.parameters():
            p.requires_grad_(False)  # theta enters through functional_call only
        self._by_name = {s.name: s for s in self._specs}
        self._num_params = int(self._theta0.size)
        self._input_dim = int(np.prod(self.input_shape))
        probe = probe_batch(self.input_shape, input_dtype)
        self._output_layer, self._output_dim = find_output_layer(self._module, probe)
        if f"{self._output_layer}.weight" not in self._by_name:
            raise UnsupportedModuleError(
                f"the output layer {self._output_layer!r} (nn.Linear) has a frozen or shared weight, so f is "
                "not linear in a block of theta (Assumption 2); give it requires_grad=True and its own weight"
            )
        self._homogeneous = tuple(
            name
            for name in (f"{self._output_layer}.weight", f"{self._output_layer}.bias")
            if name in self._by_name
        )
        grad_params = {
            k: v.clone().requires_grad_(True)
            for k, v in params_of(self._specs, self._theta0).items()
        }
        saved, flops = measure_costs(lambda xb: self._call(grad_params, xb), probe[:1])
        self._per_sample_floats = saved + self._input_dim + self._output_dim
        self._per_sample_flops = flops
        self._jacobian_fn = vmap(jacrev(self._single), in_dims=(None, 0))
        params = params_of(self._specs, self._theta0)
        g = params_of(self._specs, self.homogeneity(self._theta0))
        check_per_sample(
            lambda xb: self._call(params, xb),
            lambda xb: vmap(self._single, in_dims=(None, 0))(params, xb),
            lambda xb: jvp(lambda p: self._call(p, xb), (params,), (g,))[1],
            probe,
            self._output_layer,
        )

    # ------------------------------------------------------------------ layout
    @property
    def runs_in_core(self) -> bool:
        return False

    @property
    def core_graph(self):  # type: ignore[override]
        raise UnsupportedModelError(_GRAPH_ONLY.format(what="a C++ graph"))

    @property
    def num_params(self) -> int:
        return self._num_params

    @property
    def input_dim(self) -> int:
        return self._input_dim

    @property
    def output_dim(self) -> int:
        return self._output_dim

    @property
    def module(self) -> nn.Module:
        """The float64 copy of the module that every computation runs on (do not modify it)."""
        return self._module

    @property
    def output_layer(self) -> str:
        """The name (in ``named_modules()``) of the ``nn.Linear`` whose output is f."""
        return self._output_layer

    @property
    def theta0(self) -> np.ndarray:
        """theta of the module as it was given (a copy)."""
        return self._theta0.copy()

    @property
    def depth(self) -> int:
        """Leaf modules that hold trainable parameters (at least 1): the depth factor of the
        rounding allowances."""
        owners = {name.rsplit(".", 1)[0] if "." in name else "" for name in self._by_name}
        return max(1, len(owners))

    def dense_layers(self):  # type: ignore[override]
        raise UnsupportedModelError(_GRAPH_ONLY.format(what="a list of dense layers"))

    def node_values(self, theta, X, node, *, n_threads=None):  # type: ignore[override]
        raise UnsupportedModelError(_GRAPH_ONLY.format(what="graph nodes"))

    def state_dict(self, theta: object) -> dict[str, torch.Tensor]:
        """The trainable parameters at theta as float64 tensors, keyed like ``module.state_dict()``
        (``module.load_state_dict(model.state_dict(theta), strict=False)`` loads them)."""
        return {
            k: v.clone()
            for k, v in params_of(self._specs, as_theta(theta, self.num_params)).items()
        }

    # ------------------------------------------------------------------ costs
    def activation_floats(self, m: int) -> int:
        return int(m * self._per_sample_floats)

    def forward_flops(self, m: int) -> float:
        return float(m * self._per_sample_flops)

    def gram_factor_floats(self, m: int) -> int:
        """Floats of the Jacobian chunks the Gram matrix is built from (two chunks at a time)."""
        return 2 * min(m, self._jacobian_chunk(None)) * self.output_dim * self.num_params

    def gram_kernel_flops(self, m: int) -> float:
        """J by reverse sweeps (about 3 forward passes per output) and J J^T (one triangle)."""
        n = m * self.output_dim
        return 3.0 * self.output_dim * self.forward_flops(m) + float(n) * n * self.num_params

    # ------------------------------------------------------------ computations
    def forward(self, theta: object, X: object, *, n_threads: int | None = None) -> np.ndarray:
        theta, X, threads = self._inputs(theta, X, n_threads)
        params = params_of(self._specs, theta)
        out = np.empty((X.shape[0], self.output_dim))
        with torch_threads(threads), torch.no_grad():
            for r0, r1 in self._chunks(X.shape[0]):
                out[r0:r1] = self._call(params, self._x(X[r0:r1])).numpy()
        check_finite_outputs(out)
        return out

    def jvp(
        self, theta: object, X: object, v: object, *, n_threads: int | None = None
    ) -> np.ndarray:
        theta, X, threads = self._inputs(theta, X, n_threads)
        v = as_theta(v, self.num_params, "v")
        params, tangents = params_of(self._specs, theta), params_of(self._specs, v)
        out = np.empty((X.shape[0], self.output_dim))
        with torch_threads(threads):
            for r0, r1 in self._chunks(X.shape[0]):
                xb = self._x(X[r0:r1])
                dout = jvp(lambda p, xb=xb: self._call(p, xb), (params,), (tangents,))[1]
                out[r0:r1] = dout.detach().numpy()
        return out

    def vjp(
        self, theta: object, X: object, U: object, *, n_threads: int | None = None
    ) -> np.ndarray:
        theta, X, threads = self._inputs(theta, X, n_threads)
        U = as_samples(U, self.output_dim, "U", num_samples=X.shape[0])
        params = params_of(self._specs, theta)
        total = torch.zeros(self.num_params, dtype=torch.float64)
        with torch_threads(threads):
            for r0, r1 in self._chunks(X.shape[0]):
                xb = self._x(X[r0:r1])
                pull = vjp(lambda p, xb=xb: self._call(p, xb), params)[1]
                total += flat(self._specs, pull(tensor(U[r0:r1]))[0])
        return total.numpy()

    def curvature_products(
        self, theta: object, X: object, U: object, V: object, *, n_threads: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """For the k columns v of V (num_params, k): (J v for each, shape (k, m, d_y); the
        second-order parts sum_i sum_l U_il (d^2 f_l(x_i) / d theta^2) v, shape (num_params, k)),
        by forward-over-reverse sweeps vectorised over the columns (``vmap``), a few at a time."""
        theta, X, threads = self._inputs(theta, X, n_threads)
        U = as_samples(U, self.output_dim, "U", num_samples=X.shape[0])
        V = np.asarray(V, dtype=np.float64).reshape(self.num_params, -1)
        params = params_of(self._specs, theta)
        k = V.shape[1]
        JV = np.empty((k, X.shape[0], self.output_dim))
        second = np.zeros((self.num_params, k))
        with torch_threads(threads):
            for c0, c1 in chunk_spans(k, _VECTORS):
                tangents = params_batch(self._specs, V[:, c0:c1])
                for r0, r1 in self._chunks(X.shape[0], max(1, self._chunk() // (c1 - c0))):
                    xb, Ub = self._x(X[r0:r1]), tensor(U[r0:r1])

                    def pulled(p, xb=xb, Ub=Ub):
                        f, pull = vjp(lambda q: self._call(q, xb), p)[:2]
                        return pull(Ub)[0], f

                    def along(t, pulled=pulled):
                        return jvp(pulled, (params,), (t,))[1]

                    d_pulled, d_f = vmap(along)(tangents)
                    JV[c0:c1, r0:r1] = d_f.detach().numpy()
                    second[:, c0:c1] += flat_batch(self._specs, d_pulled).T.numpy()
        return JV, second

    def vjps(
        self, theta: object, X: object, Us: object, *, n_threads: int | None = None
    ) -> np.ndarray:
        """J^T vec(U_j) for a stack Us of k cotangents (k, m, d_y): shape (num_params, k)."""
        theta, X, threads = self._inputs(theta, X, n_threads)
        Us = np.asarray(Us, dtype=np.float64)
        k = Us.shape[0]
        params = params_of(self._specs, theta)
        out = np.zeros((self.num_params, k))
        with torch_threads(threads):
            for r0, r1 in self._chunks(X.shape[0]):
                xb = self._x(X[r0:r1])
                pull = vjp(lambda p, xb=xb: self._call(p, xb), params)[1]
                for c0, c1 in chunk_spans(k, _VECTORS):
                    batch = tensor(np.ascontiguousarray(Us[c0:c1, r0:r1]))
                    out[:, c0:c1] += flat_batch(self._specs, vmap(pull)(batch)[0]).T.numpy()
        return out

    def jacobian(
        self,
        theta: object,
        X: object,
        *,
        n_threads: int | None = None,
        out: np.ndarray | None = None,
        memory_budget: int | None = None,
    ) -> np.ndarray:
        """Dense J = d f_X / d theta, shape (m d_y, num_params); row i d_y + k is the gradient of
        output k at sample i, columns in theta order. Sizes are checked against
        ``memory_budget`` before anything is allocated; chunks of samples by ``vmap(jacrev)``."""
        theta, X, threads = self._inputs(theta, X, n_threads)
        shape = (X.shape[0] * self.output_dim, self.num_params)
        if out is None:
            check_allocation(
                8 * shape[0] * shape[1],
                f"the dense Jacobian {shape[0]} x {shape[1]} (m*d_y x num_params)",
                memory_budget,
                "use jvp/vjp (matrix-free), the gram strategy, fewer samples, or pass a memory_budget",
            )
            out = np.empty(shape)
        else:
            self._check_out(out, shape)
        params = params_of(self._specs, theta)
        c = self._jacobian_chunk(memory_budget)
        with torch_threads(threads):
            for r0, r1 in self._chunks(X.shape[0], c, "Jacobian"):
                self._jacobian_rows(
                    params, X[r0:r1], out[r0 * self.output_dim : r1 * self.output_dim]
                )
        return out

    def gram(
        self,
        theta: object,
        X: object,
        X2: object | None = None,
        *,
        weights: Mapping[str, float] | None = None,
        n_threads: int | None = None,
        out: np.ndarray | None = None,
        memory_budget: int | None = None,
    ) -> np.ndarray:
        """K = J(X) C J(X2)^T (X2 None: K(X, X), exactly symmetric), C diagonal with
        ``weights[name]`` on parameter ``name`` (default 1). Built from Jacobian chunks: J whole
        when it fits ``memory_budget`` beside K, otherwise two chunks of samples at a time
        (chunks are then recomputed, once per pair). Agrees with J C J^T to rounding."""
        theta, X, threads = self._inputs(theta, X, n_threads)
        X2 = None if X2 is None else as_samples(X2, self.input_dim, "X2")
        params = params_of(self._specs, theta)
        with torch_threads(threads):
            return gram_from_rows(
                lambda Xp, buf: self._jacobian_rows(params, Xp, buf),
                X,
                X2,
                column_scale(weights, self._specs, self.num_params),
                out,
                d=self.output_dim,
                num_params=self.num_params,
                chunk=self._jacobian_chunk(budget_bytes(memory_budget)),
                budget=budget_bytes(memory_budget),
                check_out=self._check_out,
            )

    def gram_diagonal(
        self,
        theta: object,
        X: object,
        *,
        weights: Mapping[str, float] | None = None,
        n_threads: int | None = None,
    ) -> np.ndarray:
        """diag K(X, X): squared (weighted) norms of the Jacobian rows, a chunk at a time."""
        theta, X, threads = self._inputs(theta, X, n_threads)
        scale = column_scale(weights, self._specs, self.num_params)
        params = params_of(self._specs, theta)
        d, c = self.output_dim, self._jacobian_chunk(None)
        out = np.empty(X.shape[0] * d)
        with torch_threads(threads):
            for r0, r1 in self._chunks(X.shape[0], c, "Gram diagonal"):
                J = self._jacobian_rows(
                    params, X[r0:r1], np.empty(((r1 - r0) * d, self.num_params))
                )
                out[r0 * d : r1 * d] = np.einsum("ij,ij->i", J, J if scale is None else J * scale)
        return out

    def kink_margin(self, theta: object, X: object, *, n_threads: int | None = None) -> float:
        """Smallest distance of a rectifier's input to its kink, or of a max-pool window's
        largest entry to its runner-up, over the samples; 0 means theta is in Omega, +inf that
        the network met no kink, NaN that it uses an operation whose kinks are not located
        (:meth:`kink_report` names it)."""
        return self.kink_report(theta, X, n_threads=n_threads)[0]

    def kink_report(
        self, theta: object, X: object, *, n_threads: int | None = None
    ) -> tuple[float, tuple[str, ...], tuple[str, ...]]:
        """(margin, operations whose kinks were measured, operations with unlocated kinks)."""
        theta, X, threads = self._inputs(theta, X, n_threads)
        # The derivative of every kinked input along one seeded random direction (kinks module).
        v = params_of(self._specs, np.random.default_rng(0).standard_normal(self.num_params))
        with torch_threads(threads):
            rec = record_kinks(self._call, params_of(self._specs, theta), v, self._batches(X))
        return rec.result, tuple(sorted(rec.located)), tuple(sorted(rec.unknown))

    def activation_pattern(
        self, theta: object, X: object, *, n_threads: int | None = None
    ) -> list[np.ndarray]:
        """The activation region of theta on X: for every located kinked operation, in call
        order, the side of its kink(s) each input is on (the sign of a rectifier's input, the
        arg-max of a pooling window). Equal patterns: one smooth piece of f."""
        theta, X, threads = self._inputs(theta, X, n_threads)
        with torch_threads(threads):
            return record_patterns(self._call, params_of(self._specs, theta), self._batches(X))

    def init(self, seed: int | np.random.Generator | None = 0) -> np.ndarray:
        """theta of a fresh copy of the module whose submodules ran ``reset_parameters()`` with
        torch's generator seeded from ``seed`` (torch's own initialisation; the global torch
        random state is left as it was). Parameters of modules without ``reset_parameters``
        keep their values. Same seed, same theta."""
        return reinitialised(self._module, self._specs, check_seed(seed))

    # ----------------------------------------------------------- internals
    def _call(self, params: dict[str, torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
        return functional_call(self._module, params, (xb,))

    def _single(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return self._call(params, x.unsqueeze(0)).squeeze(0)

    def _batches(self, X: np.ndarray) -> Iterator[torch.Tensor]:
        return (self._x(X[r0:r1]) for r0, r1 in self._chunks(X.shape[0]))

    def _x(self, X: np.ndarray) -> torch.Tensor:
        x = tensor(X).reshape(X.shape[0], *self.input_shape)
        if self.input_dtype == "long":
            rounded = torch.round(x)
            if not bool((rounded == x).all()):
                raise DTypeError(
                    "X must hold whole numbers (token indices) for a model with input_dtype='long'"
                )
            return rounded.to(torch.long)
        return x

    def _jacobian_rows(self, params, X: np.ndarray, out: np.ndarray) -> np.ndarray:
        """J of samples X into ``out`` ((m d_y, P), C-contiguous), a chunk at a time."""
        d = self.output_dim
        dest = torch.from_numpy(out)
        for r0, r1 in self._chunks(X.shape[0], self._jacobian_chunk(None)):
            jac = self._jacobian_fn(params, self._x(X[r0:r1]))
            rows = dest[r0 * d : r1 * d]
            for s in self._specs:
                rows[:, s.offset : s.offset + s.size] = jac[s.name].reshape((r1 - r0) * d, s.size)
        return out

    def _chunk(self) -> int:
        if self._chunk_option is not None:
            return self._chunk_option
        return max(1, int(_CHUNK_BYTES // max(8 * self._per_sample_floats, 1)))

    def _jacobian_chunk(self, budget: int | None) -> int:
        """Samples per Jacobian chunk: rows (d_y of them per sample, num_params floats each)
        and vmap's per-sample activations within about 256 MiB, or a quarter of the budget."""
        limit = _CHUNK_BYTES if budget is None else max(min(_CHUNK_BYTES, budget // 4), 1)
        per_sample = 8 * (self.output_dim * (self.num_params + self._per_sample_floats))
        c = max(1, int(limit // max(per_sample, 1)))
        return min(c, self._chunk())

    def _chunks(
        self, m: int, size: int | None = None, what: str | None = None
    ) -> Iterator[tuple[int, int]]:
        return chunk_spans(m, size or self._chunk(), what)

    def _inputs(
        self, theta: object, X: object, n_threads: int | None
    ) -> tuple[np.ndarray, np.ndarray, int]:
        return (
            as_theta(theta, self.num_params),
            as_samples(X, self.input_dim),
            as_threads(n_threads),
        )

    # --------------------------------------------------------------- pickling
    def _constructor_arguments(self) -> tuple[tuple, dict]:
        return (self._source, self.input_shape), {
            "input_dtype": self.input_dtype,
            "chunk_size": self._chunk_option,
        }

    def _describe(self) -> str:
        return f"{type(self._module).__name__} {self.input_shape} -> {self.output_dim}, output layer {self._output_layer!r}"
