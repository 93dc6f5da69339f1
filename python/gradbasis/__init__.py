"""gradbasis: how good is this minimum?

Per-sample Jacobians, losses and training objectives of nonconvex models, built for
checking the gradient basis theory of Kawaguchi, Huang & Kaelbling (Neural Computation
2019) on trained networks. The heavy work runs in a C++ core (Eigen + OpenMP).
The public names, grouped by layer; docs/architecture.md describes the package's plan.
"""

from __future__ import annotations

try:
    from . import _core
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "gradbasis's compiled core (gradbasis._core) is missing or failed to load; install the "
        "package with `pip install .` from the source tree rather than importing it in place"
    ) from exc

from ._options import Strategy
from ._progress import show_progress
from ._version import __version__
from .errors import (
    DataFileError,
    DTypeError,
    GradbasisError,
    IndistinctSamplesError,
    InvalidArgumentError,
    InvalidLabelError,
    InvalidOptionError,
    InvalidWeightsError,
    MemoryBudgetError,
    NonFiniteError,
    ResultsFileError,
    ShapeError,
    SweepConfigError,
    SweepError,
    SweepRecordError,
    TorchFileError,
    UnknownNameError,
    UnsupportedModelError,
    UnsupportedModuleError,
)
from .losses import CrossEntropyLoss, Loss, SmoothedHingeLoss, SquaredLoss, get_loss
from .models import (
    ACTIVATIONS,
    MLP,
    Activation,
    BasisModel,
    Model,
    PreActResidualStack,
    ResNet,
    SkipMLP,
)
from .models.overparameterized import OverparameterizedReport, overparameterized_init
from .objective import Objective
from .optimize import MinimizeResult, minimize
from .solve.distributed import distributed_gram, distributed_induced_minimum, distributed_jacobian
from .solve.induced import InducedResult, ProfileEntry, induced_minimum
from .solve.strategies import (
    STRATEGIES,
    MemoryEstimate,
    choose_strategy,
    gradient_basis_minimum,
    memory_estimate,
)
from .theory.assumptions import (
    Assumption1Result,
    Assumption2Result,
    Lemma2Result,
    assumption1,
    assumption2,
    lemma2,
)
from .theory.critical_points import PointClass, PointKind, classify_point
from .theory.linear_units import LinearUnitSets, in_theta_nt, linear_unit_sets
from .theory.perturbable import PerturbableBasis, perturbable_basis
from .theory.perturbation import PerturbationSet, perturbation_directions
from .theory.representation import RepresentationBound, representation_bound
from .theory.theorem1 import Theorem1Result, theorem1
from .theory.theorem2 import Lemma1Result, Lemma3Result, Theorem2Result, lemma1, lemma3, theorem2
from .theory.theorem3 import Theorem3Result, residual_features, theorem3
from .theory.theorem4 import Theorem4Result, hidden_features, theorem4
from .verdict import Verdict

#: Whether the C++ core was built with OpenMP (otherwise n_threads has no effect).
WITH_OPENMP: bool = bool(_core.with_openmp)

__all__ = [
    "WITH_OPENMP",
    "__version__",
    "show_progress",
    # Errors
    "DTypeError",
    "DataFileError",
    "GradbasisError",
    "IndistinctSamplesError",
    "InvalidArgumentError",
    "InvalidLabelError",
    "InvalidOptionError",
    "InvalidWeightsError",
    "MemoryBudgetError",
    "NonFiniteError",
    "ResultsFileError",
    "ShapeError",
    "SweepConfigError",
    "SweepError",
    "SweepRecordError",
    "TorchFileError",
    "UnknownNameError",
    "UnsupportedModelError",
    "UnsupportedModuleError",
    # Verdicts
    "Verdict",
    # Options
    "Strategy",
    # Losses
    "CrossEntropyLoss",
    "Loss",
    "SmoothedHingeLoss",
    "SquaredLoss",
    "get_loss",
    # Models
    "ACTIVATIONS",
    "MLP",
    "Activation",
    "BasisModel",
    "Model",
    "PreActResidualStack",
    "ResNet",
    "SkipMLP",
    "OverparameterizedReport",
    "overparameterized_init",
    # Objective and training
    "Objective",
    "MinimizeResult",
    "minimize",
    # Induced models: solvers and strategies
    "InducedResult",
    "ProfileEntry",
    "induced_minimum",
    "STRATEGIES",
    "MemoryEstimate",
    "choose_strategy",
    "gradient_basis_minimum",
    "memory_estimate",
    "distributed_gram",
    "distributed_induced_minimum",
    "distributed_jacobian",
    # The paper's assumptions, lemmas and theorems
    "PointClass",
    "PointKind",
    "classify_point",
    "Assumption1Result",
    "Assumption2Result",
    "Lemma2Result",
    "assumption1",
    "assumption2",
    "lemma2",
    "RepresentationBound",
    "representation_bound",
    "Theorem1Result",
    "theorem1",
    "PerturbationSet",
    "perturbation_directions",
    "PerturbableBasis",
    "perturbable_basis",
    "LinearUnitSets",
    "in_theta_nt",
    "linear_unit_sets",
    "Lemma1Result",
    "Lemma3Result",
    "Theorem2Result",
    "lemma1",
    "lemma3",
    "theorem2",
    "Theorem3Result",
    "residual_features",
    "theorem3",
    "Theorem4Result",
    "hidden_features",
    "theorem4",
]
