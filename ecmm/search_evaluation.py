"""Evaluation of catalog retrieval: paraphrased requests, text->image and image->image metrics.

- :func:`evaluate_retrieval`: text->image (query = title or a paraphrased request) and
  image->image (query = another photo of the SKU) on one split, with Recall@k / MRR;
- :func:`requests_for` / :func:`request_queries`: paraphrased customer requests, one per SKU,
  the latter labelled like the free-form query set.

Gallery convention: photo 0 of every SKU of the split; image queries use photo 1. The names are
re-exported by :mod:`ecmm.search`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from ecmm.device import get_device
from ecmm.metrics.retrieval import retrieval_report
from ecmm.models.clip import embed_images, embed_texts

__all__ = ["GALLERY_PHOTO", "QUERY_PHOTO", "REQUEST_TEMPLATES", "requests_for", "evaluate_retrieval",
           "request_queries"]

GALLERY_PHOTO, QUERY_PHOTO = 0, 1  # photo positions used as gallery and as customer snapshot
REQUEST_TEMPLATES = (  # paraphrased customer requests, never used in training
    "I'm looking for a {colour} {product_type}",
    "do you sell {product_type}s in {colour}?",
    "{colour} {product_type} please",
    "show me a {product_type}, {colour} if possible",
    "need a new {product_type} in {colour}",
)


def requests_for(catalog: pd.DataFrame, seed: int = 0) -> list[str]:
    """One paraphrased customer request per catalog row (seeded template choice)."""
    rng = np.random.default_rng(seed)
    choice = rng.integers(len(REQUEST_TEMPLATES), size=len(catalog))
    return [REQUEST_TEMPLATES[c].format(colour=row.colour, product_type=row.product_type)
            for c, row in zip(choice, catalog.itertuples())]


def evaluate_retrieval(
    model: Any, preprocess: Any, tokenizer: Any, catalog: pd.DataFrame, photos: np.ndarray, split: str,
    direction: str = "text", queries: str = "title", device: str | torch.device | None = None,
) -> dict[str, float]:
    """Retrieval metrics for the SKUs of one split.

    Args:
        model, preprocess, tokenizer: a CLIP model and its helpers.
        catalog: shop catalog aligned with ``photos``.
        photos: uint8 ``(num_skus, photos_per_sku, H, W, 3)``.
        split: ``"test_colours"``, ``"test_products"``, ``"train"`` or ``"all"``.
        direction: ``"text"`` (text->image) or ``"image"`` (image->image).
        queries: for text, ``"title"`` or ``"request"`` (paraphrased).
        device: where to run; None picks the best available.

    Returns:
        ``{"R@1", "R@5", "R@10", "MRR", "nDCG@10", "mean_rank", "median_rank"}``.
    """
    rows = np.arange(len(catalog)) if split == "all" else np.flatnonzero(catalog["split"].to_numpy() == split)
    if len(rows) == 0:
        raise ValueError(f"no SKUs in split {split!r}; use one of {sorted(catalog['split'].unique())} or 'all'")
    device = get_device(device)
    gallery = embed_images(model, preprocess, photos[rows, GALLERY_PHOTO], device=device)  # (N, E)
    if direction == "text":
        if queries == "title":
            texts = list(catalog["title"].iloc[rows])
        elif queries == "request":
            all_requests = requests_for(catalog)
            texts = [all_requests[i] for i in rows]
        else:
            raise ValueError(f"queries must be 'title' or 'request'; got {queries!r}")
        query = embed_texts(model, tokenizer, texts, device=device)  # (N, E)
    elif direction == "image":
        query = embed_images(model, preprocess, photos[rows, QUERY_PHOTO], device=device)
    else:
        raise ValueError(f"direction must be 'text' or 'image'; got {direction!r}")
    scores = (query @ gallery.T).numpy()  # (N, N)
    return retrieval_report(scores, np.eye(len(rows), dtype=bool))


def request_queries(catalog: pd.DataFrame, split: str = "test_colours", count: int = 100, seed: int = 0) -> list[dict]:
    """The kit's paraphrased requests for ``count`` SKUs of one split, labelled like the free-form set.

    Returns:
        Dicts with ``query``, ``kind="request"``, ``product_types`` and ``colours`` of the SKU.
    """
    rows = np.flatnonzero(catalog["split"].to_numpy() == split)
    rows = np.random.default_rng(seed).permutation(rows)[:count]
    requests = requests_for(catalog, seed)
    return [{"query": requests[i], "kind": "request", "product_types": [catalog["product_type"].iloc[i]],
             "colours": [catalog["colour"].iloc[i]]} for i in sorted(rows)]
