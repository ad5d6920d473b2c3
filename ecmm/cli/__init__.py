"""The ``ecmm`` command. Each sub-command is a module here with ``add_parser`` and ``run``.

Errors a user can fix (bad arguments, unknown ids, unreadable files, text that is not UTF-8)
print one line on stderr and exit with status 2; a missing or damaged cache prints one line that
names the folder and ``ecmm prepare --repair`` and exits with status 1. Neither shows a traceback.
Input is checked by :mod:`ecmm.validation` with the limits of :data:`ecmm.app.LIMITS`, the same
as the web server's.

The commands that use the shop's catalog take ``--catalog CSV`` (a folder catalog), ``--model SPEC``
(``ecmm-clip``, an open_clip name[:tag], ``<config.json>:<checkpoint>``) and ``--skip-bad-images``;
they are written into ``ECMM_CATALOG``, ``ECMM_MODEL`` and ``ECMM_SKIP_BAD_IMAGES`` when the
arguments are parsed, so child processes and cached loaders see the same shop. Each of them
prints one line on stderr naming the catalog and the model (stdout stays machine-readable). A
malformed catalog is one line (``error: <file>, line <n>: ...``) and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Sequence

# Module names under ecmm.cli, in help order.
COMMANDS: tuple[str, ...] = ("info", "prepare", "search", "recommend", "support", "serve")


class UsageError(ValueError):
    """A user-fixable problem: printed as one line, exit status 2."""


def one_line(error: BaseException) -> str:
    """An error's message on one line (a KeyError's without its quotes)."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(text.split()) or error.__class__.__name__


def add_shop_options(parser: argparse.ArgumentParser) -> None:
    """``--catalog``, ``--model`` and ``--skip-bad-images``: which shop a command runs on."""
    group = parser.add_argument_group("catalog and model")
    group.add_argument("--catalog", metavar="CSV", default=None,
                       help="your own catalog: a CSV with sku_id,title,product_type,category,colour,price,description,"
                            "image (default: ECMM_CATALOG, else the ECMM_PROFILE shop)")
    group.add_argument("--model", metavar="SPEC", default=None,
                       help="the CLIP model: ecmm-clip (default), an open_clip name[:tag or checkpoint], "
                            "or <config.json>:<checkpoint> (default: ECMM_MODEL)")
    group.add_argument("--skip-bad-images", action="store_true", default=None,
                       help="leave out products whose images are missing or unreadable (counted) instead of refusing "
                            "the catalog")


def _absolute_parts(spec: str) -> str:
    """A model spec with its existing file parts made absolute (so any working folder reads it alike)."""
    parts = spec.split(":")
    if len(parts) == 2 and all(Path(part).expanduser().exists() for part in parts):
        return ":".join(str(Path(part).expanduser().resolve()) for part in parts)
    if Path(spec).expanduser().is_dir():
        return str(Path(spec).expanduser().resolve())
    return spec


def apply_shop_options(args: argparse.Namespace) -> None:
    """Write the shop options into the environment (``ECMM_CATALOG``, ``ECMM_MODEL``,
    ``ECMM_SKIP_BAD_IMAGES``), so this process's loaders and its child processes agree."""
    if getattr(args, "catalog", None) is not None:
        catalog = args.catalog.strip()
        os.environ["ECMM_CATALOG"] = str(Path(catalog).expanduser().resolve()) if catalog else ""
    if getattr(args, "model", None) is not None:
        os.environ["ECMM_MODEL"] = _absolute_parts(args.model.strip())
    if getattr(args, "skip_bad_images", None):
        os.environ["ECMM_SKIP_BAD_IMAGES"] = "1"


def announce_shop(command: str, unused: str | None = None) -> None:
    """Print on stderr which catalog and model the command runs on (one line).

    Args:
        command: the command's name.
        unused: why this run needs neither (e.g. ``support`` without a photo); then the catalog
            is not opened at all.

    Raises:
        ecmm.data.folder.CatalogError: the catalog is malformed.
    """
    if unused is not None:
        print(f"ecmm {command}: catalog and model not used ({unused})", file=sys.stderr, flush=True)
        return
    from ecmm.assets import active_shop

    shop = active_shop()
    print(f"ecmm {command}: catalog: {catalog_line(shop.source)}; model: {shop.model}", file=sys.stderr, flush=True)


def catalog_line(source) -> str:
    """``source.describe()``, or its name and why it does not load (a damaged cached catalog, which
    ``ecmm prepare --check`` must still report)."""
    from ecmm.artifacts import ArtifactError

    try:
        return source.describe()
    except ArtifactError as error:
        return f"{source.name} (it does not load: {error.problem})"


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
    apply_shop_options(args)
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
    except BrokenPipeError:  # the reader stopped early (`ecmm search ... | head`): nothing more to say
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
