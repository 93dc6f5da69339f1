"""Batch verification: train and certify every cell of a grid of models, data and seeds.

A sweep is a TOML file (or the same structure as a dict)::

    name = "teacher-mlp"
    output = "teacher-mlp.jsonl"      # relative to the sweep file
    store_theta = false               # keep each trained theta in its record

    [grid]                            # or several [[grid]] blocks, whose cells are joined
    data = [{name = "teacher", m = 40, d_x = 3, d_y = 2}]   # "iris", a teacher, a .npz/.csv path
    models = ["mlp"]                  # mlp, skip, resnet, linear, basis
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

from __future__ import annotations

import contextlib
import ctypes
import difflib
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..datasets import Dataset, load_data_file, load_iris
from ..errors import GradbasisError, ResultsFileError, SweepConfigError, SweepError
from ..losses import get_loss
from ..models.registry import MODEL_KINDS, build_model
from ..objective import Objective
from ..optimize import METHODS, minimize
from ..theory.critical_points import classify_point
from ..theory.representation import representation_bound
from ..theory.theorem1 import theorem1
from ..theory.theorem2 import theorem2
from ..theory.theorem3 import theorem3
from ..theory.theorem4 import theorem4
from ..verdict import jsonable

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


# ============================================================================ checks
@dataclass(frozen=True)
class Spectrum:
    """Singular values of J(theta) (descending), the spectrum the figures plot."""

    singular_values: tuple[float, ...]
    num_outputs: int
    num_params: int

    def to_dict(self) -> dict:
        return jsonable(dict(vars(self)))


def _spectrum(obj: Objective, theta: np.ndarray, options: Mapping[str, Any]) -> Spectrum:
    J = obj.model.jacobian(theta, obj.X)
    s = np.linalg.svd(J, compute_uv=False)
    return Spectrum(tuple(float(v) for v in s), J.shape[0], J.shape[1])


#: Check name -> function(objective, theta, options) returning a result with ``to_dict()``.
CHECKS: dict[str, Callable[[Objective, np.ndarray, Mapping[str, Any]], Any]] = {
    "classify": lambda obj, theta, o: classify_point(obj, theta, grad_tol=o["grad_tol"]),
    "theorem1": lambda obj, theta, o: theorem1(obj, theta, rtol=o["rtol"], grad_tol=o["grad_tol"]),
    "theorem2": lambda obj, theta, o: theorem2(
        obj, theta, eps=o["eps"], rtol=o["rtol"], grad_tol=o["grad_tol"]
    ),
    "theorem3": lambda obj, theta, o: theorem3(
        obj, theta, eps=o["eps"], rtol=o["rtol"], grad_tol=o["grad_tol"]
    ),
    "theorem4": lambda obj, theta, o: theorem4(
        obj, theta, o["t"], eps=o["eps"], rtol=o["rtol"], grad_tol=o["grad_tol"]
    ),
    "representation": lambda obj, theta, o: representation_bound(
        obj, theta, rtol=o["rtol"], grad_tol=o["grad_tol"]
    ),
    "spectrum": _spectrum,
}

# The options each check reads: only these enter a cell's settings (and so its key).
_CHECK_OPTIONS = {
    "classify": ("grad_tol",),
    "theorem1": ("grad_tol", "rtol"),
    "theorem2": ("grad_tol", "rtol", "eps"),
    "theorem3": ("grad_tol", "rtol", "eps"),
    "theorem4": ("grad_tol", "rtol", "eps", "t"),
    "representation": ("grad_tol", "rtol"),
    "spectrum": (),
}
_CHECK_DEFAULTS = {
    "run": ["classify", "theorem1"],
    "grad_tol": 1e-6,
    "rtol": 1e-8,
    "eps": 1e-2,
    "t": 0,
}
_TRAIN_DEFAULTS = {"method": "lbfgs+newton", "gtol": 1e-10, "max_iter": 5000}
_GRID_DEFAULTS = {
    "data": ["iris"],
    "models": ["mlp"],
    "widths": [2],
    "depths": [1],
    "activations": ["tanh"],
    "losses": ["squared"],
    "seeds": [0],
}
_TOP_KEYS = ("name", "output", "store_theta", "grid", "train", "checks")
_TEACHER_DEFAULTS = {"width": 4, "activation": "tanh", "noise": 0.1, "seed": 0}


# ============================================================================ config
@dataclass(frozen=True)
class Cell:
    """One training run and its checks. ``settings`` are resolved and JSON-ready; ``key`` is
    the first 16 hex digits of the SHA-256 of their canonical JSON: the cell's identity."""

    key: str
    settings: dict = field(hash=False)
    data_id: str


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: its cells in grid order (duplicates removed) and their data."""

    name: str
    output: Path | None
    cells: tuple[Cell, ...]
    datasets: dict = field(repr=False, hash=False)  # data_id -> Dataset


def _canonical(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _key(settings: Mapping) -> str:
    return hashlib.sha256(_canonical(settings).encode()).hexdigest()[:16]


def _check_keys(table: Mapping, allowed: Sequence[str], where: str) -> None:
    for k in table:
        if k not in allowed:
            near = difflib.get_close_matches(str(k), allowed, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; allowed: {', '.join(allowed)}"
            raise SweepConfigError(f"unknown key {where + '.' if where else ''}{k}{hint}")


def _table(value: object, key: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise SweepConfigError(f"{key} must be a table; got {value!r}")
    return value


def _int(value: object, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SweepConfigError(f"{key} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _positive(value: object, key: str, below_one: bool = False) -> float:
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value > 0
    )
    if not ok or (below_one and value >= 1):
        raise SweepConfigError(
            f"{key} must be a finite number in {'(0, 1)' if below_one else '> 0'}; got {value!r}"
        )
    return float(value)


def _string(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SweepConfigError(f"{key} must be a non-empty string; got {value!r}")
    return value.strip()


def _values(value: object, key: str) -> list:
    """A grid axis: one value or a non-empty list of them."""
    values = list(value) if isinstance(value, list) else [value]
    if not values:
        raise SweepConfigError(f"{key} must not be an empty list")
    return values


def _read_toml(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise SweepConfigError(
                "reading a sweep file on Python 3.10 needs tomli: pip install tomli"
            ) from None
    if not path.is_file():
        raise SweepConfigError(f"sweep file {str(path)!r} does not exist")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SweepConfigError(f"{path} is not valid TOML: {exc}") from None


def _resolve_data(value: object, key: str, base: Path) -> tuple[dict, Path | None]:
    """The data spec as it enters a cell's settings, and the file to read (if any)."""
    if isinstance(value, str):
        value = {"name": "iris"} if value.strip() == "iris" else {"path": value}
    spec_in = _table(value, key)
    if "path" in spec_in:
        _check_keys(spec_in, ("path", "max_samples"), key)
        written = _string(spec_in["path"], f"{key}.path")
        path = Path(written) if Path(written).is_absolute() else base / written
        if path.suffix.lower() not in (".npz", ".csv"):
            raise SweepConfigError(
                f"{key}.path: {written!r} is neither 'iris' nor a .npz or .csv file"
            )
        if not path.is_file():
            raise SweepConfigError(f"{key}.path: data file {str(path)!r} does not exist")
        # The contents are part of the identity: a changed file means new cells.
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        spec = {"name": path.name, "path": written, "sha256": digest}
    else:
        name = _string(spec_in.get("name"), f"{key}.name")
        if name == "iris":
            _check_keys(spec_in, ("name", "max_samples"), key)
            spec, path = {"name": "iris"}, None
        elif name == "teacher":
            _check_keys(spec_in, ("name", "m", "d_x", "d_y", *_TEACHER_DEFAULTS), key)
            for required in ("m", "d_x", "d_y"):
                if required not in spec_in:
                    raise SweepConfigError(f"{key}.{required} is required for the teacher data")
            full = {**_TEACHER_DEFAULTS, **spec_in}
            spec = {
                "name": "teacher",
                "m": _int(full["m"], f"{key}.m", 1),
                "d_x": _int(full["d_x"], f"{key}.d_x", 1),
                "d_y": _int(full["d_y"], f"{key}.d_y", 1),
                "width": _int(full["width"], f"{key}.width", 1),
                "activation": _string(full["activation"], f"{key}.activation"),
                "noise": _nonnegative(full["noise"], f"{key}.noise"),
                "seed": _int(full["seed"], f"{key}.seed", 0),
            }
            path = None
        else:
            raise SweepConfigError(
                f"{key}.name: unknown data set {name!r}; use 'iris', 'teacher' or path = '...'"
            )
    if "max_samples" in spec_in:
        spec["max_samples"] = _int(spec_in["max_samples"], f"{key}.max_samples", 1)
    return spec, path


def _nonnegative(value: object, key: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise SweepConfigError(f"{key} must be a finite number >= 0; got {value!r}")
    return float(value)


def teacher_data(spec: Mapping) -> Dataset:
    """The synthetic regression set ``{name = "teacher", ...}``: X ~ N(0, I) (m, d_x) and
    Y = f(X) + noise * N(0, I), f a random MLP [d_x, width, d_y] (``activation``) at
    ``init(seed)``; the same spec always gives the same arrays."""
    from ..models import MLP

    rng = np.random.default_rng(spec["seed"])
    X = rng.normal(size=(spec["m"], spec["d_x"]))
    teacher = MLP([spec["d_x"], spec["width"], spec["d_y"]], spec["activation"])
    Y = teacher.forward(teacher.init(seed=rng), X) + spec["noise"] * rng.normal(
        size=(spec["m"], spec["d_y"])
    )
    return Dataset(X, np.zeros(spec["m"], dtype=int), Y, (), "teacher")


def _load_data(spec: Mapping, path: Path | None, key: str) -> Dataset:
    try:
        if spec["name"] == "iris" and path is None:
            data = load_iris()
        elif spec["name"] == "teacher" and path is None:
            data = teacher_data(spec)
        else:
            data = load_data_file(path)
    except GradbasisError as exc:
        raise SweepConfigError(f"{key}: {exc}") from None
    k = spec.get("max_samples")
    if k is not None:
        if k > len(data.X):
            raise SweepConfigError(
                f"{key}.max_samples = {k} exceeds the {len(data.X)} samples of {data.name}"
            )
        keep = np.sort(np.random.default_rng(0).choice(len(data.X), k, replace=False))
        targets = None if data.targets is None else data.targets[keep]
        data = Dataset(data.X[keep], data.labels[keep], targets, data.classes, data.name)
    return data


def _config_source(config: Mapping | str | os.PathLike) -> tuple[Mapping, Path, str]:
    if isinstance(config, Mapping):
        return config, Path.cwd(), "sweep"
    if isinstance(config, (str, os.PathLike)):
        path = Path(config)
        return _read_toml(path), path.resolve().parent, path.stem
    raise SweepConfigError(
        f"a sweep is a dict or the path of a TOML file; got {type(config).__name__}"
    )


def load_sweep(config: Mapping | str | os.PathLike) -> Sweep:
    """Validate a sweep (a dict as parsed from TOML, or a TOML file's path) and expand its grid.

    Every data set is loaded (the teacher generated, files read and hashed) and every cell's
    model built once here, so that nothing that can be known before running is found out
    while running. Paths in a sweep file are relative to its directory, in a dict to the
    working directory. Cells with equal settings (e.g. ``basis`` at several widths) run once.
    """
    raw, base, default_name = _config_source(config)
    _check_keys(raw, _TOP_KEYS, "")
    name = _string(raw.get("name", default_name), "name")
    output = None if raw.get("output") is None else base / _string(raw["output"], "output")
    store_theta = raw.get("store_theta", False)
    if not isinstance(store_theta, bool):
        raise SweepConfigError(f"store_theta must be true or false; got {store_theta!r}")
    trainings = _train_settings(_table(raw.get("train", {}), "train"))
    options, default_run = _check_settings(_table(raw.get("checks", {}), "checks"))
    grids = raw.get("grid", {})
    if isinstance(grids, Mapping):
        blocks = [("grid", grids)]
    elif isinstance(grids, list) and grids:
        blocks = [(f"grid[{i}]", _table(g, f"grid[{i}]")) for i, g in enumerate(grids)]
    else:
        raise SweepConfigError(
            f"grid must be a table or a non-empty array of tables; got {grids!r}"
        )

    cells: dict[str, Cell] = {}
    datasets: dict[str, Dataset] = {}
    built: set[tuple] = set()
    for where, grid in blocks:
        _check_keys(grid, (*_GRID_DEFAULTS, "checks"), where)
        axis = {
            k: _values(grid.get(k, default), f"{where}.{k}")
            for k, default in _GRID_DEFAULTS.items()
        }
        run_checks = (
            _check_list(grid["checks"], f"{where}.checks") if "checks" in grid else default_run
        )
        check_key = f"{where}.checks" if "checks" in grid else "checks.run"
        check_options = {
            o: options[o] for o in sorted({o for c in run_checks for o in _CHECK_OPTIONS[c]})
        }
        data_axis = []
        for i, value in enumerate(axis["data"]):
            dkey = f"{where}.data[{i}]"
            spec, path = _resolve_data(value, dkey, base)
            data_id = _key(spec)
            if data_id not in datasets:
                datasets[data_id] = _load_data(spec, path, dkey)
            data_axis.append((spec, data_id, dkey))
        grid_axes = itertools.product(
            data_axis,
            [_choice(v, f"{where}.models", MODEL_KINDS) for v in axis["models"]],
            [_int(v, f"{where}.widths", 1) for v in axis["widths"]],
            [_int(v, f"{where}.depths", 0) for v in axis["depths"]],
            [_string(v, f"{where}.activations") for v in axis["activations"]],
            [_loss(v, f"{where}.losses") for v in axis["losses"]],
            [_int(v, f"{where}.seeds", 0) for v in axis["seeds"]],
            trainings,
        )
        for (spec, data_id, dkey), kind, width, depth, act, loss, seed, train in grid_axes:
            data = datasets[data_id]
            try:
                d_y = data.targets_for(loss).shape[1]
            except GradbasisError as exc:
                raise SweepConfigError(
                    f"{where}.losses: {loss!r} does not fit {dkey} ({data.name}): {exc}"
                ) from None
            hidden = [] if kind == "basis" else [width] * depth
            activation = None if not hidden else ("identity" if kind == "linear" else act)
            architecture = (kind, data.X.shape[1], d_y, tuple(hidden), activation)
            if architecture not in built:
                try:
                    build_model(kind, data.X.shape[1], d_y, hidden, activation or "identity")
                except GradbasisError as exc:
                    raise SweepConfigError(
                        f"{where}: cannot build {kind} {hidden} ({activation}): {exc}"
                    ) from None
                built.add(architecture)
            _check_combination(run_checks, kind, len(hidden), options["t"], check_key)
            settings = {
                "data": spec,
                "model": kind,
                "width": width if hidden else None,
                "depth": len(hidden) if kind != "basis" else None,
                "hidden": hidden,
                "activation": activation,
                "loss": loss,
                "seed": seed,
                "train": train,
                "checks": run_checks,
                "check_options": check_options,
                "store_theta": store_theta,
            }
            key = _key(settings)
            cells.setdefault(key, Cell(key, settings, data_id))
    return Sweep(name, output, tuple(cells.values()), datasets)


def _train_settings(train: Mapping) -> list[dict]:
    """Every combination of the [train] values (a list in place of a value is an axis)."""
    _check_keys(train, tuple(_TRAIN_DEFAULTS), "train")
    axis = {
        k: _values(train.get(k, default), f"train.{k}") for k, default in _TRAIN_DEFAULTS.items()
    }
    methods = [_choice(v, "train.method", METHODS) for v in axis["method"]]
    gtols = [_positive(v, "train.gtol") for v in axis["gtol"]]
    max_iters = [_int(v, "train.max_iter", 1) for v in axis["max_iter"]]
    return [
        {"method": a, "gtol": b, "max_iter": c}
        for a, b, c in itertools.product(methods, gtols, max_iters)
    ]


def _check_settings(checks: Mapping) -> tuple[dict, list[str]]:
    """The [checks] options and the default list of checks to run."""
    _check_keys(checks, tuple(_CHECK_DEFAULTS), "checks")
    get = lambda k: checks.get(k, _CHECK_DEFAULTS[k])  # noqa: E731
    options = {
        "grad_tol": _positive(get("grad_tol"), "checks.grad_tol"),
        "rtol": _positive(get("rtol"), "checks.rtol", below_one=True),
        "eps": _positive(get("eps"), "checks.eps"),
        "t": _int(get("t"), "checks.t", 0),
    }
    return options, _check_list(get("run"), "checks.run")


def _choice(value: object, key: str, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise SweepConfigError(f"{key}: unknown value {value!r}; choose from {', '.join(allowed)}")
    return value


def _loss(value: object, key: str) -> str:
    try:
        return get_loss(_string(value, key)).name
    except GradbasisError as exc:
        raise SweepConfigError(f"{key}: {exc}") from None


def _check_list(value: object, key: str) -> list[str]:
    if not isinstance(value, list):
        raise SweepConfigError(f"{key} must be a list of check names; got {value!r}")
    for v in value:
        _choice(v, key, tuple(CHECKS))
    return [c for c in CHECKS if c in value]  # canonical order: the key ignores the order written


def _check_combination(run_checks: Sequence[str], kind: str, depth: int, t: int, key: str) -> None:
    if "theorem3" in run_checks and kind != "resnet":
        raise SweepConfigError(
            f"{key}: theorem3 is about the ResNet of eq. 4.1 and cannot run on model {kind!r}; "
            "give it its own [[grid]] block with models = ['resnet'] and checks = [..., 'theorem3']"
        )
    if "theorem4" in run_checks:
        if kind not in ("mlp", "linear"):
            raise SweepConfigError(
                f"{key}: theorem4 is about the networks of eq. 4.3 (models 'mlp' and 'linear') and cannot run on "
                f"model {kind!r}; give those cells their own [[grid]] block"
            )
        if t > depth:
            raise SweepConfigError(
                f"checks.t = {t} exceeds the depth H = {depth} of a {kind} cell; Theorem 4 needs t <= H"
            )


# ============================================================================ one cell
def _plain(x: object) -> object:
    """Strict-JSON copy: NumPy scalars and arrays to Python, non-finite floats spelled as
    strings (as :func:`gradbasis.verdict.jsonable` does), enums to their values."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, np.generic):
        return _plain(x.item())
    return jsonable(x)


def _finite(x: object) -> float | None:
    if isinstance(x, bool) or x is None:
        return None
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _summarize(
    training: Mapping | None,
    results: Mapping[str, Any],
    failed: str | None,
    checks: Sequence[str],
    model,
    m: int | None,
) -> dict:
    """The compact block the report and the figures read (see the module docstring). ``failed``
    is the stage that raised: that check's verdict is "error", or every check's when training
    or setting up failed."""
    summary: dict[str, Any] = {
        "L": _finite(training["value"]) if training else None,
        "gradient_norm": _finite(training["gradient_norm"]) if training else None,
        "converged": bool(training["converged"]) if training else None,
        "num_params": model.num_params if model is not None else None,
        "num_samples": m,
        "num_outputs": m * model.output_dim if model is not None and m is not None else None,
        "point": results["classify"].kind if "classify" in results else None,
        "verdicts": {},
        "gaps": {},
        "dim_T": None,
        "dim_T_tilde": None,
        "bounds": {},
        "singular_values": None,
    }
    for name, res in results.items():
        summary["verdicts"][name] = (
            res.kind if name == "classify" else str(getattr(res, "verdict", "computed"))
        )
    if failed is not None:
        for name in checks if failed not in checks else [failed]:
            summary["verdicts"][name] = "error"
    for name in ("theorem1", "theorem2", "theorem3", "theorem4"):
        if name in results:
            summary["gaps"][name] = _finite(results[name].gap)
    for name in ("theorem2", "theorem3", "theorem4"):
        if name in results and summary["dim_T"] is None:
            summary["dim_T"], summary["dim_T_tilde"] = (
                results[name].dim_T,
                results[name].dim_T_tilde,
            )
    if summary["dim_T"] is None and "theorem1" in results:
        summary["dim_T"] = results["theorem1"].full_rank
    bounds = summary["bounds"]
    if "theorem1" in results:
        bounds["gradient_basis"] = _finite(results["theorem1"].value)
    if "theorem2" in results:
        bounds["perturbable"] = _finite(results["theorem2"].value)
    if "representation" in results:
        bounds["representation"] = _finite(results["representation"].bound_value)
    if "theorem3" in results:
        bounds["shamir"] = _finite(results["theorem3"].shamir.value)
        bounds["resnet_features"] = _finite(results["theorem3"].features.value)
    if "theorem4" in results:
        bounds["hidden_features"] = _finite(results["theorem4"].features.value)
        bounds["linear"] = _finite(results["theorem4"].linear.value)
    if "spectrum" in results:
        summary["singular_values"] = [_finite(s) for s in results["spectrum"].singular_values]
    return summary


@contextlib.contextmanager
def _openmp_threads(n: int | None) -> Iterator[None]:
    """Limit OpenMP to n threads in the calling thread, restoring the old limit after.

    The core runs every call that is not given n_threads on omp_get_max_threads() threads, a
    per-thread setting; cells running side by side must not each take every core.
    """
    lib = None
    if n is not None and hasattr(os, "RTLD_NOLOAD"):
        for name in ("libgomp.so.1", "libomp.so", "libomp.so.5", "libiomp5.so", "libomp.dylib"):
            try:  # only a runtime already loaded (by the core): never load a second one
                lib = ctypes.CDLL(name, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
                break
            except OSError:
                continue
    try:
        before = lib.omp_get_max_threads() if lib is not None else None
    except AttributeError:  # not an OpenMP runtime after all
        before = None
    if before is None:
        yield
        return
    lib.omp_set_num_threads(int(n))
    try:
        yield
    finally:
        lib.omp_set_num_threads(before)


def run_cell(cell: Cell, data: Dataset, single_thread: bool = False) -> dict:
    """Train and check one cell; never raises for the cell's own failures, which are recorded.

    With ``single_thread`` the C++ core and the objective use one thread (cells side by side).
    """

    s = cell.settings
    record: dict[str, Any] = {
        "key": cell.key,
        "status": "ok",
        "sweep": None,
        "settings": s,
        "training": None,
        "checks": {},
        "summary": None,
        "seconds": {},
        "error": None,
        "gradbasis": __version__,
    }
    seconds: dict[str, float] = record["seconds"]
    results: dict[str, Any] = {}
    stage, model, training = "setup", None, None
    start = time.perf_counter()
    with _openmp_threads(1 if single_thread else None):
        try:
            t0 = time.perf_counter()
            loss = get_loss(s["loss"])
            Y = data.targets_for(loss.name)
            model = build_model(
                s["model"], data.X.shape[1], Y.shape[1], s["hidden"], s["activation"] or "identity"
            )
            obj = Objective(model, loss, data.X, Y, n_threads=1 if single_thread else None)
            seconds["setup"] = time.perf_counter() - t0
            stage = "train"
            tr = s["train"]
            theta0 = model.init(seed=s["seed"])
            fit = minimize(
                obj, theta0, method=tr["method"], gtol=tr["gtol"], max_iter=tr["max_iter"]
            )
            training = {k: v for k, v in vars(fit).items() if k != "theta"}
            record["training"] = training
            seconds["train"] = fit.seconds
            for name in s["checks"]:
                stage = name
                t0 = time.perf_counter()
                results[name] = CHECKS[name](obj, fit.theta, s["check_options"])
                record["checks"][name] = results[name].to_dict()
                seconds[name] = time.perf_counter() - t0
            stage = None
            if s["store_theta"]:
                record["theta"] = fit.theta
        except Exception as exc:  # a failed cell is a result: record it, let the sweep go on
            record["status"] = "error"
            record["error"] = {
                "type": type(exc).__name__,
                "message": str(exc),
                "stage": stage,
                "traceback": traceback.format_exc(limit=-8),
            }
    failed = stage if record["status"] == "error" else None
    record["summary"] = _summarize(training, results, failed, s["checks"], model, len(data.X))
    seconds["total"] = time.perf_counter() - start
    return _plain(record)  # type: ignore[return-value]


def _lost_cell_record(cell: Cell, exc: BaseException) -> dict:
    """The record of a cell whose task itself failed (e.g. its Dask worker was killed)."""

    return _plain(
        {
            "key": cell.key,
            "status": "error",
            "sweep": None,
            "settings": cell.settings,
            "training": None,
            "checks": {},
            "summary": _summarize(None, {}, "worker", cell.settings["checks"], None, None),
            "seconds": {},
            "error": {
                "type": type(exc).__name__,
                "message": str(exc),
                "stage": "worker",
                "traceback": "",
            },
            "gradbasis": __version__,
        }
    )  # type: ignore[return-value]


# ============================================================================ results file
def parse_records(data: bytes, path: Path, *, sweep_keys: bool) -> list[dict]:
    """The records of JSON Lines ``data`` read from ``path`` (blank lines skipped). Each line
    must be a JSON object; with ``sweep_keys`` also a sweep record (a string ``key``)."""
    records = []
    for lineno, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            why = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise ResultsFileError(
                f"{path}, line {lineno}: not JSON ({why}); the file was edited or is not a sweep's results"
            ) from None
        if not isinstance(rec, dict):
            raise ResultsFileError(
                f"{path}, line {lineno}: a record must be a JSON object; got {type(rec).__name__}"
            )
        if sweep_keys and not isinstance(rec.get("key"), str):
            raise ResultsFileError(
                f"{path}, line {lineno}: a JSON object but not a sweep record (no 'key')"
            )
        records.append(rec)
    return records


def load_records(path: str | os.PathLike) -> list[dict]:
    """Every complete record of a results file, in file order. A last line without its
    newline (a write cut short by a kill) is ignored; the file is not changed."""
    path = Path(path)
    if not path.is_file():
        raise ResultsFileError(f"results file {str(path)!r} does not exist")
    data = path.read_bytes()
    return parse_records(data[: data.rfind(b"\n") + 1], path, sweep_keys=True)


class _ResultsFile:
    """The JSON Lines file a sweep appends to, opened for one writer (an advisory lock)."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise SweepError(f"cannot open the results file {str(path)!r}: {exc}") from None
        try:
            self._lock()
            if created:
                _fsync_directory(path.parent)
            self.records = self._read_and_repair()
        except BaseException:
            os.close(self.fd)
            raise

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # no advisory locks (Windows): one writer is the user's job
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SweepError(
                f"another sweep is writing {self.path}; wait for it or choose another output"
            ) from None

    def _read_and_repair(self) -> list[dict]:
        os.lseek(self.fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(self.fd, 1 << 24):
            chunks.append(chunk)
        data = b"".join(chunks)
        complete = data.rfind(b"\n") + 1
        if complete < len(data):  # a write cut short by a kill: drop it, its cell runs again
            os.ftruncate(self.fd, complete)
            os.fsync(self.fd)
        return parse_records(data[:complete], self.path, sweep_keys=True)

    def append(self, record: Mapping) -> None:
        line = (json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n").encode()
        written = os.write(self.fd, line)  # one write of the whole line, O_APPEND
        while written < len(line):  # only on a full disk or a signal; finish the same line
            written += os.write(self.fd, line[written:])
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


def _fsync_directory(directory: Path) -> None:
    """Make a new file's directory entry durable too (POSIX; a no-op elsewhere)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ============================================================================ progress
def _label(settings: Mapping) -> str:
    """A short name for a cell's group: data, model, hidden sizes, activation, loss."""
    return " ".join(_group_columns(settings))


def _group_columns(settings: Mapping) -> list[str]:
    hidden = "-".join(str(w) for w in settings["hidden"]) or "-"
    return [
        _data_label(settings["data"]),
        settings["model"],
        hidden,
        settings["activation"] or "-",
        settings["loss"],
    ]


def _data_label(spec: Mapping) -> str:
    if spec["name"] == "teacher" and "path" not in spec:
        text = f"teacher-{spec['m']}x{spec['d_x']}-s{spec['seed']}"
    else:
        text = str(spec["name"])
    return text + (f"[:{spec['max_samples']}]" if "max_samples" in spec else "")


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    minutes = f"{seconds // 60 % 60:02d}" if seconds >= 3600 else str(seconds // 60)
    return (f"{seconds // 3600}:" if seconds >= 3600 else "") + f"{minutes}:{seconds % 60:02d}"


class _Progress:
    """Cells done / total, failures and the time left, on stderr. ``mode``: "bar" (tqdm when
    installed, else one line redrawn in place), "log" (one line per finished cell), "off"."""

    def __init__(self, mode: str, total: int, done: int, todo: int):
        self.mode, self.total, self.done, self.todo = mode, total, done, todo
        self.failed, self.finished, self.start = 0, 0, time.perf_counter()
        self.tqdm = None
        if mode == "bar":
            try:
                from tqdm.auto import tqdm
            except ImportError:
                pass
            else:
                self.tqdm = tqdm(
                    total=total, initial=done, unit="cell", desc="sweep", file=sys.stderr
                )
            if self.tqdm is None:
                self._draw()

    def update(self, record: Mapping) -> None:
        self.done += 1
        self.finished += 1
        self.failed += record["status"] != "ok"
        if self.mode == "log":
            verdicts = "".join(f"; {k} {v}" for k, v in record["summary"]["verdicts"].items())
            error = record["error"]
            status = "ok" if error is None else f"FAILED ({error['type']}: {error['message']})"
            cell = f"{record['key']} {_label(record['settings'])} seed {record['settings']['seed']}"
            seconds = record["seconds"].get("total", 0.0)
            line = f"[{self.done}/{self.total}] {cell}: {status}{verdicts} ({seconds:.1f} s)"
            print(line, file=sys.stderr, flush=True)
        elif self.tqdm is not None:
            self.tqdm.update(1)
            if self.failed:
                self.tqdm.set_postfix(failed=self.failed)
        elif self.mode == "bar":
            self._draw()

    def _draw(self) -> None:
        elapsed = time.perf_counter() - self.start
        left = elapsed / self.finished * (self.todo - self.finished) if self.finished else None
        width = 24
        filled = int(width * self.done / self.total) if self.total else width
        line = (
            f"sweep {self.done}/{self.total} cells [{'#' * filled}{'.' * (width - filled)}]"
            f"{f' {self.failed} failed' if self.failed else ''} elapsed {_clock(elapsed)}"
            f" left {'?' if left is None else '~' + _clock(left)}"
        )
        tty = sys.stderr.isatty()
        sys.stderr.write(("\r" + line + "\x1b[K") if tty else line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()
        elif self.mode == "bar" and sys.stderr.isatty():
            sys.stderr.write("\n")
            sys.stderr.flush()


# ============================================================================ running
@contextlib.contextmanager
def _one_thread_children() -> Iterator[None]:
    """Environment for worker processes started inside: one OpenMP and BLAS thread each (read
    by those libraries when a new process loads them), restored here afterwards."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {n: os.environ.get(n) for n in names}
    os.environ.update({n: "1" for n in names})
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _run_local(pending: Sequence[Cell], datasets: Mapping, jobs: int) -> Iterator[dict]:
    if jobs == 1:
        for cell in pending:
            yield run_cell(cell, datasets[cell.data_id])
        return
    # spawn, not fork: the OpenMP runtime of a parent that already ran the core is not fork-safe.
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
    try:
        with _one_thread_children():  # workers start during submit
            futures = {
                pool.submit(run_cell, cell, datasets[cell.data_id], True): cell for cell in pending
            }
        for fut in as_completed(futures):
            try:
                yield fut.result()
            except BrokenProcessPool as exc:
                raise SweepError(
                    f"a worker process died ({exc}); the cells finished so far are saved: run the sweep again to "
                    "resume, with --jobs 1 to find the cell that kills its process"
                ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(pending: Sequence[Cell], datasets: Mapping, scheduler: object) -> Iterator[dict]:
    try:
        import distributed
    except ImportError:
        raise SweepError("--scheduler needs Dask: pip install 'gradbasis[distributed]'") from None
    own = not isinstance(scheduler, distributed.Client)
    if own:
        try:
            client = distributed.Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise SweepError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}") from None
    else:
        client = scheduler
    try:
        # Each data set travels to the cluster once, not once per cell.
        used = sorted({c.data_id for c in pending})
        scattered = dict(
            zip(used, client.scatter([datasets[d] for d in used], hash=False), strict=False)
        )
        futures = {
            client.submit(run_cell, cell, scattered[cell.data_id], True, pure=False): cell
            for cell in pending
        }
        try:
            for fut in distributed.as_completed(list(futures)):
                try:
                    yield fut.result()
                except Exception as exc:  # the task itself was lost (KilledWorker, ...): record it
                    yield _lost_cell_record(futures[fut], exc)
        finally:
            client.cancel([f for f in futures if not f.done()])
    finally:
        if own:
            client.close()


def run(
    config: Mapping | str | os.PathLike | Sweep,
    *,
    output: str | os.PathLike | None = None,
    jobs: int | None = None,
    scheduler: object = None,
    progress: bool | str = True,
) -> list[dict]:
    """Run a sweep: train and check every cell not yet in the results file.

    ``config`` is a dict (as parsed from TOML), a sweep file's path or a :class:`Sweep`;
    :func:`load_sweep` validates it whole first. ``output`` (default: the sweep's own
    ``output``; neither: keep the records in memory only) is the JSON Lines file; the cells
    already in it are skipped (a cell recorded as failed is finished too: delete its line to
    run it again), and a partial last line is cut off. ``jobs`` worker processes run cells side by side (default:
    the CPUs available; 1 runs them here, one after another, each using every core);
    ``scheduler`` (a Dask scheduler address or a ``distributed.Client``) runs them on a Dask
    cluster instead. ``progress``: True shows a progress bar on stderr, "log" one line per
    finished cell, False nothing.

    Returns the records of the sweep's cells (read back or new) in grid order.

    With ``jobs`` > 1 the workers are started with ``spawn`` (the OpenMP runtime of a process
    that has run the core is not safe to fork), so a script that calls this needs the usual
    ``if __name__ == "__main__":`` guard, as every multiprocessing program does.
    """
    sweep = config if isinstance(config, Sweep) else load_sweep(config)
    if jobs is not None and scheduler is not None:
        raise SweepConfigError(
            "give jobs (worker processes here) or scheduler (a Dask cluster), not both"
        )
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise SweepConfigError(f"jobs must be a positive integer; got {jobs!r}")
    mode = {True: "bar", False: "off"}.get(progress, progress)  # type: ignore[call-overload]
    if mode not in ("bar", "log", "off"):
        raise SweepConfigError(f"progress must be True, False or 'log'; got {progress!r}")
    path = Path(output) if output is not None else sweep.output
    results = _ResultsFile(path) if path is not None else None
    try:
        wanted = {c.key for c in sweep.cells}
        found = {r["key"]: r for r in (results.records if results else []) if r["key"] in wanted}
        pending = [c for c in sweep.cells if c.key not in found]
        bar = _Progress(mode, len(sweep.cells), len(found), len(pending))
        try:
            if scheduler is not None:
                stream = _run_dask(pending, sweep.datasets, scheduler)
            else:
                workers = min(jobs or _available_cpus(), max(len(pending), 1))
                stream = _run_local(pending, sweep.datasets, workers)
            with contextlib.closing(stream):
                for record in stream:
                    record["sweep"] = sweep.name
                    if results is not None:
                        results.append(record)
                    found[record["key"]] = record
                    bar.update(record)
        finally:
            bar.close()
    finally:
        if results is not None:
            results.close()
    return [found[c.key] for c in sweep.cells]


# ============================================================================ report
def figure_records(records: Sequence[Mapping]) -> list[dict]:
    """The records in the flat form :func:`gradbasis.plots.sweep_figures` reads: ``width``,
    ``depth``, ``seed``, ``loss_value``, ``num_params``, ``num_outputs``, ``theorem1`` (that
    check's dict), ``theorem2`` (its dict, or dim_T / dim_T_tilde from Theorem 3 or 4),
    ``bounds`` (the finite ones) and, for a failed cell, ``error`` ("Type: message")."""
    flat = []
    for r in records:
        s, summary, checks = r["settings"], r["summary"], r["checks"]
        row: dict[str, Any] = {
            "key": r["key"],
            "model": s["model"],
            "width": s["width"],
            "depth": s["depth"],
            "seed": s["seed"],
            "loss_value": summary["L"],
            "num_params": summary["num_params"],
            "num_outputs": summary.get("num_outputs"),
            "bounds": {k: v for k, v in summary["bounds"].items() if v is not None},
        }
        if "theorem1" in checks:
            row["theorem1"] = checks["theorem1"]
        if "theorem2" in checks:
            row["theorem2"] = checks["theorem2"]
        elif summary["dim_T"] is not None and summary["dim_T_tilde"] is not None:
            row["theorem2"] = {"dim_T": summary["dim_T"], "dim_T_tilde": summary["dim_T_tilde"]}
        if r["status"] != "ok":
            row["error"] = f"{r['error']['type']}: {r['error']['message']}"
        flat.append({k: v for k, v in row.items() if v is not None})
    return flat


# "computed" is the spectrum's (it has no verdict): counted without a letter.
_VERDICT_CODES = {
    "holds": "h",
    "consistent": "c",
    "does not apply": "n",
    "violated": "v",
    "error": "e",
    "computed": "",
}
_POINT_CODES = {
    "local-minimum candidate": "m",
    "saddle": "s",
    "critical, curvature unknown": "u",
    "approximate critical point": "a",
    "not critical": "x",
    "non-differentiable": "k",
    "error": "e",
}


def _counts(values: Iterable[str], codes: Mapping[str, str]) -> str:
    tally: dict[str, int] = {}
    for v in values:
        code = codes.get(v, "?")
        tally[code] = tally.get(code, 0) + 1
    order = list(dict.fromkeys(codes.values())) + ["?"]
    return " ".join(f"{tally[c]}{c}" for c in order if c in tally) or "-"


def report(records: Sequence[Mapping]) -> str:
    """The summary table: one row per group of cells that differ only in their seed, with the
    number of cells and failures, each check's verdict counts, the median L(theta), the largest
    gap L - lower over Theorems 1-4 and the mean dim T / dim T~; then the failed cells."""
    if not records:
        return "no records"
    groups: dict[str, list[Mapping]] = {}
    for r in records:
        s = {k: v for k, v in r["settings"].items() if k != "seed"}
        groups.setdefault(_canonical(s), []).append(r)
    checks = [c for c in CHECKS if any(c in r["settings"]["checks"] for r in records)]
    trains = {_canonical(r["settings"]["train"]) for r in records}
    header = ["data", "model", "hidden", "activation", "loss"] + (
        ["train"] if len(trains) > 1 else []
    )
    header += ["cells", "failed", *checks, "median L", "max gap", "dim T", "dim T~"]
    rows = []
    for members in groups.values():
        s = members[0]["settings"]
        row = _group_columns(s)
        if len(trains) > 1:
            t = s["train"]
            row.append(f"{t['method']} {t['gtol']:g} {t['max_iter']}")
        ok = [m for m in members if m["status"] == "ok"]
        row += [str(len(members)), str(len(members) - len(ok))]
        for c in checks:
            verdicts = [
                m["summary"]["verdicts"][c] for m in members if c in m["summary"]["verdicts"]
            ]
            row.append(_counts(verdicts, _POINT_CODES if c == "classify" else _VERDICT_CODES))
        Ls = [m["summary"]["L"] for m in ok if m["summary"]["L"] is not None]
        gaps = [g for m in ok for g in m["summary"]["gaps"].values() if g is not None]
        dT = [m["summary"]["dim_T"] for m in ok if m["summary"]["dim_T"] is not None]
        dTt = [m["summary"]["dim_T_tilde"] for m in ok if m["summary"]["dim_T_tilde"] is not None]
        row += [
            f"{statistics.median(Ls):.6g}" if Ls else "-",
            f"{max(gaps):.2e}" if gaps else "-",
            f"{statistics.fmean(dT):.1f}" if dT else "-",
            f"{statistics.fmean(dTt):.1f}" if dTt else "-",
        ]
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    numeric = set(range(header.index("cells"), len(header)))

    def fmt(cells: Sequence[str]) -> str:
        padded = (
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=False))
        )
        return "  ".join(padded).rstrip()

    n_failed = sum(r["status"] != "ok" for r in records)
    lines = [f"sweep: {len(records)} cells in {len(groups)} groups, {n_failed} failed"]
    lines += [fmt(header), fmt(["-" * w for w in widths])]
    lines += [fmt(r) for r in rows]
    lines.append("verdicts: h holds, c consistent, n does not apply, v violated, e error")
    if "classify" in checks:
        lines.append(
            "classify: m local-minimum candidate, s saddle, u critical of unknown curvature, a approximate critical point, x not critical, k kink"
        )
    lines.append(
        "max gap: largest L(theta) - certified lower end over Theorems 1-4; dim T = rank J, dim T~ with perturbations"
    )
    failed = [r for r in records if r["status"] != "ok"]
    for r in failed[:10]:
        e = r["error"]
        cell = f"{r['key']} ({_label(r['settings'])} seed {r['settings']['seed']}, {e['stage']})"
        lines.append(f"failed {cell}: {e['type']}: {e['message']}")
    if len(failed) > 10:
        lines.append(f"... and {len(failed) - 10} more failed cells")
    return "\n".join(lines)
