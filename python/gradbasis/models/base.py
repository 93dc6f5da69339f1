"""The model base class: a named, ordered parameter layout over a C++ graph.

Subclasses only describe their architecture to a :class:`GraphBuilder`; every
computation (forward, Jacobian, JVP, VJP, kink margin) runs in the shared C++ engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from .. import _core
from .._memory import check_allocation
from .._options import check_seed, show
from .._validation import as_float_array, as_samples, as_theta, as_threads, check_finite
from ..errors import (
    InvalidArgumentError,
    InvalidOptionError,
    NonFiniteError,
    ShapeError,
    UnknownNameError,
    UnsupportedModelError,
)
from .builder import GraphBuilder, ParamSpec
from .gram_overflow import recompute_nonfinite_rows


@dataclass(frozen=True)
class DenseLayer:
    """One dense node of the graph: value = W @ value(input_node) (+ b).

    ``weight``/``bias`` are the parameter blocks (``bias`` None without one); ``node`` and
    ``input_node`` index the graph, so :meth:`Model.node_values` gives the layer's output
    (pre-activation) and its input h for every sample.
    """

    node: int
    input_node: int
    in_dim: int
    out_dim: int
    weight: ParamSpec
    bias: ParamSpec | None


class Model:
    """Base class of every gradbasis model f(x; theta): R^{d_x} -> R^{d_y}.

    theta is flat, ordered block by block as :attr:`param_specs` lists them; each weight
    matrix is stored column-major (the paper's vec). Jacobian row ``i * d_y + k`` is the
    gradient of output k at sample i.
    """

    # (args, kwargs) that rebuild the model (see __reduce__): a method of every concrete class,
    # declared here only as a type so that Model itself does not count as defining it.
    _constructor_arguments: Callable[[], tuple[tuple, dict]]

    def __init__(self, builder: GraphBuilder, output: int, homogeneous: tuple[str, ...]):
        builder.finalize(output)
        self._graph = builder.graph
        self._specs = tuple(builder.params)
        self._by_name = {s.name: s for s in self._specs}
        # Blocks on which f is linear: f_X(theta) = J g(theta) with g = theta there, 0 elsewhere.
        self._homogeneous = homogeneous

    @property
    def runs_in_core(self) -> bool:
        """Whether the model runs in the C++ graph (the objective then runs there too); a
        :class:`gradbasis.torch.TorchModel` runs in torch."""
        return True

    @property
    def core_graph(self) -> _core.Graph:
        """Internal: the C++ graph (gradbasis._core.Graph) that every computation of the model
        runs on; the objective and the structural checks hand it to the core as well."""
        return self._graph

    # ----------------------------------------------------------------- layout
    @property
    def num_params(self) -> int:
        return int(self._graph.num_params)

    @property
    def input_dim(self) -> int:
        return int(self._graph.input_dim)

    @property
    def output_dim(self) -> int:
        return int(self._graph.output_dim)

    @property
    def param_specs(self) -> tuple[ParamSpec, ...]:
        """The parameter blocks in theta order."""
        return self._specs

    @property
    def depth(self) -> int:
        """The number of dense layers (at least 1): the depth factor of rounding allowances."""
        return max(1, len(self.dense_layers()))

    def dense_layers(self) -> tuple[DenseLayer, ...]:
        """Every dense layer in evaluation order (inputs before outputs)."""
        by_offset = {s.offset: s for s in self._specs}
        layers = []
        for k in range(self._graph.num_nodes):
            info = self._graph.node_info(k)
            if info["kind"] != _core.NodeKind.dense:
                continue
            src = info["src"]
            layers.append(
                DenseLayer(
                    node=k,
                    input_node=src,
                    in_dim=int(self._graph.node_info(src)["dim"]),
                    out_dim=int(info["dim"]),
                    weight=by_offset[info["weight_offset"]],
                    bias=by_offset[info["bias_offset"]] if info["bias_offset"] >= 0 else None,
                )
            )
        return tuple(layers)

    def node_values(
        self, theta: object, X: object, node: int, *, n_threads: int | None = None
    ) -> np.ndarray:
        """Values of graph node ``node`` for every sample, shape (m, dim): e.g. a layer's input
        h^(l-1)(x_i) (``DenseLayer.input_node``) or its pre-activation (``DenseLayer.node``)."""
        theta, X, threads = self._inputs(theta, X, n_threads)
        if (
            isinstance(node, (bool, np.bool_))
            or not isinstance(node, (int, np.integer))
            or not 0 <= node < self._graph.num_nodes
        ):
            raise InvalidOptionError(
                f"node must be an index in 0..{self._graph.num_nodes - 1}; got {show(node)}"
            )
        out = np.empty((X.shape[0], int(self._graph.node_info(int(node))["dim"])))
        self._graph.node_values(theta, X, int(node), out, threads)
        return out

    def unflatten(self, theta: object) -> dict[str, np.ndarray]:
        """Named arrays (copies) from flat theta, in theta order."""
        theta = as_theta(theta, self.num_params)
        return {
            s.name: theta[s.offset : s.offset + s.size].reshape(s.shape, order=s.order).copy()
            for s in self._specs
        }

    def flatten(self, params: Mapping[str, object]) -> np.ndarray:
        """Flat theta from named arrays (every name of :attr:`param_specs`, nothing else)."""
        missing = [s.name for s in self._specs if s.name not in params]
        extra = [k for k in params if k not in self._by_name]
        if missing or extra:
            raise ShapeError(
                f"parameter names do not match the model: missing {missing}, unknown {extra}"
            )
        theta = np.empty(self.num_params)
        for s in self._specs:
            arr = as_float_array(params[s.name], s.name)
            if arr.shape != s.shape:
                raise ShapeError(f"parameter {s.name} has shape {arr.shape}; expected {s.shape}")
            theta[s.offset : s.offset + s.size] = arr.reshape(-1, order=s.order)
        check_finite(theta, "params")
        return theta

    def init(self, seed: int | np.random.Generator | None = 0) -> np.ndarray:
        """Scaled random theta: weights N(0, gain^2 / fan_in) (He gain for rectifiers,
        LeCun otherwise), biases 0. Same seed, same theta. ``seed`` is None, an integer >= 0 or
        a numpy.random.Generator."""
        rng = np.random.default_rng(check_seed(seed))
        check_allocation(
            8 * self.num_params,
            f"theta of {self.num_params} parameters",
            None,
            "use a smaller model",
        )
        theta = np.zeros(self.num_params)
        for s in self._specs:
            if s.init_std > 0:
                theta[s.offset : s.offset + s.size] = rng.normal(0.0, s.init_std, s.size)
        return theta

    # ------------------------------------------------------------ computations
    def forward(self, theta: object, X: object, *, n_threads: int | None = None) -> np.ndarray:
        """f_X(theta): outputs (m, d_y). Outputs beyond float64 (finite theta and X whose
        products overflow) raise NonFiniteError rather than coming back as inf or NaN."""
        theta, X, threads = self._inputs(theta, X, n_threads)
        out = np.empty((X.shape[0], self.output_dim))
        self._graph.forward(theta, X, out, threads)
        check_finite_outputs(out)
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
        """Dense Jacobian J = d f_X / d theta, shape (m * d_y, num_params), exact.

        Row ``i * d_y + k`` is the gradient of output k at sample i. The size is checked
        against ``memory_budget`` (bytes; default the memory available now) before anything
        is allocated. Pass ``out`` (float64, C-contiguous, right shape) to reuse a buffer.
        """
        theta, X, threads = self._inputs(theta, X, n_threads)
        shape = (X.shape[0] * self.output_dim, self.num_params)
        if out is None:
            check_allocation(
                8 * shape[0] * shape[1],
                f"the dense Jacobian {shape[0]} x {shape[1]} (m*d_y x num_params)",
                memory_budget,
                "use jvp/vjp (matrix-free), fewer samples per call, or pass a memory_budget",
            )
            out = np.empty(shape)
        else:
            self._check_out(out, shape)
        self._graph.jacobian(theta, X, out, threads)
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
        """The Gram matrix (empirical NTK) K = J(X) C J(X2)^T without forming J.

        Shape (m d_y, m2 d_y) with rows and columns ordered like Jacobian rows; X2 = None gives
        the symmetric K(X, X) (exactly symmetric). C is diagonal with ``weights[name]`` on every
        entry of parameter block ``name`` (default 1: K = J J^T). Computed layer by layer from
        the layer inputs and back-propagated output derivatives, tile by tile over sample pairs
        with two GEMMs each; agrees with J J^T to rounding (relative ~1e-15). The size of K and
        of the stored layer factors is checked against ``memory_budget`` (bytes; default the
        memory available now) before anything is allocated.

        Near the float64 limit a layer factor can overflow although K does not (an inf that
        meets an exact 0 gives NaN); the rows of the samples the kernel left non-finite are
        then recomputed from Jacobian rows, a chunk of samples at a time (into ``out`` too;
        the chunks are checked against ``memory_budget`` as well). Where K itself is beyond
        float64 this raises NonFiniteError, never returns inf or NaN (``out`` then holds
        partial results).
        """
        theta, X, threads = self._inputs(theta, X, n_threads)
        X2 = None if X2 is None else as_samples(X2, self.input_dim, "X2")
        r = self.output_dim
        m2 = X.shape[0] if X2 is None else X2.shape[0]
        shape = (X.shape[0] * r, m2 * r)
        w = self._gram_weights(weights)
        if out is None:
            check_allocation(
                8
                * (
                    shape[0] * shape[1]
                    + self.gram_factor_floats(X.shape[0] + (0 if X2 is None else m2))
                ),
                f"the Gram matrix {shape[0]} x {shape[1]} (m*d_y square) and its layer factors",
                memory_budget,
                "use the matrix-free path (strategy='matrix_free'), fewer samples, or pass a memory_budget",
            )
            out = np.empty(shape)
        else:
            self._check_out(out, shape)
        self._graph.gram(theta, X, X2, w, out, threads)
        if not np.isfinite(out).all():
            recompute_nonfinite_rows(self, theta, X, X2, w, out, threads, memory_budget)
        return out

    def gram_diagonal(
        self,
        theta: object,
        X: object,
        *,
        weights: Mapping[str, float] | None = None,
        n_threads: int | None = None,
    ) -> np.ndarray:
        """diag(K(X, X)) of :meth:`gram`, length m d_y, in O(m) memory (no K, no J).

        Entries the kernel leaves non-finite are recomputed from Jacobian rows, as in
        :meth:`gram` (a chunk of samples at a time, so memory stays bounded); where diag K
        itself is beyond float64 this raises NonFiniteError.
        """
        theta, X, threads = self._inputs(theta, X, n_threads)
        out = np.empty(X.shape[0] * self.output_dim)
        w = self._gram_weights(weights)
        self._graph.gram_diagonal(theta, X, w, out, threads)
        if not np.isfinite(out).all():
            recompute_nonfinite_rows(self, theta, X, None, w, out, threads, None)
        return out

    def gram_trace(
        self,
        theta: object,
        X: object,
        *,
        weights: Mapping[str, float] | None = None,
        n_threads: int | None = None,
    ) -> float:
        """trace K(X, X) = sum over samples and outputs of ||d f_k(x_i) / d theta||^2 (weighted)."""
        return float(self.gram_diagonal(theta, X, weights=weights, n_threads=n_threads).sum())

    def _gram_weights(self, weights: Mapping[str, float] | None) -> list[float]:
        """{c_W, c_b} per dense node in node order, from block names (default 1)."""
        weights = {} if weights is None else dict(weights)
        unknown = [k for k in weights if k not in self._by_name]
        if unknown:
            raise UnknownNameError(
                f"gram weights name unknown parameter blocks {unknown}; blocks are {list(self._by_name)}"
            )
        for k, v in weights.items():
            if not (
                isinstance(v, (int, float, np.floating, np.integer)) and np.isfinite(v) and v >= 0
            ):
                raise InvalidOptionError(
                    f"gram weight for {k!r} must be a finite number >= 0; got {show(v)}"
                )
        flat = []
        for layer in self.dense_layers():
            flat.append(float(weights.get(layer.weight.name, 1.0)))
            flat.append(float(weights.get(layer.bias.name, 1.0)) if layer.bias is not None else 0.0)
        return flat

    def gram_factor_floats(self, m: int) -> int:
        """Internal: floats of the layer inputs and output cotangents that the Gram kernel
        keeps for m samples (memory estimates of :meth:`gram` and the solve strategies)."""
        return sum(m * (l.in_dim + self.output_dim * l.out_dim) for l in self.dense_layers())

    def activation_floats(self, m: int) -> int:
        """Internal: floats of the per-sample values a forward and reverse sweep keep for m
        samples (the matrix-free strategy's memory estimate)."""
        return sum(m * (l.in_dim + l.out_dim) for l in self.dense_layers())

    def forward_flops(self, m: int) -> float:
        """Internal: flops of one forward pass over m samples (the strategies' cost estimates)."""
        return 2.0 * m * sum(l.in_dim * l.out_dim for l in self.dense_layers())

    def gram_kernel_flops(self, m: int) -> float:
        """Internal: flops of :meth:`gram` on m samples (the structured kernel, one triangle)."""
        n = m * self.output_dim
        return sum(float(n) * n * l.out_dim + float(m) * m * l.in_dim for l in self.dense_layers())

    @staticmethod
    def _check_out(out: object, shape: tuple[int, int]) -> None:
        if (
            not isinstance(out, np.ndarray)
            or out.dtype != np.float64
            or out.shape != shape
            or not out.flags.c_contiguous
            or not out.flags.writeable
        ):
            got = (getattr(out, "shape", None), getattr(out, "dtype", type(out)))
            raise ShapeError(
                f"out must be a writeable C-contiguous float64 array of shape {shape}; got {got}"
            )

    def jvp(
        self, theta: object, X: object, v: object, *, n_threads: int | None = None
    ) -> np.ndarray:
        """J v, shape (m, d_y): the directional derivative of f_X along v (forward mode)."""
        theta, X, threads = self._inputs(theta, X, n_threads)
        v = as_theta(v, self.num_params, "v")
        out = np.empty((X.shape[0], self.output_dim))
        self._graph.jvp(theta, X, v, out, threads)
        return out

    def vjp(
        self, theta: object, X: object, U: object, *, n_threads: int | None = None
    ) -> np.ndarray:
        """J^T vec(U), shape (num_params,), for U of shape (m, d_y) (reverse mode)."""
        theta, X, threads = self._inputs(theta, X, n_threads)
        U = as_samples(U, self.output_dim, "U", num_samples=X.shape[0])
        out = np.empty(self.num_params)
        self._graph.vjp(theta, X, U, out, threads)
        return out

    def curvature_products(
        self, theta: object, X: object, U: object, V: object, *, n_threads: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Internal, for models outside the core (:attr:`runs_in_core` False): J v and the
        derivative of J^T vec(U) along v for each column v of V, from which the objective forms
        Hessian-vector products; with :meth:`vjps`. Core models form them in C++ instead."""
        raise UnsupportedModelError(f"{type(self).__name__} forms Hessian products in the core")

    def vjps(
        self, theta: object, X: object, Us: object, *, n_threads: int | None = None
    ) -> np.ndarray:
        """Internal, for models outside the core: J^T vec(U_j) for a stack of cotangents."""
        raise UnsupportedModelError(f"{type(self).__name__} forms Hessian products in the core")

    def homogeneity(self, theta: object) -> np.ndarray:
        """g(theta) of Assumption 2 with J g(theta) = f_X(theta): theta on the blocks f is
        linear in (the output layer), 0 elsewhere."""
        theta = as_theta(theta, self.num_params)
        g = np.zeros_like(theta)
        for name in self._homogeneous:
            s = self._by_name[name]
            g[s.offset : s.offset + s.size] = theta[s.offset : s.offset + s.size]
        return g

    def kink_margin(self, theta: object, X: object, *, n_threads: int | None = None) -> float:
        """Smallest |pre-activation| over samples at units whose activation has a kink
        (relu, leaky_relu); +inf when the model has none. 0 means theta is in Omega."""
        theta, X, threads = self._inputs(theta, X, n_threads)
        return float(self._graph.kink_margin(theta, X, threads))

    def _inputs(
        self, theta: object, X: object, n_threads: int | None
    ) -> tuple[np.ndarray, np.ndarray, int]:
        return (
            as_theta(theta, self.num_params),
            as_samples(X, self.input_dim),
            as_threads(n_threads),
        )

    # --------------------------------------------------------------- pickling
    def __reduce__(self) -> tuple:
        """Pickle as the class and its constructor arguments, so that loading rebuilds the C++
        graph (which cannot be pickled) in the loading process, e.g. on a Dask worker.

        Each concrete class gives its arguments through ``_constructor_arguments``; a subclass
        that changes ``__init__`` must define it too, or pickling fails here, not at load time.
        """
        cls = type(self)
        init_owner = next(c for c in cls.__mro__ if "__init__" in vars(c))
        if "_constructor_arguments" not in vars(init_owner):
            raise TypeError(
                f"cannot pickle {cls.__name__}: it defines __init__ without _constructor_arguments "
                "(return the (args, kwargs) that rebuild the model)"
            )
        args, kwargs = self._constructor_arguments()
        return _rebuild_model, (cls, tuple(args), dict(kwargs))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()}; {self.num_params} parameters)"

    def _describe(self) -> str:
        return f"{self.input_dim} -> {self.output_dim}"


def check_finite_outputs(out: np.ndarray) -> None:
    """NonFiniteError naming the first output beyond float64 (finite theta and X whose products
    overflow), rather than returning inf or NaN."""
    if not np.isfinite(out).all():
        bad = np.argwhere(~np.isfinite(out))
        i, k = (int(j) for j in bad[0])
        raise NonFiniteError(
            f"f_X(theta) is not finite: {len(bad)} output(s) overflow float64, the first "
            f"f(x_{i})[{k}] = {float(out[i, k])}; rescale theta or X"
        )


def check_model(model: object, what: str = "model") -> Model:
    """``model`` itself when it is a gradbasis model, else an InvalidArgumentError."""
    if not isinstance(model, Model):
        raise InvalidArgumentError(
            f"{what} must be a gradbasis model (MLP, SkipMLP, ResNet, BasisModel, ...); got {type(model).__name__}"
        )
    return model


def _rebuild_model(cls: type, args: tuple, kwargs: dict) -> Model:
    """Unpickle a model: construct it again (see :meth:`Model.__reduce__`)."""
    return cls(*args, **kwargs)
