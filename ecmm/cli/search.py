"""``ecmm search "QUERY" [--image PATH] [--k 10] [--json]``: search the offline catalog.

Uses the CLIP model fine-tuned on the shop (fine-tuned with a progress bar on first use, then
cached).  With ``--image`` the photo is the query and QUERY may be omitted.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ecmm.cli import UsageError

MAX_K = 100  # largest number of results


def add_parser(subparsers) -> None:
    """Register ``search``."""
    parser = subparsers.add_parser("search", help="search the shop catalog by text or by photo")
    parser.add_argument("query", nargs="?", default=None, help='what you are looking for, e.g. "red backpack"')
    parser.add_argument("--image", type=Path, default=None, help="search with a photo instead (PNG/JPEG path)")
    parser.add_argument("--k", type=int, default=10, help=f"number of results (1..{MAX_K}, default 10)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")


def _read_image(path: Path):
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as error:
        raise UsageError(f"cannot read image {path.name!r}: {error.__class__.__name__}; pass a PNG or JPEG file") from None


def validate(args: argparse.Namespace) -> None:
    """Check the arguments before any model is loaded; raise :class:`UsageError` if they are bad."""
    from ecmm.search import MAX_QUERY_CHARACTERS

    if not 1 <= args.k <= MAX_K:
        raise UsageError(f"--k must be between 1 and {MAX_K}; got {args.k}")
    if args.image is None:
        query = (args.query or "").strip()
        if not query:
            raise UsageError('the query is empty: give a text query such as "red backpack" or --image PATH')
        if len(query) > MAX_QUERY_CHARACTERS:
            raise UsageError(f"the query has {len(query)} characters; keep it under {MAX_QUERY_CHARACTERS}")
    elif not args.image.is_file():
        raise UsageError(f"no such image file: {args.image.name!r}")


def run(args: argparse.Namespace) -> int:
    """Search and print the results; returns the exit status."""
    validate(args)
    image = _read_image(args.image) if args.image is not None else None
    from ecmm.search import load_catalog_search, results_to_records

    search = load_catalog_search()
    results = search.search_image(image, args.k) if image is not None else search.search_text(args.query, args.k)
    if args.json:
        print(json.dumps(results_to_records(results), indent=2, ensure_ascii=False))
    else:
        print(results.to_string(index=False))
    return 0
