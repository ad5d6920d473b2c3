"""``ecmm recommend``: top-k products for a user or to complete a cart (hybrid two-tower model).

Examples::

    ecmm recommend --user u00042 --k 5
    ecmm recommend --user u00042 --json
    ecmm recommend --cart SKU_ID,SKU_ID --k 10

The shop's users come from the interaction simulator (offline profile), so the command first
builds the same data as notebook 06 (about a minute on a laptop CPU; ``ECMM_QUICK=1`` is faster)
and fits the hybrid model. Unknown users or SKUs: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import json

__all__ = ["add_parser", "run", "load_shop", "fit_recommender"]


def add_parser(subparsers) -> None:
    """Register ``recommend``."""
    parser = subparsers.add_parser("recommend", help="recommend products for a user or a cart")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--user", metavar="USER_ID", help="a user id, e.g. u00042")
    target.add_argument("--cart", metavar="SKU,SKU", help="comma-separated SKU ids in the cart")
    parser.add_argument("--k", type=int, default=10, help="how many products (default 10)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of text")


def load_shop():
    """The catalog, simulated log, time split and content embeddings of notebook 06 (a ``RecsysData``)."""
    from ecmm.recsys.pipeline import build_recsys_data

    return build_recsys_data(progress=False)


def fit_recommender(data):
    """The hybrid two-tower model fitted on ``data.split.train``."""
    from ecmm.recsys.pipeline import build_models

    model = build_models(data.item_embeddings, quick=data.quick, names=("hybrid",), progress=False)["hybrid"]
    model.fit(data.split.train)
    return model


def run(args: argparse.Namespace) -> int:
    """Print the recommendations; ValueError for bad input (the CLI turns it into exit 2)."""
    if args.k < 1:
        raise ValueError(f"--k must be >= 1; got {args.k}")
    cart_ids = None
    if args.cart is not None:
        cart_ids = [sku.strip() for sku in args.cart.split(",") if sku.strip()]
        if not cart_ids:
            raise ValueError("--cart is empty: give comma-separated SKU ids")
    data = load_shop()
    split = data.split
    if args.user is not None:  # check the ids before the (slower) training
        user = split.user_index(args.user)
    else:
        cart = split.item_indices(cart_ids)
    model = fit_recommender(data)
    if args.user is not None:
        items, scores = model.recommend(user=user, k=args.k), model.score_users([user])[0]
    else:
        items, scores = model.recommend(cart=cart, k=args.k), model.score([cart])[0]
    cold = set(split.cold_items.tolist())
    rows = [
        {"sku_id": str(data.catalog["sku_id"].iat[i]), "title": str(data.catalog["title"].iat[i]),
         "product_type": str(data.catalog["product_type"].iat[i]), "colour": str(data.catalog["colour"].iat[i]),
         "category": str(data.catalog["category"].iat[i]), "score": round(float(scores[i]), 4),
         "new_product": i in cold}
        for i in items
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for rank, row in enumerate(rows, start=1):
        flag = "  [new]" if row["new_product"] else ""
        print(f"{rank:>2}. {row['sku_id']}  {row['title']}  ({row['category']})  {row['score']:.3f}{flag}")
    return 0
