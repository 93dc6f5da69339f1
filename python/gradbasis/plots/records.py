"""Sweep records as the sweep figures read them: loaded, checked, and their fields taken out.

The sweep figures read a list of records (dicts, one per trained network). The fields they use,
all optional, are::

    {"width": 4, "depth": 1, "seed": 0,             # the cell: hidden width, hidden layers, seed
     "loss_value": 0.031,                          # L(theta)
     "num_params": 17, "num_outputs": 20,          # d_theta and m * d_y (reference lines)
     "theorem1": {"lower": ..., "value": ..., "gap": ..., "tol": ..., "verdict": "holds"},
     "theorem2": {"dim_T": 12, "dim_T_tilde": 14},
     "bounds": {"linear model on x": 0.08, ...},   # name -> value, or name -> {"value": ...}
     "error": "..."}                               # a failed cell: skipped

Numbers may be JSON strings "inf" / "nan" (as :func:`gradbasis.verdict.jsonable` writes
them). A record that lacks a field a figure needs is left out of that figure, and the
returned :class:`FigureFiles` says which records were left out and why.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import SweepRecordError
from ..sweep.results import parse_records

#: (record, the values of the fields a figure asked for), one per record the figure can draw.
Rows = list[tuple[Mapping, list[float]]]


def load_records(path: str | Path) -> list[dict]:
    """Read a JSON Lines file of sweep records (one object per line; blank lines ignored).

    Raises :class:`ResultsFileError` (a :class:`SweepRecordError`) naming the first line that
    is not a JSON object, and :class:`SweepRecordError` for a missing file or one without
    records."""
    path = Path(path)
    if not path.is_file():
        raise SweepRecordError(f"records file {str(path)!r} does not exist")
    records = parse_records(path.read_bytes(), path, sweep_keys=False)
    if not records:
        raise SweepRecordError(f"{path} holds no records")
    return records


def check_records(records: object) -> list[Mapping]:
    """``records`` as a non-empty list of dicts; SweepRecordError naming the first that is not."""
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
        raise SweepRecordError(f"records must be a list of dicts; got {type(records).__name__}")
    records = list(records)
    if not records:
        raise SweepRecordError("records is empty: nothing to draw")
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise SweepRecordError(f"record {i} must be a dict; got {type(rec).__name__}")
    return records


def record_label(i: int, rec: Mapping) -> str:
    """ "record i (width=.., depth=.., seed=..)", as far as the record names its cell."""
    cell = ", ".join(f"{k}={rec[k]}" for k in ("width", "depth", "seed") if k in rec)
    return f"record {i}" + (f" ({cell})" if cell else "")


# ----------------------------------------------------------------------------- fields
def _field(rec: Mapping, dotted: str) -> Any:
    """rec["a"]["b"] for "a.b", or KeyError naming the part that is missing."""
    value: object = rec
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(dotted)
        value = value[part]
    return value


def _number(rec: Mapping, dotted: str) -> float:
    """A numeric field (JSON strings "inf"/"nan" accepted); KeyError/ValueError say why not."""
    value = _field(rec, dotted)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{dotted} is not a number ({value!r})")
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{dotted} is not a number ({value!r})") from None


def field_or(rec: Mapping, dotted: str, default: object) -> Any:
    """The field ``dotted`` ("a.b" for rec["a"]["b"]), or ``default`` when the record lacks it."""
    try:
        return _field(rec, dotted)
    except KeyError:
        return default


def number_or(rec: Mapping, dotted: str) -> float | None:
    """The numeric field ``dotted``, or None when it is missing or not a number."""
    try:
        return _number(rec, dotted)
    except (KeyError, ValueError):
        return None


def bound_value(value: object) -> float:
    """The number of one entry of ``bounds`` (a value, or {"value": ...}); KeyError/ValueError
    say why not."""
    if isinstance(value, Mapping):
        if "value" not in value:
            raise KeyError("value")
        value = value["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"not a number ({value!r})")
    return float(value)


def usable_rows(
    records: list[Mapping], fields: Sequence[str], figure: str
) -> tuple[Rows, list[str]]:
    """(record, values of ``fields``) for every usable record, and why the others were left out;
    SweepRecordError when no record can be used in the ``figure``."""
    rows, skipped = [], []
    for i, rec in enumerate(records):
        if rec.get("error"):
            skipped.append(f"{record_label(i, rec)}: a failed cell ({str(rec['error'])[:80]})")
            continue
        try:
            values = [_number(rec, f) for f in fields]
        except KeyError as exc:
            skipped.append(f"{record_label(i, rec)}: no {exc.args[0]}")
            continue
        except ValueError as exc:
            skipped.append(f"{record_label(i, rec)}: {exc}")
            continue
        bad = [f"{f} = {v}" for f, v in zip(fields, values, strict=False) if not math.isfinite(v)]
        if bad:
            skipped.append(f"{record_label(i, rec)}: not finite ({', '.join(bad)})")
            continue
        rows.append((rec, values))
    if not rows:
        reasons = "; ".join(skipped[:3]) + (" ..." if len(skipped) > 3 else "")
        raise SweepRecordError(
            f"no record holds {', '.join(fields)} for the {figure} figure ({reasons})"
        )
    return rows, skipped


# ----------------------------------------------------------------------------- grouping
def group_key(rec: Mapping, by: str | None) -> Any:
    """rec[by] as a hashable group label (None when absent; other unhashable values as text)."""
    value = rec.get(by) if by else None
    return value if value is None or isinstance(value, (int, float, str)) else str(value)


def grouped_rows(rows: Rows, by: str | None) -> dict:
    """The rows by their ``by`` value, in :func:`sort_key` order."""
    out: dict = {}
    for rec, values in rows:
        out.setdefault(group_key(rec, by), []).append((rec, values))
    return dict(sorted(out.items(), key=lambda kv: sort_key(kv[0])))


def distinct_depths(records: Iterable[Mapping]) -> list:
    """The distinct ``depth`` values, sorted (None, for records without one, last)."""
    return sorted({group_key(rec, "depth") for rec in records}, key=sort_key)


def sort_key(value: object) -> tuple:
    """Numbers in order, then other values by their text, then None (mixed types never compare)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (value is None, not number, value if number else 0, str(value))
