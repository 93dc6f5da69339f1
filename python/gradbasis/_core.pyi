"""Type stub of the compiled core (see cpp/bindings). Arrays are float64, C-contiguous;
the Python layer validates and converts before calling."""

from typing import Literal

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

with_openmp: bool

def max_threads() -> int: ...

class LossQuantity:
    value: LossQuantity
    gradient: LossQuantity
    hessian: LossQuantity
    conjugate: LossQuantity

class Loss:
    def __init__(self, kind: Literal[0, 1, 2], p: float = 2.0) -> None: ...
    @property
    def kind(self) -> int: ...
    @property
    def p(self) -> float: ...
    def rows(self, what: LossQuantity, Q: Array, Y: Array, out: Array) -> None: ...

class Graph:
    def __init__(self, input_dim: int) -> None: ...
    def add_dense(self, src: int, out_dim: int, weight_offset: int, bias_offset: int) -> int: ...
    def add_activation(self, src: int, kind: int, negative_slope: float = 0.0) -> int: ...
    def add_sum(self, a: int, b: int) -> int: ...
    def finalize(self, output: int, num_params: int) -> None: ...
    @property
    def num_nodes(self) -> int: ...
    @property
    def input_dim(self) -> int: ...
    @property
    def output_dim(self) -> int: ...
    @property
    def num_params(self) -> int: ...
    @property
    def has_kinks(self) -> bool: ...
    def forward(self, theta: Array, X: Array, out: Array, n_threads: int) -> None: ...
    def jacobian(self, theta: Array, X: Array, out: Array, n_threads: int) -> None: ...
    def jvp(self, theta: Array, X: Array, v: Array, out: Array, n_threads: int) -> None: ...
    def vjp(self, theta: Array, X: Array, U: Array, out: Array, n_threads: int) -> None: ...
    def kink_margin(self, theta: Array, X: Array, n_threads: int) -> float: ...
    def objective(
        self, loss: Loss, theta: Array, X: Array, Y: Array, weights: Array, n_threads: int
    ) -> float: ...
    def objective_gradient(
        self,
        loss: Loss,
        theta: Array,
        X: Array,
        Y: Array,
        weights: Array,
        grad: Array,
        n_threads: int,
    ) -> float: ...
    def objective_hvp(
        self,
        loss: Loss,
        theta: Array,
        X: Array,
        Y: Array,
        weights: Array,
        v: Array,
        out: Array,
        n_threads: int,
    ) -> None: ...

class InducedSolve:
    cut: float
    rank: int
    value: float
    lower: float
    iterations: int
    gradient_norm: float
    converged: bool
    attained: bool
    solve_rank: int
    from_start: bool

class InducedResult:
    main: InducedSolve
    profile: list[InducedSolve]
    alpha: Array
    fitted: Array
    singular_values: Array

def induced_minimum(
    B: Array,
    loss: Loss,
    Y: Array,
    weights: Array,
    rank_tol: float,
    cuts: list[float],
    tol: float,
    max_iter: int,
    start: Array | None = None,
) -> InducedResult: ...
def induced_minimum_orthonormal(
    Q: Array,
    scale: Array,
    loss: Loss,
    Y: Array,
    weights: Array,
    rank_tol: float,
    cuts: list[float],
    tol: float,
    max_iter: int,
    start: Array | None = None,
    gram_rounding: float = 0.0,
) -> InducedResult: ...
