"""Retrieval metrics: Recall@k, MRR, nDCG@k, mean/median rank (small pure functions).

Convention: a query has one or more *relevant* gallery items (e.g. every photo of the queried
SKU).  ``rank`` is the 1-based position of the first relevant item in the ranked list, so
Recall@k here is the CLIP-paper retrieval recall: the fraction of queries with at least one
relevant item in the top ``k``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "first_relevant_ranks",
    "recall_at_k",
    "mean_reciprocal_rank",
    "ndcg_at_k",
    "mean_rank",
    "median_rank",
    "retrieval_report",
]


def _as_2d(name: str, array) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (num_queries, num_items) array; got shape {array.shape}")
    return array


def first_relevant_ranks(scores, relevance) -> np.ndarray:
    """1-based rank of the first relevant item for every query.

    Ties are broken pessimistically: an irrelevant item with the same score as the best relevant
    one is ranked ahead of it.

    Args:
        scores: ``(Q, N)`` similarity of each query to each gallery item (higher is better).
        relevance: ``(Q, N)`` boolean, ``True`` where the item is relevant to the query.

    Returns:
        ``(Q,)`` int array of ranks in ``1..N``.
    """
    scores = _as_2d("scores", scores).astype(np.float64)
    relevance = _as_2d("relevance", relevance).astype(bool)
    if scores.shape != relevance.shape:
        raise ValueError(f"scores {scores.shape} and relevance {relevance.shape} must have the same shape")
    if not relevance.any(axis=1).all():
        raise ValueError("every query needs at least one relevant item; drop queries without one")
    best_relevant = np.where(relevance, scores, -np.inf).max(axis=1)  # (Q,)
    ahead = (scores >= best_relevant[:, None]) & ~relevance  # (Q, N)
    return ahead.sum(axis=1) + 1


def recall_at_k(ranks, k: int) -> float:
    """Fraction of queries whose first relevant item is in the top ``k``.

    Args:
        ranks: ``(Q,)`` 1-based ranks from :func:`first_relevant_ranks`.
        k: cut-off, ``k >= 1``.

    Returns:
        Recall@k in ``[0, 1]``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    ranks = np.asarray(ranks)
    return float((ranks <= k).mean())


def mean_reciprocal_rank(ranks) -> float:
    """Mean of ``1 / rank`` over queries.

    Args:
        ranks: ``(Q,)`` 1-based ranks.

    Returns:
        MRR in ``(0, 1]``.
    """
    return float((1.0 / np.asarray(ranks, dtype=np.float64)).mean())


def mean_rank(ranks) -> float:
    """Mean 1-based rank of the first relevant item (lower is better)."""
    return float(np.asarray(ranks, dtype=np.float64).mean())


def median_rank(ranks) -> float:
    """Median 1-based rank of the first relevant item (lower is better)."""
    return float(np.median(np.asarray(ranks, dtype=np.float64)))


def ndcg_at_k(scores, relevance, k: int) -> float:
    """Mean normalised discounted cumulative gain at ``k`` with binary gains.

    ``DCG@k = sum_{r=1..k} rel_r / log2(r + 1)``, divided by the DCG of the ideal ordering.

    Args:
        scores: ``(Q, N)`` similarities (higher is better).
        relevance: ``(Q, N)`` boolean or 0/1 gains.
        k: cut-off, ``k >= 1``.

    Returns:
        nDCG@k averaged over queries, in ``[0, 1]``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    scores = _as_2d("scores", scores).astype(np.float64)
    gains = _as_2d("relevance", relevance).astype(np.float64)
    if scores.shape != gains.shape:
        raise ValueError(f"scores {scores.shape} and relevance {gains.shape} must have the same shape")
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (Q, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))  # (k,)
    dcg = (np.take_along_axis(gains, order, axis=1) * discounts).sum(axis=1)
    ideal = (-np.sort(-gains, axis=1)[:, :k] * discounts).sum(axis=1)
    return float(np.where(ideal > 0, dcg / np.where(ideal > 0, ideal, 1.0), 0.0).mean())


def retrieval_report(scores, relevance, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Recall@k for each ``k``, MRR, nDCG@10, mean and median rank in one dict.

    Args:
        scores: ``(Q, N)`` similarities.
        relevance: ``(Q, N)`` boolean relevance.
        ks: cut-offs for Recall@k.

    Returns:
        ``{"R@1": ..., "R@5": ..., "R@10": ..., "MRR": ..., "nDCG@10": ..., "mean_rank": ...,
        "median_rank": ...}``.
    """
    ranks = first_relevant_ranks(scores, relevance)
    report = {f"R@{k}": recall_at_k(ranks, k) for k in ks}
    report["MRR"] = mean_reciprocal_rank(ranks)
    report["nDCG@10"] = ndcg_at_k(scores, relevance, 10)
    report["mean_rank"] = mean_rank(ranks)
    report["median_rank"] = median_rank(ranks)
    return report
