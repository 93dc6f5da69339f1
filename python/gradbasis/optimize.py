"""Training to a near-critical point: scipy's optimisers on an :class:`Objective`.

Theorem 1 speaks about critical points, and a theorem check can only say *holds* when
||grad L(theta)|| is tiny. First-order training rarely gets there, so this module drives
scipy.optimize.minimize with the exact gradient (one C++ reverse sweep) and the exact
Hessian-vector product (forward-over-reverse) and checks the 2-norm of the gradient itself,
whatever the chosen method's own stopping rules are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.optimize

from ._options import positive_int, positive_number
from ._progress import progress_bar
from ._validation import as_theta
from .errors import InvalidArgumentError, UnknownNameError

__all__ = ["METHODS", "MinimizeResult", "minimize"]

#: Method names accepted by :func:`minimize`.
METHODS = ("lbfgs", "newton-cg", "trust-krylov", "trust-ncg", "lbfgs+newton")

# "lbfgs+newton" hands over from L-BFGS to Newton once ||grad|| has dropped by this factor.
# Measured on small tanh/sigmoid/softplus/gelu MLPs (squared loss, 3 seeds each): handing
# over at 1e-1 converged to 1e-8 in every case; at 1e-2 or later, L-BFGS sometimes crawled
# into a plateau (loss 0.27 instead of 0) that Newton started from would have avoided.
_HANDOVER = 1e-1
# Iterations Newton gets per stage of "lbfgs+newton" (it converges in tens when it can).
_NEWTON_ITERATIONS = 200


@dataclass(frozen=True)
class MinimizeResult:
    """Where :func:`minimize` stopped, and whether the gradient there is small enough.

    ``value`` and ``gradient_norm`` (2-norm) are recomputed at ``theta`` after the
    optimiser returns, so they describe the returned point exactly; ``converged`` is
    ``gradient_norm <= gtol``. ``evaluations`` counts value-and-gradient sweeps (the final
    check included), ``hessian_vector_products`` the exact Hessian-vector products.
    ``message`` is the optimiser's own last word (for "lbfgs+newton", every stage's).
    """

    theta: np.ndarray = field(repr=False)
    value: float
    gradient_norm: float
    iterations: int
    evaluations: int
    converged: bool
    method: str
    message: str
    seconds: float
    gtol: float
    hessian_vector_products: int = 0

    def __str__(self) -> str:
        verdict = "converged" if self.converged else "NOT converged"
        cmp = "<=" if self.converged else ">"
        return "\n".join(
            [
                f"minimize ({self.method}): {verdict}, "
                f"||grad|| {self.gradient_norm:.3g} {cmp} gtol {self.gtol:.3g}",
                f"  value {self.value:.15g}",
                f"  {self.iterations} iterations, {self.evaluations} gradient evaluations, "
                f"{self.hessian_vector_products} Hessian-vector products, {self.seconds:.3g} s",
                f"  message: {self.message}",
            ]
        )


class _SubproblemBreakdown(Exception):
    """trlib (trust-krylov) handed a non-finite vector to the Hessian-vector product; it
    does so near rounding-level gradients. The last accepted iterate is still good."""


class _Counted:
    """Wraps the objective for scipy: counts calls, remembers the last gradient (so the
    stopping check after each iteration usually costs nothing) and drives the progress bar."""

    def __init__(self, obj, gtol: float, bar):
        self.obj = obj
        self.bar = bar
        self.evaluations = 0
        self.hvps = 0
        self.iterations = 0
        self._cache: tuple[np.ndarray, float, np.ndarray] | None = None  # (x, value, grad)
        self.accepted = np.empty(0)  # the last iterate scipy accepted
        self.stop_at = gtol  # the gradient 2-norm at which the current stage ends

    def value_and_gradient(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        if self._cache is not None and np.array_equal(x, self._cache[0]):
            _, value, grad = self._cache
        else:
            self.evaluations += 1
            value, grad = self.obj.value_and_gradient(x)
            self._cache = (np.array(x, copy=True), value, grad)
        return value, grad.copy()  # scipy may keep or modify what it gets

    def hessian_vector(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        if not np.isfinite(v).all():
            raise _SubproblemBreakdown
        self.hvps += 1
        return self.obj.hessian_vector(x, v)

    def callback(self, intermediate_result) -> None:
        # scipy calls this once per accepted iteration; raising StopIteration ends the run
        # cleanly (scipy >= 1.11), which is how the 2-norm rule overrides scipy's own rules.
        self.iterations += 1
        self.accepted = np.array(intermediate_result.x, copy=True)
        value, grad = self.value_and_gradient(self.accepted)
        gnorm = float(np.linalg.norm(grad))
        self.bar.update(1)
        self.bar.set_postfix(value=f"{value:.6g}", grad=f"{gnorm:.2e}", refresh=False)
        if gnorm <= self.stop_at:
            raise StopIteration


def _run_stage(
    counted: _Counted, theta: np.ndarray, method: str, stop_at: float, max_iter: int
) -> tuple[np.ndarray, str]:
    """One scipy run from theta until ||grad||_2 <= stop_at; returns the end point and a message."""
    n = theta.size
    fun = counted.value_and_gradient
    counted.stop_at = stop_at
    counted.accepted = theta
    options: dict[str, Any]
    kwargs: dict[str, Any]
    if method == "lbfgs":
        # L-BFGS-B's gtol is an inf-norm on the projected gradient: stop_at / sqrt(n) there
        # implies a 2-norm <= stop_at, a safe fallback to the callback's exact test. ftol = 0
        # so a slow relative decrease of f does not stop it early; it still stops when the
        # line search can no longer decrease f (rounding level).
        options = {
            "maxiter": max_iter,
            "maxfun": max(15000, 20 * max_iter),
            "gtol": stop_at / np.sqrt(n),
            "ftol": 0.0,
        }
        kwargs = {"method": "L-BFGS-B"}
    elif method == "newton-cg":
        # Newton-CG only stops on a small step (l1-norm <= n * xtol); make that test
        # irrelevant so the callback's gradient test (or a failed line search) decides.
        options = {"maxiter": max_iter, "xtol": 1e-300}
        kwargs = {"method": "Newton-CG", "hessp": counted.hessian_vector}
    else:
        # trust-krylov and trust-ncg: their gtol already is the gradient's 2-norm.
        # trust-krylov keeps scipy's inexact=True: trlib's exact-subproblem mode stalls
        # ("bad approximation") far from a minimum on small nets.
        options = {"maxiter": max_iter, "gtol": stop_at}
        kwargs = {"method": method, "hessp": counted.hessian_vector}
    try:
        # trlib's breakdown shows first as a numpy "invalid value" warning inside scipy; the
        # NaN it produces is caught in hessian_vector, so the warning itself is noise here.
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            res = scipy.optimize.minimize(
                fun, theta, jac=True, callback=counted.callback, options=options, **kwargs
            )
    except _SubproblemBreakdown:
        msg = "trust-region subproblem (trlib) broke down; returned the last accepted iterate"
        return counted.accepted, msg
    message = str(res.message)
    if "StopIteration" in message or not message:  # our callback ended the run
        message = f"gradient 2-norm <= {stop_at:.3g}"
    return np.array(res.x, dtype=np.float64), message


def minimize(
    obj,
    theta0: object,
    *,
    method: str = "lbfgs",
    gtol: float = 1e-8,
    max_iter: int = 1000,
    progress: bool | None = None,
) -> MinimizeResult:
    """Minimise ``obj`` (an :class:`Objective`) from ``theta0`` until ||grad L||_2 <= gtol.

    Methods (all with the exact gradient; the Newton ones with exact Hessian-vector
    products, never a finite-difference or quasi-Newton Hessian):

    * ``"lbfgs"`` - scipy's L-BFGS-B without bounds. Cheap per iteration, but on neural
      nets it often needs thousands of iterations for 1e-8 or crawls on a plateau.
    * ``"newton-cg"`` - line-search truncated Newton (scipy Newton-CG). Its CG loop gives up
      on curvature below 3 * eps in absolute terms, so it tends to stop at ~1e-8 .. 5e-8.
    * ``"trust-krylov"`` - trust-region Newton with the trlib Krylov subproblem solver. Good
      far from a minimum, but trlib stalls ("bad approximation") or breaks down (returns
      NaN steps; caught here, the last accepted iterate is returned) at ||grad|| ~ 1e-8.
    * ``"trust-ncg"`` - trust-region Newton with Steihaug CG; handles indefinite Hessians
      and, on small nets, keeps converging down to 1e-10 .. 1e-14.
    * ``"lbfgs+newton"`` - L-BFGS until ||grad|| has dropped tenfold (cheap first steps),
      then trust-ncg to gtol. This is the one to use for ||grad|| <= 1e-8; ``max_iter``
      bounds each of the two stages. (trust-ncg rather than trust-krylov polishes because
      of trlib's breakdown near 1e-8 described above.)

    The stopping test is the gradient's 2-norm, checked here after every iteration
    (scipy's own rules differ per method: L-BFGS-B tests an inf-norm and a relative
    decrease of f, Newton-CG the step length); the returned ``value`` and
    ``gradient_norm`` are recomputed at the returned theta, and ``converged`` means
    ``gradient_norm <= gtol``. A run that ends unconverged (max_iter, failed line search,
    rounding) still returns its last point, with scipy's message.

    What is realistic, in float64: small networks with smooth activations (tanh, sigmoid,
    softplus, gelu) and squared loss reach ||grad|| ~ 1e-9 .. 1e-13 with "lbfgs+newton"
    (measured: m = 20, a [3, 6, 5, 2] MLP, 12 of 12 runs within 1e-8, each well under a
    second); the floor is rounding, about eps times the size of the per-sample gradient
    terms. ReLU / leaky-ReLU nets are smooth (polynomial in theta) inside each activation
    pattern, so the Hessian-vector product is exact and Newton works away from kinks, but
    small nets keep crossing kinks, where the gradient jumps: expect ``converged=False``
    unless the run ends in the interior of a pattern (check ``model.kink_margin``).
    Cross-entropy on separable data has no critical point: the infimum (0) is approached
    only as ||theta|| grows, and the gradient decays only as fast as the loss does, so a
    small gradient there means a large theta and a small loss, not a minimum.

    ``progress=True`` shows a tqdm bar (iterations, current value and ||grad||) when tqdm
    is installed, and nothing otherwise; None (default) shows one within
    :func:`gradbasis.show_progress`, False never.
    """
    needed = ("value_and_gradient", "hessian_vector")
    if not all(callable(getattr(obj, name, None)) for name in needed):
        raise InvalidArgumentError(
            "obj must be a gradbasis Objective (value_and_gradient, hessian_vector); "
            f"got {type(obj).__name__}"
        )
    if method not in METHODS:
        raise UnknownNameError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    gtol = positive_number(gtol, "gtol")
    max_iter = positive_int(max_iter, "max_iter")
    theta = as_theta(theta0, obj.model.num_params, "theta0").copy()

    start = time.perf_counter()
    if method == "lbfgs+newton":
        # Newton gets a bounded number of iterations: where it stalls (far from a minimum, or
        # on a kink) L-BFGS takes over again, then Newton polishes once more.
        newton_cap = min(int(max_iter), _NEWTON_ITERATIONS)
        stages = [
            ("lbfgs", _HANDOVER, int(max_iter)),
            ("trust-ncg", None, newton_cap),
            ("lbfgs", None, int(max_iter)),
            ("trust-ncg", None, newton_cap),
        ]
    else:
        stages = [(method, None, int(max_iter))]
    bar = progress_bar(len(stages) * int(max_iter), method, force=progress)
    counted = _Counted(obj, gtol, bar)
    messages = []
    try:
        g0 = float(np.linalg.norm(counted.value_and_gradient(theta)[1]))
        for stage, handover, stage_iter in stages:
            stop_at = gtol if handover is None else max(gtol, handover * g0)
            # Skip a stage whose target already holds: scipy would take a step anyway
            # (or, for the trust-region methods, refuse to start).
            if np.linalg.norm(counted.value_and_gradient(theta)[1]) <= stop_at:
                messages.append(f"{stage}: gradient 2-norm <= {stop_at:.3g} at its start")
                if stop_at <= gtol:
                    break
                continue
            theta, msg = _run_stage(counted, theta, stage, stop_at, stage_iter)
            messages.append(f"{stage}: {msg}")
    finally:
        bar.close()

    # The reported numbers describe the returned point exactly (not the optimiser's cache).
    value, grad = obj.value_and_gradient(theta)
    counted.evaluations += 1
    gnorm = float(np.linalg.norm(grad))
    return MinimizeResult(
        theta=theta,
        value=float(value),
        gradient_norm=gnorm,
        iterations=counted.iterations,
        evaluations=counted.evaluations,
        converged=bool(gnorm <= gtol),
        method=method,
        message="; ".join(messages) if len(stages) > 1 else messages[0].split(": ", 1)[1],
        seconds=time.perf_counter() - start,
        gtol=gtol,
        hessian_vector_products=counted.hvps,
    )
