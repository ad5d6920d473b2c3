"""Hybrid retrieval: several rankings of the catalog fused into one.

Reciprocal-rank fusion (Cormack, Clarke & Büttcher 2009) scores an item by the ranks it gets
from every signal ``s``:

``RRF(d) = sum_s w_s / (k + rank_s(d))``

``k`` (60 in the paper) keeps one first place from outweighing several good places; an item a
signal does not retrieve adds nothing for it. Ranks, not raw scores, are fused, so a BM25 score
and a cosine similarity need no common scale.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

import numpy as np

__all__ = ["HybridBlend", "SIGNALS", "ranks_of", "reciprocal_rank_fusion"]

SIGNALS = ("dense_image", "dense_text", "nearest_types", "lexical", "attributes")  # rankings a hybrid search can fuse


@dataclass(frozen=True)
class HybridBlend:
    """How :class:`ecmm.search.CatalogSearch` fuses its signals in ``mode="hybrid"``."""

    dense_image: float = 1.0  # weight of the CLIP text->photo ranking
    dense_text: float = 1.0  # weight of the CLIP text->product text (title, description) ranking
    nearest_types: float = 1.0  # weight of the ranking by how near the query is to each product type's name
    lexical: float = 1.0  # weight of the BM25 ranking over title, description and predicted tags
    attributes: float = 1.0  # weight of the ranking by colours / product types the query names
    rrf_k: float = 60.0  # RRF's rank offset k
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
