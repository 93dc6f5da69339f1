"""The data a sweep's cells train on: Iris, the synthetic teacher or a data file, each given in
the sweep as a spec that becomes part of the cells' settings (and so of their keys)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._options import (
    known_keys,
    nonempty_string,
    nonnegative_int,
    nonnegative_number,
    option_table,
    positive_int,
)
from ..datasets import BUILTIN, Dataset, load_builtin, load_data_file
from ..errors import GradbasisError, SweepConfigError

__all__ = ["teacher_data"]

_TEACHER_DEFAULTS = {"width": 4, "activation": "tanh", "noise": 0.1, "seed": 0}


def resolve_data(value: object, key: str, base: Path) -> tuple[dict[str, Any], Path | None]:
    """The data spec as it enters a cell's settings, and the file to read (if any)."""
    if isinstance(value, str):
        value = {"name": value.strip()} if value.strip() in BUILTIN else {"path": value}
    spec_in = option_table(value, key)
    spec: dict[str, Any]
    if "path" in spec_in:
        known_keys(spec_in, ("path", "max_samples"), key)
        written = nonempty_string(spec_in["path"], f"{key}.path")
        path = Path(written) if Path(written).is_absolute() else base / written
        if path.suffix.lower() not in (".npz", ".csv"):
            raise SweepConfigError(
                f"{key}.path: {written!r} is neither a built-in data set ({', '.join(sorted(BUILTIN))}) nor a "
                ".npz or .csv file"
            )
        if not path.is_file():
            raise SweepConfigError(f"{key}.path: data file {str(path)!r} does not exist")
        # The contents are part of the identity: a changed file means new cells.
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        spec = {"name": path.name, "path": written, "sha256": digest}
    else:
        name = nonempty_string(spec_in.get("name"), f"{key}.name")
        if name in BUILTIN:
            known_keys(spec_in, ("name", "max_samples"), key)
            spec, path = {"name": name}, None
        elif name == "teacher":
            known_keys(spec_in, ("name", "m", "d_x", "d_y", *_TEACHER_DEFAULTS), key)
            for required in ("m", "d_x", "d_y"):
                if required not in spec_in:
                    raise SweepConfigError(f"{key}.{required} is required for the teacher data")
            full = {**_TEACHER_DEFAULTS, **spec_in}
            spec = {
                "name": "teacher",
                "m": positive_int(full["m"], f"{key}.m"),
                "d_x": positive_int(full["d_x"], f"{key}.d_x"),
                "d_y": positive_int(full["d_y"], f"{key}.d_y"),
                "width": positive_int(full["width"], f"{key}.width"),
                "activation": nonempty_string(full["activation"], f"{key}.activation"),
                "noise": nonnegative_number(full["noise"], f"{key}.noise"),
                "seed": nonnegative_int(full["seed"], f"{key}.seed"),
            }
            path = None
        else:
            raise SweepConfigError(
                f"{key}.name: unknown data set {name!r}; use {', '.join(repr(b) for b in sorted(BUILTIN))}, "
                "'teacher' or path = '...'"
            )
    if "max_samples" in spec_in:
        spec["max_samples"] = positive_int(spec_in["max_samples"], f"{key}.max_samples")
    return spec, path


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


def load_data(spec: Mapping, path: Path | None, key: str) -> Dataset:
    """The data set of a spec from :func:`resolve_data`, cut to ``max_samples`` when given."""
    try:
        if path is not None:
            data = load_data_file(path)
        elif spec["name"] in BUILTIN:
            data = load_builtin(spec["name"])
        else:
            data = teacher_data(spec)
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
        data = Dataset(
            data.X[keep], data.labels[keep], targets, data.classes, data.name, data.sample_shape
        )
    return data
