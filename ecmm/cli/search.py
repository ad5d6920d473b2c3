"""``ecmm search "QUERY" [--image PATH] [--k 10] [--mode MODE] [--json] [--catalog CSV] [--model SPEC]``.

Searches the shop's catalog (the offline shop, the hub's, or your own with ``--catalog``) with the
CLIP model fine-tuned on it (built with a progress bar on first use, then cached per catalog and model).
With ``--image`` the photo is the query and QUERY may be omitted. The query, k and the photo are
checked like the server's (:mod:`ecmm.validation`, limits in :data:`ecmm.app.LIMITS`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ecmm.app import LIMITS
from ecmm.cli import add_shop_options, announce_shop

__all__ = ["add_parser", "validate", "run"]


def add_parser(subparsers) -> None:
    """Register ``search``."""
    parser = subparsers.add_parser("search", help="search the shop catalog by text or by photo")
    parser.add_argument("query", nargs="?", default=None, help='what you are looking for, e.g. "red backpack"')
    parser.add_argument("--image", type=Path, default=None, help="search with a photo instead (PNG, JPEG or WebP)")
    parser.add_argument("--k", type=int, default=10, help=f"number of results (1..{LIMITS.search_k}, default 10)")
    parser.add_argument("--mode", default=None,
                        help="text search: dense (CLIP), lexical (words) or hybrid; default: the measured best")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    add_shop_options(parser)


def validate(args: argparse.Namespace) -> tuple[str | None, object]:
    """Check the arguments before any model is loaded.

    Returns:
        ``(query, image)``: the cleaned query (None with ``--image``) and the photo as a uint8
        ``(H, W, 3)`` array (None without ``--image``).

    Raises:
        ecmm.validation.InputError: one line saying what is wrong.
    """
    from ecmm.validation import check_image_file, check_k, check_mode, check_query

    args.k = check_k(args.k, LIMITS.search_k, "--k")
    args.mode = check_mode(args.mode)
    if args.image is None:
        return check_query(args.query), None
    return None, check_image_file(args.image)


def run(args: argparse.Namespace) -> int:
    """Search and print the results; returns the exit status."""
    from ecmm.app import load_search
    from ecmm.search import results_to_records

    query, image = validate(args)
    announce_shop("search")
    search = load_search(photos=image is not None)  # a text query needs neither torch nor the photo index
    if image is not None:
        results, understood = search.search_image(image, args.k), {}
    else:  # the results and what was read from the query, from one encoding of it
        results, understood = search.answer(query, args.k, args.mode)
        understood = dict(understood or {})
    if args.json:
        print(json.dumps(results_to_records(results), indent=2, ensure_ascii=False))
        if understood:
            print(f"understood: {json.dumps(understood, ensure_ascii=False, default=str)}", file=sys.stderr)
    else:
        if understood:
            print("understood: " + ", ".join(f"{key} = {value}" for key, value in understood.items()))
        print(results.to_string(index=False))
    return 0
