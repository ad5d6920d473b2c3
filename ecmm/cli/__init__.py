"""The ``ecmm`` command. Each sub-command is a module here with ``add_parser`` and ``run``.

Errors a user can fix (bad arguments, unknown ids, unreadable files, text that is not UTF-8)
print one line on stderr and exit with status 2; a missing or damaged cache prints one line that
names the folder and ``ecmm prepare --repair`` and exits with status 1. Neither shows a traceback.
Input is checked by :mod:`ecmm.validation` with the limits of :data:`ecmm.app.LIMITS`, the same
as the web server's.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# Module names under ecmm.cli, in help order.
COMMANDS: tuple[str, ...] = ("info", "prepare", "search", "recommend", "support", "serve")


class UsageError(ValueError):
    """A user-fixable problem: printed as one line, exit status 2."""


def one_line(error: BaseException) -> str:
    """An error's message on one line (a KeyError's without its quotes)."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(text.split()) or error.__class__.__name__


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    from ecmm import __version__

    parser = argparse.ArgumentParser(prog="ecmm", description="Transfer learning for e-commerce: the kit's command line.")
    parser.add_argument("--version", action="version", version=f"ecmm {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"ecmm.cli.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(f"ecmm.cli.{args.command.replace('-', '_')}")
    from ecmm.artifacts import ArtifactError

    try:
        return int(module.run(args) or 0)
    except ArtifactError as error:
        print(f"ecmm {args.command}: error: {error}", file=sys.stderr)
        return 1
    except (UsageError, ValueError, FileNotFoundError) as error:
        print(f"ecmm {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ecmm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
