"""``ecmm prepare``: build the offline data and pretrained assets (idempotent)."""

from __future__ import annotations

import argparse
import time


def add_parser(subparsers) -> None:
    """Register ``prepare``."""
    from ecmm.assets import ASSETS

    parser = subparsers.add_parser("prepare", help="build data and pretrained assets into the cache")
    parser.add_argument("--force", action="store_true", help="rebuild even when already prepared")
    parser.add_argument("--only", nargs="+", choices=[a.name for a in ASSETS], metavar="ASSET",
                        help="build only these assets (default: all, in order)")


def run(args: argparse.Namespace) -> int:
    """Build each asset in order, printing one line per asset."""
    from ecmm.assets import ASSETS, asset_dir, ensure_asset

    for asset in ASSETS:
        if args.only and asset.name not in args.only:
            continue
        start = time.perf_counter()
        ensure_asset(asset.name, force=args.force)
        print(f"{asset.name:9s} ready in {time.perf_counter() - start:6.1f} s  ({asset.description})")
    print(f"cache: {asset_dir('catalog').parent.parent}")
    return 0
