"""``ecmm prepare``: build, check and repair the cached data and models (idempotent).

- ``ecmm prepare``: build the default assets that are missing, and rebuild every built asset that
  ``--check`` flags (damaged or outdated), with what depends on it.
- ``ecmm prepare --check``: verify every asset (sizes and sha256s) and print a table; exit 1 when
  something needs ``ecmm prepare``.
- ``ecmm prepare --repair``: rebuild only the damaged and outdated assets (and their dependants).
- ``--force``: rebuild even when ok, into a temporary folder swapped in only on success.
- ``--catalog CSV`` / ``--model SPEC``: the assets of that catalog and model (their own cache
  folder); assets the pair does not use (the offline catalog for your own, the kit's pretrained
  model for an open_clip one) are left alone unless ``--only`` names them.
"""

from __future__ import annotations

import argparse
import sys
import time


def add_parser(subparsers) -> None:
    """Register ``prepare``."""
    from ecmm.assets import ASSETS

    parser = subparsers.add_parser("prepare", help="build, check or repair the cached data and models")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true", help="verify every asset and print a table; build nothing")
    action.add_argument("--repair", action="store_true", help="rebuild only the damaged and outdated assets")
    action.add_argument("--force", action="store_true", help="rebuild even when ok (swapped in only on success)")
    parser.add_argument("--only", nargs="+", choices=[a.name for a in ASSETS], metavar="ASSET",
                        help="only these assets (default: the default ones, plus every built one)")
    from ecmm.cli import add_shop_options

    add_shop_options(parser)


def status_table(statuses) -> str:
    """The ``--check`` table: one line per asset with its status, folder and (if not ok) why."""
    lines = [f"{'asset':<13} {'status':<9} path"]
    for status in statuses:
        detail = f"  ({status.detail})" if status.detail else ""
        lines.append(f"{status.name:<13} {status.status:<9} {status.path}{detail}")
    return "\n".join(lines)


def _needs_work(status, default: bool) -> bool:
    return status.status in ("damaged", "outdated") or (status.status == "missing" and default)


def _check(only) -> int:
    from dataclasses import replace

    from ecmm.assets import asset_in_use, builder_available, check_assets, get_asset

    statuses = [s for s in check_assets() if (s.name in only if only else asset_in_use(s.name))]
    statuses = [replace(s, detail="its builder is not in this version of the kit")
                if s.status == "missing" and not builder_available(s.name) else s for s in statuses]
    print(status_table(statuses))
    flagged = [s for s in statuses if _needs_work(s, get_asset(s.name).default and builder_available(s.name))]
    if not flagged:
        print("every built asset matches its card")
        return 0
    repair = [s.name for s in flagged if s.status != "missing"]
    if repair:
        print(f"damaged or outdated: {', '.join(repair)}: run `ecmm prepare --repair`")
    missing = [s.name for s in flagged if s.status == "missing"]
    if missing:
        print(f"not built: {', '.join(missing)}: run `ecmm prepare`")
    return 1


def run(args: argparse.Namespace) -> int:
    """Check, repair or build the assets in registry order, printing one line per asset."""
    from ecmm.artifacts import ArtifactError
    from ecmm.assets import ASSETS, MissingBuilderError, active_shop, asset_in_use, asset_status, builder_available, \
        ensure_asset
    from ecmm.cli import announce_shop
    from ecmm.config import get_settings

    announce_shop("prepare")
    if args.check:
        return _check(args.only)
    failures = 0
    for asset in ASSETS:
        if (asset.name not in args.only) if args.only else not asset_in_use(asset.name):
            continue
        start = time.perf_counter()
        status = asset_status(asset.name)
        if args.repair:
            wanted = args.force or status.status in ("damaged", "outdated")
        else:
            wanted = args.force or _needs_work(status, asset.default or bool(args.only))
        if status.status == "missing" and not wanted:
            continue  # built on first use
        if wanted and status.status == "missing" and not builder_available(asset.name):
            print(f"{asset.name:9s} skipped: its builder is not in this version of the kit", file=sys.stderr)
            continue
        why = f"; was {status.status}: {status.detail}" if wanted and status.status != "ok" else ""
        if wanted:
            try:
                ensure_asset(asset.name, force=args.force, upgrade_legacy=True)
            except (ArtifactError, MissingBuilderError, RuntimeError, OSError, ValueError) as error:
                # the old folder is still in place: a failed build never replaces it
                print(f"{asset.name:9s} failed: {error}", file=sys.stderr)
                failures += 1
                continue
        print(f"{asset.name:9s} ready in {time.perf_counter() - start:6.1f} s  ({asset.description}{why})")
    scope = active_shop().scope
    home = get_settings().home
    print(f"cache: {home}" + (f" (this catalog and model: {home / scope})" if scope else ""))
    return 1 if failures else 0
