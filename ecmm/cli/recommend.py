"""``ecmm recommend``: top-k products for a user or to complete a cart (hybrid two-tower model).

Examples::

    ecmm recommend --user u00042 --k 5
    ecmm recommend --user u00042 --json
    ecmm recommend --cart SKU_ID,SKU_ID --k 10

The shop's users come from its own event log when the catalog has one (a folder catalog's
``interactions.csv``), else from the interaction simulator. The hybrid model is fitted once on
them and cached per catalog (:func:`ecmm.app.load_recommender`): later runs load it and train
nothing. Ids and k are checked like the server's (:mod:`ecmm.validation`); unknown users or SKUs:
one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import json

from ecmm.app import LIMITS
from ecmm.cli import add_shop_options, announce_shop

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    """Register ``recommend``."""
    parser = subparsers.add_parser("recommend", help="recommend products for a user or a cart")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--user", metavar="USER_ID", help="a user id, e.g. u00042")
    target.add_argument("--cart", metavar="SKU,SKU", help="comma-separated SKU ids in the cart")
    parser.add_argument("--k", type=int, default=10, help=f"how many products (1..{LIMITS.recommend_k}, default 10)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of text")
    add_shop_options(parser)


def run(args: argparse.Namespace) -> int:
    """Print the recommendations; ValueError for bad input (the CLI turns it into exit 2)."""
    from ecmm import app
    from ecmm.validation import check_k, check_sku_ids, check_user_id

    k = check_k(args.k, LIMITS.recommend_k, "--k")
    user_id = check_user_id(args.user) if args.user is not None else None
    cart_ids = check_sku_ids(args.cart) if user_id is None else None

    def check_ids(data) -> None:  # refuse unknown ids with one line
        if user_id is not None:
            data.split.user_index(user_id)
        else:
            data.split.item_indices(cart_ids)

    announce_shop("recommend")
    recommender = app.load_recommender(check=check_ids)
    rows = recommender.for_user(user_id, k) if user_id is not None else recommender.for_cart(cart_ids, k)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    for rank, row in enumerate(rows, start=1):
        flag = "  [new]" if row["new_product"] else ""
        print(f"{rank:>2}. {row['sku_id']}  {row['title']}  ({row['category']})  {row['score']:.3f}{flag}")
    return 0
