"""Dispatch ``python -m ecmm.bench NAME``."""

from __future__ import annotations

import argparse
import importlib
import sys

from ecmm.bench import BENCHMARKS

# Benchmarks of the serving layer, beside the library's BENCHMARKS.
SERVING_BENCHMARKS: tuple[str, ...] = ("serve",)


def main(argv=None) -> int:
    """Parse arguments and run one benchmark."""
    parser = argparse.ArgumentParser(prog="python -m ecmm.bench", description="Measure the kit's models.")
    subparsers = parser.add_subparsers(dest="benchmark", metavar="NAME")
    for name in (*BENCHMARKS, *SERVING_BENCHMARKS):
        importlib.import_module(f"ecmm.bench.{name}").add_parser(subparsers)
    args = parser.parse_args(argv)
    if args.benchmark is None:
        parser.print_help()
        return 2
    from ecmm.cli import apply_shop_options

    apply_shop_options(args)  # --catalog / --model / --skip-bad-images, as for the ecmm command
    try:
        return int(importlib.import_module(f"ecmm.bench.{args.benchmark}").run(args) or 0)
    except (ValueError, FileNotFoundError) as error:
        print(f"bench {args.benchmark}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
