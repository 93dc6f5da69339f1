"""Reading a sweep: a TOML file or the same structure as a dict, checked whole, and its grid
expanded into cells (see :mod:`gradbasis.sweep` for the keys)."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .._options import (
    known_keys,
    nonempty_string,
    nonnegative_int,
    one_of,
    one_or_more,
    open_unit_interval,
    option_table,
    positive_int,
    positive_number,
    true_or_false,
)
from ..datasets import Dataset
from ..errors import GradbasisError, InvalidOptionError, SweepConfigError
from ..losses import get_loss
from ..models.registry import MODEL_KINDS, build_model, is_torch_kind
from ..optimize import METHODS
from .checks import CHECK_DEFAULTS, CHECK_OPTIONS, CHECKS
from .data import load_data, resolve_data

__all__ = ["Cell", "Sweep", "load_sweep"]

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


def canonical_json(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _key(settings: Mapping) -> str:
    return hashlib.sha256(canonical_json(settings).encode()).hexdigest()[:16]


@contextlib.contextmanager
def config_errors() -> Iterator[None]:
    """Report a bad option found by the shared checks of :mod:`gradbasis._options` as a
    :class:`SweepConfigError` (itself an :class:`InvalidOptionError`), the one error a sweep
    that cannot run raises."""
    try:
        yield
    except SweepConfigError:
        raise
    except InvalidOptionError as exc:
        raise SweepConfigError(str(exc)) from None


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
    with config_errors():
        return _expand(*_config_source(config))


def _expand(raw: Mapping, base: Path, default_name: str) -> Sweep:
    """The body of :func:`load_sweep`: ``raw`` read from a file in ``base`` (or a dict)."""
    known_keys(raw, _TOP_KEYS, "")
    name = nonempty_string(raw.get("name", default_name), "name")
    output = None if raw.get("output") is None else base / nonempty_string(raw["output"], "output")
    store_theta = true_or_false(raw.get("store_theta", False), "store_theta")
    trainings = _train_settings(option_table(raw.get("train", {}), "train"))
    options, default_run = _check_settings(option_table(raw.get("checks", {}), "checks"))
    grids = raw.get("grid", {})
    if isinstance(grids, Mapping):
        blocks = [("grid", grids)]
    elif isinstance(grids, list) and grids:
        blocks = [(f"grid[{i}]", option_table(g, f"grid[{i}]")) for i, g in enumerate(grids)]
    else:
        raise SweepConfigError(
            f"grid must be a table or a non-empty array of tables; got {grids!r}"
        )

    cells: dict[str, Cell] = {}
    datasets: dict[str, Dataset] = {}
    built: set[tuple] = set()
    for where, grid in blocks:
        known_keys(grid, (*_GRID_DEFAULTS, "checks"), where)
        axis = {
            k: one_or_more(grid.get(k, default), f"{where}.{k}")
            for k, default in _GRID_DEFAULTS.items()
        }
        run_checks = (
            _check_list(grid["checks"], f"{where}.checks") if "checks" in grid else default_run
        )
        check_key = f"{where}.checks" if "checks" in grid else "checks.run"
        check_options = {
            o: options[o] for o in sorted({o for c in run_checks for o in CHECK_OPTIONS[c]})
        }
        data_axis = []
        for i, value in enumerate(axis["data"]):
            dkey = f"{where}.data[{i}]"
            spec, path = resolve_data(value, dkey, base)
            data_id = _key(spec)
            if data_id not in datasets:
                datasets[data_id] = load_data(spec, path, dkey)
            data_axis.append((spec, data_id, dkey))
        grid_axes = itertools.product(
            data_axis,
            [_model_kind(v, f"{where}.models") for v in axis["models"]],
            [positive_int(v, f"{where}.widths") for v in axis["widths"]],
            [nonnegative_int(v, f"{where}.depths") for v in axis["depths"]],
            [nonempty_string(v, f"{where}.activations") for v in axis["activations"]],
            [_loss(v, f"{where}.losses") for v in axis["losses"]],
            [nonnegative_int(v, f"{where}.seeds") for v in axis["seeds"]],
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
                    build_model(
                        kind,
                        data.X.shape[1],
                        d_y,
                        hidden,
                        activation or "identity",
                        data.sample_shape,
                    )
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
    known_keys(train, tuple(_TRAIN_DEFAULTS), "train")
    axis = {
        k: one_or_more(train.get(k, default), f"train.{k}")
        for k, default in _TRAIN_DEFAULTS.items()
    }
    methods = [one_of(v, "train.method", METHODS) for v in axis["method"]]
    gtols = [positive_number(v, "train.gtol") for v in axis["gtol"]]
    max_iters = [positive_int(v, "train.max_iter") for v in axis["max_iter"]]
    return [
        {"method": a, "gtol": b, "max_iter": c}
        for a, b, c in itertools.product(methods, gtols, max_iters)
    ]


def _check_settings(checks: Mapping) -> tuple[dict, list[str]]:
    """The [checks] options and the default list of checks to run."""
    known_keys(checks, tuple(CHECK_DEFAULTS), "checks")
    get = lambda k: checks.get(k, CHECK_DEFAULTS[k])  # noqa: E731
    options = {
        "grad_tol": positive_number(get("grad_tol"), "checks.grad_tol"),
        "rtol": open_unit_interval(get("rtol"), "checks.rtol"),
        "eps": positive_number(get("eps"), "checks.eps"),
        "t": nonnegative_int(get("t"), "checks.t"),
    }
    return options, _check_list(get("run"), "checks.run")


def _loss(value: object, key: str) -> str:
    try:
        return get_loss(nonempty_string(value, key)).name
    except GradbasisError as exc:
        raise SweepConfigError(f"{key}: {exc}") from None


def _check_list(value: object, key: str) -> list[str]:
    if not isinstance(value, list):
        raise SweepConfigError(f"{key} must be a list of check names; got {value!r}")
    for v in value:
        one_of(v, key, tuple(CHECKS))
    return [c for c in CHECKS if c in value]  # canonical order: the key ignores the order written


def _model_kind(value: object, key: str) -> str:
    if is_torch_kind(value):
        return str(value)
    return one_of(value, key, MODEL_KINDS)


#: The checks a torch module cell can run (the others need the C++ graph's layers).
TORCH_CHECKS = ("classify", "theorem1")


def _check_combination(run_checks: Sequence[str], kind: str, depth: int, t: int, key: str) -> None:
    if is_torch_kind(kind):
        other = [c for c in run_checks if c not in TORCH_CHECKS]
        if other:
            raise SweepConfigError(
                f"{key}: {other} need a gradbasis graph model and cannot run on {kind!r}; a torch module "
                f"cell runs {list(TORCH_CHECKS)}"
            )
        return
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
