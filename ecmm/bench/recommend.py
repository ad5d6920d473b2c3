"""``python -m ecmm.bench recommend [--json PATH] [--catalog CSV]``: the recommendation metrics table of notebook 06.

Runs on the shop's catalog (``--catalog`` or ``ECMM_PROFILE`` for another; it prints which) and its
event log: the catalog's own when it has one, else simulated shoppers. Fits popularity, co-occurrence, BPR,
content-based and hybrid two-tower models, and prints Recall@10, nDCG@10, MAP@10, coverage and
novelty for warm items, cold-start items, new users and overall. ``--json`` writes
``{"warm": {MODEL: {"Recall@10", "nDCG@10", "MAP@10", "coverage", "novelty"}}, "cold_items": ...,
"new_users": ..., "overall": ...}`` plus a ``"run"`` entry (catalog, log origin, sizes, content source,
fit seconds).
"""

from __future__ import annotations

import argparse
import time

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    """Register ``recommend``."""
    parser = subparsers.add_parser("recommend", help="recommendation metrics per segment and model")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument("--content", default="text", choices=("auto", "clip", "text"),
                        help="item content embeddings: text (MiniLM, default), clip (shop CLIP model) or auto")
    parser.add_argument("--seed", type=int, default=0, help="simulator and model seed")
    from ecmm.cli import add_shop_options

    add_shop_options(parser)


def run(args: argparse.Namespace) -> int:
    """Measure, print the table, optionally write JSON."""
    import pandas as pd

    from ecmm.recsys.evaluation import evaluate_recommenders, metrics_by_segment
    from ecmm.recsys.pipeline import build_models, build_recsys_data, fit_models

    from ecmm.assets import active_shop

    start = time.perf_counter()
    source = active_shop().source
    print(f"catalog: {source.describe()}")
    data = build_recsys_data(seed=args.seed, content=args.content, source=source)
    models = build_models(data.item_embeddings, quick=data.quick, seed=args.seed)
    fits = fit_models(models, data.split)
    results = evaluate_recommenders(models, data.split)
    with pd.option_context("display.width", 120, "display.max_columns", 10):
        print(metrics_by_segment(results).round(4).to_string())
    split = data.split
    results["run"] = {
        "catalog": source.describe(), "log_origin": data.log_origin,
        "content_source": data.content_source, "quick": data.quick, "events": len(data.table),
        "users": int(split.train.num_users), "items": int(split.train.num_items),
        "cold_items": int(split.cold_items.size), "new_users": int(split.new_users.size),
        "fit_seconds": {name: round(fit["seconds"], 2) for name, fit in fits.items()},
        "total_seconds": round(time.perf_counter() - start, 1),
    }
    print(f"interactions: {data.log_origin}; content embeddings: {data.content_source}; "
          f"total {results['run']['total_seconds']} s")
    if args.json:
        from ecmm.bench import write_results

        write_results(args.json, results)
    return 0
