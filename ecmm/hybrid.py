"""Hybrid retrieval: several rankings of the catalog fused into one.

Reciprocal-rank fusion (Cormack, Clarke & Büttcher 2009) scores an item by the ranks it gets
from every signal ``s``:

``RRF(d) = sum_s w_s / (k + rank_s(d))``

``k`` (60 in the paper) keeps one first place from outweighing several good places; an item a
signal does not retrieve adds nothing for it. Ranks, not raw scores, are fused, so a BM25 score
and a cosine similarity need no common scale.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ecmm.metrics.retrieval import first_relevant_ranks, mean_reciprocal_rank, recall_at_k
from ecmm.query import query_relevance

__all__ = ["HybridBlend", "SIGNALS", "ranks_of", "reciprocal_rank_fusion", "signal_ranks",
           "evaluate_queries", "fit_blend", "price_offset"]

SIGNALS = ("dense_image", "dense_text", "nearest_types", "lexical", "attributes")  # rankings a hybrid search can fuse


@dataclass(frozen=True)
class HybridBlend:
    """How :class:`ecmm.search.CatalogSearch` fuses its signals in ``mode="hybrid"``."""

    # Defaults: what ``fit_blend`` chose for the offline shop model on the hand-written validation
    # queries (105, many with words and uses the parser's vocabulary lacks) plus 60 paraphrased
    # requests of the train split (notebook 05; validation MRR 0.900 on the 165). The parser's
    # understood types and colours lead; the sentence encoder's query->title ranking and the
    # query's nearest product types order within them and speak when the parser understands nothing.
    dense_image: float = 0.0  # weight of the CLIP text->photo ranking
    dense_text: float = 0.5  # weight of the query->product title ranking (the text encoder)
    nearest_types: float = 0.5  # weight of the ranking by how near the query is to each product type's name
    lexical: float = 0.0  # weight of the BM25 ranking over title, description and predicted tags
    attributes: float = 4.0  # weight of the ranking by colours / product types the query names
    rrf_k: float = 10.0  # RRF's rank offset k
    price_filter: bool = True  # products outside a price limit the query names go last

    def __post_init__(self) -> None:
        if min(self.weights().values()) < 0:
            raise ValueError("signal weights must be >= 0")
        if self.rrf_k <= 0:
            raise ValueError(f"rrf_k must be > 0; got {self.rrf_k}")

    def weights(self) -> dict[str, float]:
        """``{signal: weight}`` for every name of :data:`SIGNALS`."""
        values = asdict(self)
        return {name: float(values[name]) for name in SIGNALS}


def ranks_of(scores: np.ndarray) -> np.ndarray:
    """1-based rank of every item by descending score (ties keep catalog order); NaN = not retrieved.

    Shapes:
        ``(N,)`` scores -> ``(N,)`` float ranks, NaN where the score is NaN.
    """
    scores = np.asarray(scores, dtype=np.float64)
    retrieved = ~np.isnan(scores)
    order = np.argsort(-np.where(retrieved, scores, -np.inf), kind="stable")  # (N,)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    return np.where(retrieved, ranks, np.nan)


def price_offset(weights: Sequence[float], rrf_k: float) -> float:
    """How far fusion shifts the rows outside a query's price range: 1, or more when the weights
    could sum past it, so that every such row scores below every row inside.

    A row scores at most ``sum(w) / (k + 1)`` (rank 1 by every signal); fused scores are >= 0.
    """
    bound = sum(max(float(weight), 0.0) for weight in weights) / (rrf_k + 1.0)
    return 1.0 if bound < 1.0 else bound + 1.0


def reciprocal_rank_fusion(signal_scores: Mapping[str, np.ndarray], weights: Mapping[str, float],
                           k: float = 60.0) -> np.ndarray:
    """Fuse rankings: ``sum_s w_s / (k + rank_s)`` over the signals an item is retrieved by.

    Args:
        signal_scores: ``{signal: (N,) scores}``; NaN marks an item the signal does not retrieve.
        weights: ``{signal: weight}``; a signal without a weight counts 0.
        k: RRF's rank offset.

    Returns:
        ``(N,)`` fused scores (higher is better; 0 for an item no signal retrieves).
    """
    fused = None
    for name, scores in signal_scores.items():
        contribution = weights.get(name, 0.0) / (k + ranks_of(scores))  # (N,)
        contribution = np.nan_to_num(contribution, nan=0.0)
        fused = contribution if fused is None else fused + contribution
    if fused is None:
        raise ValueError("reciprocal_rank_fusion needs at least one signal")
    return fused


def signal_ranks(search: Any, queries: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Every signal's rank of every row for every query, and the rows outside its price range.

    Args:
        search: an :class:`ecmm.search.CatalogSearch` (its ``signals`` are fused).
        queries: dicts with a ``query``.

    Shapes:
        -> ``(Q, S, N)`` ranks (NaN where a signal does not retrieve the row; S = len(SIGNALS)),
        ``(Q, N)`` bool outside the price range.
    """
    ranks, outside = [], []
    for item in queries:
        signals, beyond = search.signals(item["query"])
        signals["lexical"] = np.where(signals["lexical"] > 0, signals["lexical"], np.nan)
        ranks.append([ranks_of(signals[name]) for name in SIGNALS])
        outside.append(beyond)
    return np.asarray(ranks), np.asarray(outside)


def fit_blend(search: Any, queries: list[dict], grid: Sequence[float] = (0.0, 0.5, 1.0, 2.0, 4.0),
              rrf_ks: Sequence[float] = (10.0, 30.0, 60.0)) -> tuple[HybridBlend, float]:
    """The RRF weights and rank offset with the best MRR on labelled validation queries (a grid search).

    Near-perfect validation MRR is often reached by many blends; among those the one whose first
    relevant products sit highest on average (the mean log rank) wins, so a blend that also
    lifts the queries it does not rank first is preferred over one that ignores them.

    Args:
        search: an :class:`ecmm.search.CatalogSearch` (its ``signals`` are fused).
        queries: validation queries (never the free-form evaluation set).
        grid: the weights tried for every signal.
        rrf_ks: the rank offsets ``k`` tried.

    Returns:
        ``(best blend, its validation MRR)``; exact ties keep the first found (``rrf_ks`` order,
        then the smallest weights in grid order).
    """
    relevance = query_relevance(queries, search.catalog)  # (Q, N)
    ranks, outside = signal_ranks(search, queries)  # (Q, S, N), (Q, N)
    best, best_score = None, None
    for rrf_k in rrf_ks:
        contributions = np.nan_to_num(1.0 / (rrf_k + ranks), nan=0.0)  # (Q, S, N)
        for weights in itertools.product(grid, repeat=len(SIGNALS)):
            if not any(weights):
                continue
            fused = np.einsum("s,qsn->qn", np.asarray(weights), contributions) \
                - price_offset(weights, rrf_k) * outside  # (Q, N)
            first = first_relevant_ranks(fused, relevance)  # (Q,)
            score = (round(mean_reciprocal_rank(first), 9), -float(np.log(first).mean()))
            if best is None or score > best_score:
                best, best_score = (weights, rrf_k), score
    return HybridBlend(**dict(zip(SIGNALS, best[0])), rrf_k=best[1]), best_score[0]


def evaluate_queries(search: Any, queries: list[dict], modes: Sequence[str] = ("dense", "lexical", "hybrid")) -> pd.DataFrame:
    """R@1, R@10 and MRR of every mode, per query kind and over all queries.

    Args:
        search: an :class:`ecmm.search.CatalogSearch` (its catalog decides relevance).
        queries: labelled queries (see :func:`ecmm.query.load_query_set`).
        modes: the modes to compare.

    Returns:
        DataFrame with columns ``mode, kind, queries, R@1, R@10, MRR`` (kind ``"all"`` = every query).
    """
    relevance = query_relevance(queries, search.catalog)  # (Q, N)
    kinds = np.array([item["kind"] for item in queries])
    rows = []
    for mode in modes:
        scores = np.stack([search.scores(item["query"], mode) for item in queries])  # (Q, N)
        ranks = first_relevant_ranks(scores, relevance)
        for kind in [*sorted(set(kinds)), "all"]:
            chosen = ranks if kind == "all" else ranks[kinds == kind]
            rows.append({"mode": mode, "kind": kind, "queries": len(chosen), "R@1": recall_at_k(chosen, 1),
                         "R@10": recall_at_k(chosen, 10), "MRR": mean_reciprocal_rank(chosen)})
    return pd.DataFrame(rows)
