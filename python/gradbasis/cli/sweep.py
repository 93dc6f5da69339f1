"""``gradbasis sweep run FILE`` and ``gradbasis sweep report FILE`` (see :mod:`gradbasis.sweep`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .. import sweep

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sweep`` with its ``run`` and ``report`` commands to the ``gradbasis`` parser."""
    p = subparsers.add_parser(
        "sweep", help="train and certify a grid of models (a TOML sweep file)"
    )
    p.set_defaults(handler=lambda args: _usage(p))
    sub = p.add_subparsers(dest="sweep_command")

    r = sub.add_parser(
        "run",
        help="run every cell not yet in the results file (resumes a killed sweep)",
        epilog="exit status: 0 when every cell ran, 1 when a cell failed (recorded), 2 on a bad sweep file",
    )
    r.add_argument("file", help="the sweep file (TOML)")
    r.add_argument(
        "--output",
        help="results file (JSON Lines); default: the sweep file's 'output', else FILE.jsonl",
    )
    where = r.add_mutually_exclusive_group()
    where.add_argument(
        "--jobs", type=int, help="worker processes (default: the CPUs available; 1 runs cells here)"
    )
    where.add_argument(
        "--scheduler", help="run the cells on this Dask scheduler (tcp://host:8786) instead"
    )
    r.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=0,
        help="no progress bar: one line per finished cell; twice: print nothing but errors",
    )
    r.set_defaults(handler=run_command)

    s = sub.add_parser("report", help="print the summary table and write the sweep figures")
    s.add_argument("file", help="a results file (.jsonl) or the sweep file (.toml) that names one")
    s.add_argument(
        "--figures", help="folder for the figures (default: beside the results, RESULTS-figures)"
    )
    s.add_argument(
        "--formats", nargs="+", default=["png", "svg"], help="figure formats (default: png svg)"
    )
    s.add_argument("--no-figures", action="store_true", help="print the table only")
    s.set_defaults(handler=report_command)


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return 2


def _results_path(file: Path, named: Path | None) -> Path:
    return named if named is not None else file.with_suffix(".jsonl")


def run_command(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    plan = sweep.load_sweep(args.file)
    out = Path(args.output) if args.output else _results_path(Path(args.file), plan.output)
    progress_by_quiet: dict[int, bool | str] = {0: True, 1: "log"}  # -q: a line per cell
    progress = progress_by_quiet.get(args.quiet, False)
    try:
        records = sweep.run(
            plan, output=out, jobs=args.jobs, scheduler=args.scheduler, progress=progress
        )
    except KeyboardInterrupt:
        print(
            f"gradbasis: interrupted; the finished cells are saved in {out}: run again to resume",
            file=sys.stderr,
        )
        return 130
    failed = sum(r["status"] != "ok" for r in records)
    if args.quiet < 2:
        print(sweep.report(records))
        print(
            f"{len(records)} cells ({failed} failed) in {out}; {time.perf_counter() - start:.1f} s"
        )
    return 1 if failed else 0


def report_command(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if path.suffix.lower() == ".toml":
        path = _results_path(path, sweep.load_sweep(path).output)
    records = sweep.load_records(path)
    print(sweep.report(records))
    if args.no_figures:
        return 0
    from ..plots import require_matplotlib, sweep_figures

    try:
        require_matplotlib()
    except ImportError as exc:
        print(f"note: figures skipped ({exc}); the table above is complete")
        return 0
    folder = Path(args.figures) if args.figures else path.with_name(path.stem + "-figures")
    figures = sweep_figures(sweep.figure_records(records), folder, formats=tuple(args.formats))
    print(f"figures in {folder}:")
    for fig in figures:  # each says its files and the records it left out
        print(fig)
    return 0
