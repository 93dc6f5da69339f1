"""The ``gradbasis`` command line: ``certify`` (the default), ``sweep`` and ``figure``, each
defined in its own module with a ``register(subparsers)`` function."""

from __future__ import annotations

import argparse
import os
import sys

from .._version import __version__
from ..errors import GradbasisError
from . import certify, figure, sweep


def parser() -> argparse.ArgumentParser:
    """The ``gradbasis`` parser with every command registered."""
    p = argparse.ArgumentParser(
        prog="gradbasis",
        description="How good is this minimum? (Kawaguchi, Huang & Kaelbling 2019)",
    )
    p.add_argument("--version", action="version", version=f"gradbasis {__version__}")
    sub = p.add_subparsers(dest="command")
    certify.register(sub)
    for register in _more_commands():
        register(sub)
    return p


def _more_commands() -> list:
    """``register(subparsers)`` of the commands after ``certify``; every registered parser sets
    ``handler`` (a function of the parsed arguments returning the exit status)."""
    return [sweep.register, figure.register]


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        args = parser().parse_args(["certify", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.handler(args)
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading: not an error
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except GradbasisError as exc:
        print(f"gradbasis: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
