"""Ranking metrics for recommendation: Recall@k, nDCG@k, MAP@k, catalog coverage, novelty.

Convention (shared with :mod:`ecmm.metrics.retrieval`): a model gives a ``(U, N)`` score matrix,
one row per user and one column per item, higher is better; ``relevance`` is a ``(U, N)`` boolean
matrix of the items each user really interacted with later. Items a model must not recommend
(already bought, not yet launched) carry the score ``-inf``.

Unlike retrieval, a user usually has *several* relevant items, so Recall@k here is the fraction
of the user's relevant items found in the top ``k`` (``hits / |relevant|``), averaged over users;
``retrieval.recall_at_k`` instead counts a query as found when *any* relevant item is in the top
``k``. nDCG@k has the same meaning in both places (binary gains, ideal = all relevant items
first), so it is imported from :mod:`ecmm.metrics.retrieval`, not rewritten.
"""

from __future__ import annotations

import numpy as np

from ecmm.metrics.retrieval import ndcg_at_k

__all__ = [
    "top_k_items",
    "set_recall_at_k",
    "ndcg_at_k",
    "mean_average_precision_at_k",
    "catalog_coverage",
    "novelty",
]


def _check(scores, relevance, k: int) -> tuple[np.ndarray, np.ndarray]:
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    scores = np.asarray(scores, dtype=np.float64)
    relevance = np.asarray(relevance).astype(bool)
    if scores.ndim != 2 or scores.shape != relevance.shape:
        raise ValueError(
            "scores and relevance must both be (num_users, num_items) arrays of the same shape; "
            f"got {scores.shape} and {relevance.shape}"
        )
    return scores, relevance


def top_k_items(scores, k: int) -> np.ndarray:
    """Column indices of the ``k`` best-scored items of every row, best first.

    Ties keep the lower item index first (stable sort), so results are deterministic.

    Args:
        scores: ``(U, N)`` scores, higher is better.
        k: how many items per row; capped at ``N``.

    Returns:
        ``(U, min(k, N))`` int array of item indices.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a 2-D (num_users, num_items) array; got shape {scores.shape}")
    return np.argsort(-scores, axis=1, kind="stable")[:, : min(k, scores.shape[1])]


def set_recall_at_k(scores, relevance, k: int) -> float:
    """Mean over users of ``|top-k ∩ relevant| / |relevant|``.

    Users without any relevant item are skipped (they cannot be recalled).

    Args:
        scores: ``(U, N)`` scores.
        relevance: ``(U, N)`` boolean relevance.
        k: cut-off.

    Returns:
        Recall@k in ``[0, 1]`` (0.0 when no user has a relevant item).
    """
    scores, relevance = _check(scores, relevance, k)
    counts = relevance.sum(axis=1)
    keep = counts > 0
    if not keep.any():
        return 0.0
    hits = np.take_along_axis(relevance, top_k_items(scores, k), axis=1).sum(axis=1)
    return float((hits[keep] / counts[keep]).mean())


def mean_average_precision_at_k(scores, relevance, k: int) -> float:
    """MAP@k: mean over users of ``AP@k = sum_r P@r * rel_r / min(|relevant|, k)``.

    Args:
        scores: ``(U, N)`` scores.
        relevance: ``(U, N)`` boolean relevance.
        k: cut-off.

    Returns:
        MAP@k in ``[0, 1]``; users without relevant items are skipped.
    """
    scores, relevance = _check(scores, relevance, k)
    counts = relevance.sum(axis=1)
    keep = counts > 0
    if not keep.any():
        return 0.0
    hits = np.take_along_axis(relevance, top_k_items(scores, k), axis=1).astype(np.float64)  # (U, k)
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)  # (U, k): P@r
    average = (precision * hits).sum(axis=1) / np.minimum(np.maximum(counts, 1), hits.shape[1])
    return float(average[keep].mean())


def catalog_coverage(recommended, num_items: int) -> float:
    """Fraction of the catalog that appears in at least one user's recommendations.

    Args:
        recommended: ``(U, k)`` item indices (e.g. from :func:`top_k_items`).
        num_items: size of the candidate catalog.

    Returns:
        Coverage in ``[0, 1]``.
    """
    if num_items < 1:
        raise ValueError(f"num_items must be >= 1; got {num_items}")
    recommended = np.asarray(recommended)
    return float(np.unique(recommended).size / num_items)


def novelty(recommended, item_popularity) -> float:
    """Mean self-information ``-log2 p(i)`` of recommended items (higher = less obvious).

    Args:
        recommended: ``(U, k)`` item indices.
        item_popularity: ``(N,)`` probability that a user interacted with item ``i`` in the
            training data; it must be > 0 (smooth it, e.g. ``(count + 1) / (users + 1)``).

    Returns:
        Mean novelty in bits.
    """
    popularity = np.asarray(item_popularity, dtype=np.float64)
    if (popularity <= 0).any() or (popularity > 1).any():
        raise ValueError("item_popularity must lie in (0, 1]: smooth zero counts, e.g. (count + 1) / (users + 1)")
    recommended = np.asarray(recommended)
    return float(-np.log2(popularity[recommended]).mean())
