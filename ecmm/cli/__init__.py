"""The ``ecmm`` command. Each sub-command is a module here with ``add_parser`` and ``run``.

Errors a user can fix (bad arguments, unknown ids, unreadable files) print one line on stderr
and exit with status 2; they never show a traceback.
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
    try:
        return int(module.run(args) or 0)
    except (UsageError, ValueError, FileNotFoundError) as error:
        print(f"ecmm {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ecmm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
