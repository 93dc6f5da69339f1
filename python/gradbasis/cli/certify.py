"""``gradbasis certify``: train a model to a critical point (or take a saved PyTorch module's
point as it is), classify the point, certify Theorem 1 there, print the tables and write a JSON
report."""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from .._progress import show_progress
from .._version import __version__
from ..datasets import BUILTIN, Dataset, load_builtin, load_data_file
from ..errors import GradbasisError, InvalidOptionError, ShapeError
from ..losses import get_loss
from ..models import Model
from ..models.registry import MODEL_KINDS, build_model
from ..objective import Objective
from ..optimize import minimize
from ..report import write_report
from ..theory.assumptions import assumption2, lemma2
from ..theory.critical_points import classify_point
from ..theory.theorem1 import theorem1
from ..verdict import jsonable, table


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``certify`` command (the default one) to the ``gradbasis`` parser."""
    c = subparsers.add_parser(
        "certify", help="train to a critical point and certify Theorem 1 (default: MLP on Iris)"
    )
    c.add_argument("--model", choices=MODEL_KINDS, default="mlp")
    c.add_argument(
        "--widths", type=int, nargs="*", default=[2], help="hidden layer sizes (default: 2)"
    )
    c.add_argument("--activation", default="gelu")
    c.add_argument(
        "--loss",
        default=None,
        help="squared, cross_entropy or smoothed_hinge (default: squared, or with --torch the loss the "
        "module names in a gradbasis_loss attribute)",
    )
    c.add_argument(
        "--data",
        help="a built-in data set (iris, digits: scikit-learn's 8x8 digits, needs "
        'pip install "gradbasis[datasets]") or a file: .npz (X, y or Y) or .csv (label last); default: iris',
    )
    c.add_argument(
        "--max-samples", type=int, default=0, help="use a random subset of this many samples"
    )
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--method", default="lbfgs+newton")
    c.add_argument("--gtol", type=float, default=1e-12, help="stop training at this gradient norm")
    c.add_argument("--max-iter", type=int, default=5000)
    c.add_argument(
        "--grad-tol",
        type=float,
        default=1e-6,
        help="scale-free criticality: the most one parameter alone may still gain, relative to max(1, |L|)",
    )
    c.add_argument(
        "--rtol", type=float, default=1e-8, help="relative tolerance of the Theorem 1 verdict"
    )
    c.add_argument("--output", default="gradbasis-report.json")
    c.add_argument("--quiet", action="store_true")
    c.add_argument(
        "--torch",
        metavar="FILE.pt",
        help="certify a PyTorch module saved whole with torch.save(module, FILE.pt) at its own point, without "
        "training (--model, --widths and --activation are then ignored). An nn.Sequential MLP (or "
        "gradbasis.torch.ResNetModule) runs as the C++ model; any other module whose last operation is an "
        "nn.Linear runs through torch.func (gradbasis.torch.TorchModel). Needs PyTorch. The file is unpickled "
        "(torch.load(..., weights_only=False)), which can run arbitrary code: load only files you trust. The "
        "built-in Iris inputs are standardized (zero mean, unit variance per feature) and the digits scaled to "
        "[0, 1], so train on the same inputs (gradbasis.datasets)",
    )
    c.add_argument(
        "--input-shape",
        metavar="D1,D2,...",
        help="with --torch: one sample's shape as the module takes it (default: the data set's own shape, "
        "e.g. 1,8,8 for digits, else the flat row)",
    )
    c.add_argument(
        "--report",
        metavar="DIR",
        help="also write DIR/report.json, DIR/report.html (one page, readable offline) and DIR/report.md",
    )
    c.add_argument(
        "--train",
        action="store_true",
        help="with --torch: train from the imported point before certifying (without --torch the "
        "model is always trained)",
    )
    c.set_defaults(handler=certify)


def write_json_atomically(path: Path, payload: dict) -> None:
    """Write to a temporary file beside the target, then rename: never a half-written report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(jsonable(payload), fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


def torch_interop():
    """gradbasis.torch, or an error saying how to install PyTorch."""
    try:
        importlib.import_module("torch")  # first: gradbasis.torch's modules may be cached
        return importlib.import_module("gradbasis.torch")
    except ImportError as exc:
        raise GradbasisError(
            f"--torch needs PyTorch, which cannot be imported ({exc}): pip install torch "
            '(or pip install "gradbasis[torch]")'
        ) from None


def imported_model(
    module, path: str, X: np.ndarray, Y: np.ndarray, data: Dataset, input_shape: str | None
) -> tuple[Model, np.ndarray, dict]:
    """The model and theta of a torch module loaded from ``path``, checked against the data's
    sizes: the C++ model for an nn.Sequential MLP or ResNetModule, else a TorchModel (tried on
    the given ``input_shape``, else the data set's sample shape, then the flat row)."""
    interop = torch_interop()
    try:  # an nn.Sequential MLP or a ResNetModule: the C++ model (faster, every check)
        model, theta = interop.from_module(module)
    except interop.UnsupportedModuleError as exc:
        errors = [f"as a C++ model: {exc}"]
        for shape in _input_shapes(input_shape, data, X.shape[1]):
            try:
                model, theta = interop.TorchModel(module, shape), None
                theta = model.theta0
                break
            except (ShapeError, interop.UnsupportedModuleError) as exc2:
                errors.append(f"as a TorchModel with input shape {shape}: {exc2}")
        else:
            raise ShapeError(
                f"the module in {path} cannot be certified: " + "; ".join(errors)
            ) from None
    if model.input_dim != X.shape[1]:
        raise ShapeError(
            f"the module in {path} takes inputs of size {model.input_dim}, but {data.name} has d_x = {X.shape[1]}"
        )
    if model.output_dim != Y.shape[1]:
        raise ShapeError(
            f"the module in {path} gives {model.output_dim} outputs, but the {data.name} targets have "
            f"d_y = {Y.shape[1]}"
        )
    info: dict[str, object] = {
        "file": str(path),
        "path": "C++ model" if model.runs_in_core else "TorchModel (torch.func)",
        "max |f_torch - f| on the data": _output_difference(interop, module, model, theta, X),
    }
    if not model.runs_in_core:
        info["input_shape"] = list(getattr(model, "input_shape"))  # noqa: B009  (a TorchModel)
    return model, theta, info


def _input_shapes(given: str | None, data: Dataset, d_x: int) -> list[tuple[int, ...]]:
    if given:
        try:
            shape = tuple(int(v) for v in given.replace("x", ",").split(",") if v.strip())
        except ValueError:
            raise InvalidOptionError(
                f"input-shape must be integers separated by commas; got {given!r}"
            ) from None
        if not shape or any(v < 1 for v in shape):
            raise InvalidOptionError(f"input-shape must be positive integers; got {given!r}")
        return [shape]
    shapes = [data.sample_shape] if data.sample_shape else []
    return [*shapes, (d_x,)] if (d_x,) not in shapes else shapes


def _output_difference(interop, module, model: Model, theta: np.ndarray, X: np.ndarray) -> float:
    """max |module(X) - model.forward(theta, X)| with X shaped as the module takes it."""
    if model.runs_in_core:
        return interop.output_difference(module, model, theta, X)
    import torch

    dtype = next(module.parameters()).dtype
    if getattr(model, "input_dtype", "float64") != "float64":
        dtype = torch.long
    shaped = np.asarray(X).reshape(X.shape[0], *getattr(model, "input_shape"))  # noqa: B009
    with torch.no_grad():
        out = module(torch.tensor(shaped, dtype=dtype))
    return float(np.max(np.abs(out.detach().to(torch.float64).numpy() - model.forward(theta, X))))


def check_certify_options(args: argparse.Namespace) -> None:
    """The numeric options of ``certify``, checked before anything is loaded or trained (an
    InvalidOptionError, printed as ``gradbasis: error: ...`` with exit status 2)."""
    for name, value, ok, wanted in [
        ("gtol", args.gtol, math.isfinite(args.gtol) and args.gtol > 0, "a finite number > 0"),
        (
            "grad-tol",
            args.grad_tol,
            math.isfinite(args.grad_tol) and args.grad_tol > 0,
            "a finite number > 0",
        ),
        ("rtol", args.rtol, 0 < args.rtol < 1, "a relative tolerance in (0, 1)"),
        ("max-iter", args.max_iter, args.max_iter >= 1, "a positive integer"),
        (
            "max-samples",
            args.max_samples,
            args.max_samples >= 0,
            "a non-negative integer (0: every sample)",
        ),
        ("seed", args.seed, args.seed >= 0, "a non-negative integer"),
    ]:
        if not ok:
            raise InvalidOptionError(f"{name} must be {wanted}; got {value}")


def _loss_name(given: str | None, module: object) -> str:
    """--loss, else the loss a torch module names in its ``gradbasis_loss`` attribute, else
    the squared loss."""
    if given:
        return given
    named = getattr(module, "gradbasis_loss", None)
    return named if isinstance(named, str) else "squared"


def _load_data(name: str | None) -> Dataset:
    if not name:
        return load_builtin("iris")
    if name in BUILTIN and not Path(name).exists():
        return load_builtin(name)
    return load_data_file(name)


def certify(args: argparse.Namespace) -> int:
    check_certify_options(args)
    with show_progress(not args.quiet):
        return _certify(args)


def _certify(args: argparse.Namespace) -> int:
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    data = _load_data(args.data)
    module = torch_interop().load_module(args.torch) if args.torch else None
    loss = get_loss(_loss_name(args.loss, module))
    Y = data.targets_for(loss.name)
    if args.max_samples and len(data.X) > args.max_samples:
        keep = np.random.default_rng(args.seed).choice(len(data.X), args.max_samples, replace=False)
        X, Y = data.X[np.sort(keep)], Y[np.sort(keep)]
    else:
        X = data.X
    torch_info: dict | None = None
    if args.torch:
        model, theta0, torch_info = imported_model(module, args.torch, X, Y, data, args.input_shape)
    else:
        model = build_model(args.model, X.shape[1], Y.shape[1], args.widths, args.activation)
        theta0 = model.init(seed=args.seed)
    obj = Objective(model, loss, X, Y)
    stages["load"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if args.torch and not args.train:
        # An imported module is asked about its own point: no training, the gradient as it is.
        theta = theta0
        value, grad = obj.value_and_gradient(theta)
        gnorm = float(np.linalg.norm(grad))
        training = {"trained": False, "value": value, "gradient_norm": gnorm}
        training_row = (
            f"none (the imported point as it is; --train trains from it): ||grad L|| = {gnorm:.3g}"
        )
    else:
        fit = minimize(
            obj,
            theta0,
            method=args.method,
            gtol=args.gtol,
            max_iter=args.max_iter,
            progress=not args.quiet,
        )
        theta = fit.theta
        training = {"trained": True, **{k: v for k, v in vars(fit).items() if k != "theta"}}
        training_row = f"{fit.method}: {fit.iterations} iterations, ||grad L|| = {fit.gradient_norm:.3g} ({fit.message})"
    stages["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    point = classify_point(obj, theta, grad_tol=args.grad_tol)
    stages["classify"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    a2, l2 = assumption2(model, theta, X), lemma2(obj, theta)
    stages["assumption2+lemma2"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    thm = theorem1(obj, theta, rtol=args.rtol, grad_tol=args.grad_tol)
    stages["theorem1"] = time.perf_counter() - t0

    setting = [
        ("data", f"{data.name}: m = {X.shape[0]}, d_x = {X.shape[1]}, d_y = {Y.shape[1]}"),
        ("model", repr(model) + (f" from {args.torch}" if args.torch else "")),
        ("loss", loss.name),
        ("training", training_row),
    ]
    if torch_info is not None:
        setting.append(
            ("max |f_torch - f|", f"{torch_info['max |f_torch - f| on the data']:.3g} on the data")
        )
    if not args.quiet:
        print(table(f"gradbasis {__version__} certify", setting))
        print()
        print(point)
        print()
        print(thm)
        print()
        print(
            table(
                "checks and timings (s)",
                [
                    ("Assumption 2", str(a2.verdict)),
                    ("Lemma 2", str(l2.verdict)),
                    *((f"time {k}", round(v, 4)) for k, v in stages.items()),
                ],
            )
        )
    report = {
        "gradbasis": __version__,
        "setting": dict(setting),
        "seed": args.seed,
        "training": training,
        "point": point.to_dict(),
        "assumption2": a2.to_dict(),
        "lemma2": l2.to_dict(),
        "theorem1": thm.to_dict(),
        "seconds": stages,
        "theta": theta.tolist(),
    }
    if torch_info is not None:
        report["torch"] = torch_info
    out = Path(args.output)
    write_json_atomically(out, report)
    if args.report:
        pages = write_report(
            args.report, thm, point=point, setting=dict(setting), seconds=stages, payload=report
        )
        print(f"report pages: {pages['html']} and {pages['markdown']}")
    print(f"verdict: {thm.verdict} -- report written to {out}")
    return 0
