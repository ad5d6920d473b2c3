"""Contrastively pretrain the offline CLIP model on the source-domain icons and cache it.

Usage: python data_scripts/pretrain_clip.py [--force] [--output FOLDER]
(`ecmm prepare` does the same through ``ecmm.assets``; it needs the backbone asset first.)
"""

import argparse
import json
from pathlib import Path

from ecmm.assets import asset_card, ensure_asset
from ecmm.pretraining.clip import build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    parser.add_argument("--output", type=Path, default=None,
                        help="write into this folder instead of the cache (always builds)")
    args = parser.parse_args()
    if args.output is not None:
        card = build(args.output)
    else:
        ensure_asset("clip", force=args.force)
        card = asset_card("clip")
    print(json.dumps(card["metrics"], indent=2))


if __name__ == "__main__":
    main()
