"""Data for the command line and examples: the built-in Iris set, scikit-learn's 8x8 digits
(``pip install "gradbasis[datasets]"``; nothing is downloaded) and user files (.npz, .csv)."""

from __future__ import annotations

import csv
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ._validation import as_float_array, check_finite
from .errors import DataFileError, InvalidLabelError, ShapeError

__all__ = [
    "BUILTIN",
    "Dataset",
    "encode_labels",
    "load_builtin",
    "load_data_file",
    "load_digits",
    "load_iris",
]


@dataclass(frozen=True)
class Dataset:
    """Inputs X (m, d_x), integer class labels (m,) or real targets, and a description."""

    X: np.ndarray
    labels: np.ndarray  # class index per sample (classification) ...
    targets: np.ndarray | None  # ... or real-valued targets (m, d_y) (regression), else None
    classes: tuple[str, ...]
    name: str
    sample_shape: tuple[int, ...] | None = None  # one sample's natural shape (images: (1, h, w))

    def targets_for(self, loss_name: str) -> np.ndarray:
        """Targets in the form the loss needs: one-hot rows (squared, cross-entropy) or
        +-1 (smoothed hinge, two classes only); real targets as given for the squared loss."""
        if self.targets is not None:
            if loss_name != "squared":
                raise InvalidLabelError(
                    f"{self.name} has real-valued targets; only the squared loss fits them"
                )
            return self.targets
        return encode_labels(self.labels, len(self.classes), loss_name)


def encode_labels(labels: np.ndarray, num_classes: int, loss_name: str) -> np.ndarray:
    if loss_name == "smoothed_hinge":
        if num_classes != 2:
            raise InvalidLabelError(
                f"the smoothed hinge loss is binary (d_y = 1) but the data have {num_classes} classes; "
                "use --loss cross_entropy or squared, or a two-class data file"
            )
        return np.where(labels == 1, 1.0, -1.0).reshape(-1, 1)
    return np.eye(num_classes)[labels]


def standardize(X: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per column (constant columns are only centred)."""
    sd = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def load_iris(*, standardized: bool = True) -> Dataset:
    """Fisher's Iris: 150 samples, 4 features, 3 classes (shipped with the package)."""
    text = resources.files("gradbasis").joinpath("data/iris.csv").read_text()
    rows = list(csv.reader(text.splitlines()))[1:]
    X = np.array([[float(v) for v in r[:4]] for r in rows])
    classes = tuple(sorted({r[4] for r in rows}))
    labels = np.array([classes.index(r[4]) for r in rows])
    return Dataset(standardize(X) if standardized else X, labels, None, classes, "iris")


def load_digits() -> Dataset:
    """The 8x8 handwritten digits of scikit-learn (1,797 samples, 64 pixels, 10 classes; it ships
    with scikit-learn, nothing is downloaded). X holds the pixel intensities scaled from 0..16 to
    [0, 1], row-major, so ``X.reshape(-1, 1, 8, 8)`` gives one-channel images (``sample_shape``
    is (1, 8, 8)). Needs ``pip install "gradbasis[datasets]"`` (scikit-learn)."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as exc:
        raise DataFileError(
            f"the digits data ship with scikit-learn, which cannot be imported ({exc}): "
            'pip install "gradbasis[datasets]" (or pip install scikit-learn)'
        ) from None
    bunch = sklearn_digits()
    X = np.ascontiguousarray(bunch.data, dtype=np.float64) / 16.0
    labels = np.asarray(bunch.target, dtype=np.int64)
    classes = tuple(str(c) for c in range(10))
    return Dataset(X, labels, None, classes, "digits", sample_shape=(1, 8, 8))


#: Data sets named on the command line (``--data NAME``) and in sweep files.
BUILTIN = {"iris": load_iris, "digits": load_digits}


def load_builtin(name: str) -> Dataset:
    """A built-in data set by name ("iris", "digits")."""
    if name not in BUILTIN:
        raise DataFileError(f"unknown data set {name!r}; built-in ones are {sorted(BUILTIN)}")
    return BUILTIN[name]()


def load_data_file(path: str | Path) -> Dataset:
    """A user's data: ``.npz`` with arrays ``X`` and either ``y`` (class labels) or ``Y``
    (real targets, or one-hot rows); or ``.csv`` with a header, features first and the class
    label (any strings or integers) in the last column. Features are used as given."""
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"data file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            archive = np.load(path, allow_pickle=False)
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise DataFileError(
                f"{path.name} is not a .npz archive that NumPy can read ({exc})"
            ) from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataFileError(
                f"{path.name} holds a single .npy array, not a .npz archive of named arrays X and y or Y"
            )
        with archive as f:
            if "X" not in f:
                raise DataFileError(f"{path} has no array named 'X' (found {sorted(f.files)})")
            X = as_float_array(_npz_array(f, "X", path.name), "X")
            if "y" in f:
                return _classification(
                    X, np.asarray(_npz_array(f, "y", path.name)).ravel(), path.name
                )
            if "Y" in f:
                Y = as_float_array(_npz_array(f, "Y", path.name), "Y")
                Y = Y.reshape(-1, 1) if Y.ndim == 1 else Y
                _check_rows(X, Y, path.name)
                check_finite(Y, "Y")
                return Dataset(X, np.zeros(len(X), dtype=int), Y, (), path.name)
            raise DataFileError(
                f"{path} needs labels 'y' or targets 'Y' beside 'X' (found {sorted(f.files)})"
            )
    if suffix == ".csv":
        with path.open(newline="") as fh:
            rows = [r for r in csv.reader(fh) if r]
        if len(rows) < 2 or len(rows[0]) < 2:
            raise DataFileError(
                f"{path} needs a header row and at least one sample with a feature and a label"
            )
        width = len(rows[0])
        for line, r in enumerate(rows[1:], start=2):
            if len(r) != width:
                raise DataFileError(
                    f"{path}: row {line} has {len(r)} columns but the header has {width}; every row needs "
                    "the same features and a label"
                )
        try:
            X = np.array([[float(v) for v in r[:-1]] for r in rows[1:]])
        except ValueError as exc:
            raise DataFileError(
                f"{path}: every column but the last must be numeric ({exc})"
            ) from None
        return _classification(X, np.array([r[-1].strip() for r in rows[1:]]), path.name)
    raise DataFileError(
        f"unsupported data file {path.name!r}: use .npz (X, y or Y) or .csv (label last)"
    )


def _npz_array(archive, key: str, name: str) -> np.ndarray:
    """One array of a .npz archive; object arrays (which need pickle) and damaged members are
    reported as problems of the file."""
    try:
        return archive[key]
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise DataFileError(
            f"{name}: array {key!r} cannot be read without pickle or is damaged ({exc}); "
            "save plain numeric arrays with np.savez"
        ) from None


def _check_rows(X: np.ndarray, other: np.ndarray, name: str) -> None:
    if X.ndim != 2 or len(X) == 0 or len(other) != len(X):
        raise ShapeError(
            f"{name}: X must be (m, d_x) with one label/target row per sample; got {X.shape} and {other.shape}"
        )


def _classification(X: np.ndarray, raw: np.ndarray, name: str) -> Dataset:
    _check_rows(X, raw, name)
    check_finite(X, "X")
    classes = tuple(str(c) for c in np.unique(raw))
    if len(classes) < 2:
        raise InvalidLabelError(f"{name} has a single class {classes}; nothing to classify")
    labels = np.searchsorted(np.unique(raw), raw)
    return Dataset(X, labels, None, classes, name)
