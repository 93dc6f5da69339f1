"""``gradbasis figure NAME``: draw one of the package's figures as PNG and SVG files.

Names: ``geometry-generic`` and ``geometry-perturbable`` (the geometric view of the paper's
Figures 1-2 and 3-4 on the toy f = w2 tanh(w1 x)), ``spectrum`` (the singular values of J for
the default ``gradbasis certify`` model trained on Iris) and ``sweep`` (the sweep figures of a
JSON Lines records file, ``--records``: a ``gradbasis sweep`` results file or flat records as
described in :mod:`gradbasis.plots`)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..errors import InvalidOptionError

if TYPE_CHECKING:  # for annotations only: the figures are imported when one is drawn
    from ..plots import FigureFiles

NAMES = ("geometry-generic", "geometry-perturbable", "spectrum", "sweep")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``figure`` command to the ``gradbasis`` parser's subparsers."""
    from ..plots import FORMATS

    p = subparsers.add_parser(
        "figure",
        help="draw a figure as PNG and SVG (geometric view, spectrum of J, sweep figures); needs gradbasis[plot]",
        description=__doc__,
    )
    p.add_argument("name", choices=NAMES, help="which figure")
    p.add_argument(
        "--output", default="figures", help="directory the files are written to (default: figures)"
    )
    p.add_argument(
        "--format",
        dest="formats",
        nargs="+",
        choices=FORMATS,
        default=list(FORMATS),
        help="file formats (default: png svg)",
    )
    p.add_argument(
        "--records",
        help="JSON Lines file of sweep records, e.g. a `gradbasis sweep` results file "
        "(figure sweep only)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="initialisation seed of the spectrum model (default: 0)"
    )
    p.set_defaults(handler=figure)


def _spectrum(args: argparse.Namespace) -> FigureFiles:
    """A tanh MLP 4-2-3 on Iris, squared loss on one-hot labels, trained with lbfgs+newton to
    ||grad L|| <= 1e-10: a point where J spans twelve orders of magnitude, so Theorem 1 is only
    "consistent" (the gap lies along directions the gradient does not resolve). The rank cut and
    the gradient resolution come from Theorem 1's check at the trained point."""
    from ..datasets import load_iris
    from ..models.registry import build_model
    from ..objective import Objective
    from ..optimize import minimize
    from ..plots import spectrum_figure
    from ..theory.theorem1 import theorem1

    data = load_iris()
    Y = data.targets_for("squared")
    model = build_model("mlp", data.X.shape[1], Y.shape[1], [2], "tanh")
    obj = Objective(model, "squared", data.X, Y)
    fit = minimize(
        obj, model.init(seed=args.seed), method="lbfgs+newton", gtol=1e-10, max_iter=5000
    )
    thm = theorem1(obj, fit.theta)
    description = (
        f"{model!r} on Iris (m = {data.X.shape[0]}), squared loss, seed {args.seed}: "
        f"||grad L|| = {fit.gradient_norm:.1e}, Theorem 1 {thm.verdict}"
    )
    return spectrum_figure(
        model,
        fit.theta,
        data.X,
        args.output,
        rank_tol=thm.rank_tol,
        resolution=thm.resolution or None,
        description=description,
        formats=args.formats,
    )


def _sweep_records(path: str) -> list[dict]:
    """Records in the flat form the sweep figures read: a ``gradbasis sweep`` results file
    (records with ``settings`` and ``summary``) is flattened by :func:`gradbasis.sweep.figure_records`,
    any other JSON Lines file is taken as flat records already."""
    from ..plots import load_records

    records = load_records(path)
    if all(
        isinstance(r.get("settings"), dict) and isinstance(r.get("summary"), dict) for r in records
    ):
        from ..sweep import figure_records

        return figure_records(records)
    return records


def figure(args: argparse.Namespace) -> int:
    """Draw the named figure; print the written files and what was left out."""
    from .. import plots  # the figures need matplotlib: imported when drawn

    if args.name == "sweep" and not args.records:
        raise InvalidOptionError(
            "figure sweep needs --records FILE.jsonl (one sweep record per line)"
        )
    if args.name != "sweep" and args.records:
        raise InvalidOptionError(
            f"--records is only read by `figure sweep`, not by `figure {args.name}`"
        )
    try:
        plots.require_matplotlib()  # before any training or reading
        if args.name == "geometry-generic":
            results = [plots.geometry_generic(args.output, formats=args.formats)]
        elif args.name == "geometry-perturbable":
            results = [plots.geometry_perturbable(args.output, formats=args.formats)]
        elif args.name == "spectrum":
            results = [_spectrum(args)]
        else:
            results = plots.sweep_figures(
                _sweep_records(args.records), args.output, formats=args.formats
            )
    except ImportError as exc:  # matplotlib missing: the message names the extra to install
        print(f"gradbasis: error: {exc}", file=sys.stderr)
        return 2
    for r in results:
        print(r)
    return 0
