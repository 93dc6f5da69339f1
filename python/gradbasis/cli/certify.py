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

from .._version import __version__
from ..datasets import load_data_file, load_iris
from ..errors import GradbasisError, InvalidOptionError, ShapeError
from ..losses import get_loss
from ..models import Model
from ..models.registry import MODEL_KINDS, build_model
from ..objective import Objective
from ..optimize import minimize
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
    c.add_argument("--loss", default="squared", help="squared, cross_entropy or smoothed_hinge")
    c.add_argument(
        "--data", help=".npz (X, y or Y) or .csv (label last); default: the built-in Iris data"
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
        help="certify a PyTorch nn.Sequential MLP (or gradbasis.torch.ResNetModule) saved whole with "
        "torch.save(module, FILE.pt) at its own point, without training (--model, --widths and --activation "
        "are then ignored). Needs PyTorch. The file is unpickled (torch.load(..., weights_only=False)), which "
        "can run arbitrary code: load only files you trust. The built-in Iris inputs are standardized (zero mean, "
        "unit variance per feature), so train on the same inputs",
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
        return importlib.import_module("gradbasis.torch")
    except ImportError as exc:
        raise GradbasisError(
            f"--torch needs PyTorch, which cannot be imported ({exc}): pip install torch "
            '(or pip install "gradbasis[torch]")'
        ) from None


def imported_model(
    path: str, X: np.ndarray, Y: np.ndarray, data_name: str
) -> tuple[Model, np.ndarray, dict]:
    """The model and theta of a saved torch module, checked against the data's sizes."""
    interop = torch_interop()
    module = interop.load_module(path)
    model, theta = interop.from_module(module)
    if model.input_dim != X.shape[1]:
        raise ShapeError(
            f"the module in {path} takes inputs of size {model.input_dim}, but {data_name} has d_x = {X.shape[1]}"
        )
    if model.output_dim != Y.shape[1]:
        raise ShapeError(
            f"the module in {path} gives {model.output_dim} outputs, but the {data_name} targets have "
            f"d_y = {Y.shape[1]}"
        )
    info = {
        "file": str(path),
        "max |f_torch - f| on the data": interop.output_difference(module, model, theta, X),
    }
    return model, theta, info


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


def certify(args: argparse.Namespace) -> int:
    check_certify_options(args)
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    data = load_data_file(args.data) if args.data else load_iris()
    loss = get_loss(args.loss)
    Y = data.targets_for(loss.name)
    if args.max_samples and len(data.X) > args.max_samples:
        keep = np.random.default_rng(args.seed).choice(len(data.X), args.max_samples, replace=False)
        X, Y = data.X[np.sort(keep)], Y[np.sort(keep)]
    else:
        X = data.X
    torch_info: dict | None = None
    if args.torch:
        model, theta0, torch_info = imported_model(args.torch, X, Y, data.name)
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
    print(f"verdict: {thm.verdict} -- report written to {out}")
    return 0
