"""Pretrain the kit's image backbone on the source-domain icon corpus and cache it.

Usage: python data_scripts/pretrain_backbone.py [--force] [--output FOLDER]
(`ecmm prepare` does the same through ``ecmm.assets``.)
"""

import argparse
import json
from pathlib import Path

from ecmm.assets import asset_dir, ensure_asset
from ecmm.pretraining.backbone import build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    parser.add_argument("--output", type=Path, default=None,
                        help="write into this folder instead of the cache (always builds)")
    args = parser.parse_args()
    if args.output is not None:
        card = build(args.output)
        folder = args.output
    else:
        folder = ensure_asset("backbone", force=args.force)
        card = json.loads((asset_dir("backbone") / "card.json").read_text())
    print(f"backbone in {folder}")
    print(json.dumps({key: card[key] for key in ("metrics", "num_parameters", "wall_seconds")},
                     indent=2))


if __name__ == "__main__":
    main()
