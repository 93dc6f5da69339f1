"""Sweeps, batch verification: train and certify every cell of a grid of models, data and seeds.

A sweep is a TOML file (or the same structure as a dict)::

    name = "teacher-mlp"
    output = "teacher-mlp.jsonl"      # relative to the sweep file
    store_theta = false               # keep each trained theta in its record

    [grid]                            # or several [[grid]] blocks, whose cells are joined
    data = [{name = "teacher", m = 40, d_x = 3, d_y = 2}]   # "iris", "digits", a teacher, a .npz/.csv path
    models = ["mlp"]                  # mlp, skip, resnet, linear, basis, "torch:pkg.mod:factory"
    widths = [2, 4, 8]                # hidden units per layer ...
    depths = [1, 2]                   # ... times this many hidden layers
    activations = ["tanh"]
    losses = ["squared"]
    seeds = [0, 1, 2, 3]
    # checks = [...]                  # a block may replace checks.run for its cells

    [train]                           # a list in place of a value is one more grid axis
    method = "lbfgs+newton"
    gtol = 1e-10
    max_iter = 500

    [checks]
    run = ["classify", "theorem1", "theorem2"]  # + theorem3, theorem4, representation, spectrum
    grad_tol = 1e-6
    rtol = 1e-8
    eps = 1e-2                        # perturbation step of Theorems 2-4
    t = 0                             # Theorem 4's t

A torch model kind ``"torch:package.module:factory"`` names a function
``factory(d_x=, d_y=, widths=, activation=)`` returning an ``nn.Module`` whose last operation is
an ``nn.Linear`` (``widths`` = [width] * depth); its cells run as a
:class:`gradbasis.torch.TorchModel` (one sample shaped as the module's ``input_shape``
attribute, else the data set's own shape, else flat) and can run ``classify`` and
``theorem1``. The factory's module must be importable where the cells run.

Every key is checked before anything runs (:func:`load_sweep`): an unknown key, a bad value or
an impossible combination (Theorem 3 on an MLP, a hinge loss on three classes) raises
:class:`SweepConfigError` naming the key.

:func:`run` trains and checks every cell and appends one JSON record per cell to a JSON Lines
file, each as one ``write`` of a whole line followed by ``fsync``. A cell's ``key`` is a hash
of its resolved settings, so a sweep killed at any moment and run again skips the cells already
in the file; a partial last line (killed mid-write) is cut off on restart. A cell that raises
is recorded with its error and the sweep goes on. Cells run in worker processes (``jobs``) or
on a Dask cluster (``scheduler``); either way only this process writes the file.

Each record holds ``key``, ``status`` ("ok" or "error"), ``sweep`` (the name), ``settings``,
``training`` (the :class:`~gradbasis.MinimizeResult` without theta), ``checks`` (each check's
``to_dict()``), ``summary``, ``seconds``, ``error`` (``type``, ``message``, ``stage``,
``traceback``, or null) and ``gradbasis`` (the version); ``theta`` only with ``store_theta``.
``summary`` is what :func:`report` and the sweep figures read: ``L``, ``gradient_norm``,
``converged``, ``num_params``, ``num_samples``, ``num_outputs`` (m d_y), ``point`` (the classification's kind or
null), ``verdicts`` (check -> verdict, "error" for the check that raised), ``gaps`` (Theorems
1-4: L(theta) - certified lower end of the induced infimum), ``dim_T``, ``dim_T_tilde``,
``bounds`` (name -> the value each basis or feature model reaches: gradient_basis,
perturbable, representation, shamir, resnet_features, hidden_features, linear) and
``singular_values`` (of J, from the spectrum check). Numbers in ``summary`` are finite or null.
"""

from ..errors import ResultsFileError, SweepConfigError, SweepError
from .checks import CHECKS, Spectrum
from .config import Cell, Sweep, load_sweep
from .data import teacher_data
from .reporting import figure_records, report
from .results import load_records, parse_records
from .runner import run, run_cell

__all__ = [
    "CHECKS",
    "Cell",
    "ResultsFileError",
    "Spectrum",
    "Sweep",
    "SweepConfigError",
    "SweepError",
    "figure_records",
    "load_records",
    "load_sweep",
    "parse_records",
    "report",
    "run",
    "run_cell",
    "teacher_data",
]
