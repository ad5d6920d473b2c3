"""One text query, read and scored: what :class:`ecmm.search.CatalogSearch` ranks rows with.

- :class:`EncodedQuery`: a query checked, parsed, expanded and embedded once.
- :func:`checked_query`, :func:`expanded_query`: the query as the encoders and BM25 read it.
- :func:`query_signals`: every signal's ``(N,)`` scores over a text side, and the rows outside the
  query's price range; :func:`fused_scores` fuses them the hybrid way.

Everything here is numpy over a text side (:meth:`ecmm.search.CatalogSearch.text_side`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ecmm.hybrid import HybridBlend, price_offset, reciprocal_rank_fusion
from ecmm.query import ParsedQuery, corrected_query

__all__ = ["MAX_QUERY_CHARACTERS", "EncodedQuery", "checked_query", "expanded_query", "query_signals",
           "fused_scores", "top_rows"]

MAX_QUERY_CHARACTERS = 200  # longer text queries are refused


@dataclass(frozen=True, eq=False)
class EncodedQuery:
    """A text query read once: parsed, expanded, and embedded by the encoders its mode needs."""

    query: str  # as typed (stripped)
    mode: str  # the mode it was encoded for
    parsed: ParsedQuery  # colours, product types, price limits it names
    expanded: str  # corrected, lower case, plus the understood words: what BM25 and the encoders read
    clip: np.ndarray | None  # (1, E) CLIP text tower: of `query` (dense) or `expanded` (hybrid)
    sentence: np.ndarray | None  # (1, D) text->text encoder of `expanded` (hybrid, understand)


def checked_query(query: str | None) -> str:
    """The query stripped.

    Raises:
        ValueError: it is empty or longer than :data:`MAX_QUERY_CHARACTERS`.
    """
    query = (query or "").strip()
    if not query:
        raise ValueError("the query is empty: type what you are looking for, e.g. 'red backpack'")
    if len(query) > MAX_QUERY_CHARACTERS:
        raise ValueError(f"the query has {len(query)} characters; keep it under {MAX_QUERY_CHARACTERS}")
    return query


def expanded_query(query: str, parsed: ParsedQuery) -> str:
    """The query corrected, in lower case, with the colours and product types it was read as added."""
    return " ".join([corrected_query(query, parsed), *parsed.colours, *parsed.product_types])


def query_signals(side: Mapping[str, Any], encoded: EncodedQuery) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every signal's scores for a hybrid-encoded query, and the rows outside its price range.

    Args:
        side: a text side (``photos`` (N, E), ``texts`` (N, D), ``type_embeddings`` (T, D),
            ``types``, ``row_types`` (N,), ``colours``, ``row_colours`` (N,), ``bm25``, ``prices`` (N,)).
        encoded: the query with both embeddings (``clip`` (1, E), ``sentence`` (1, D)).

    Returns:
        ``({signal: (N,) scores, NaN = not retrieved}, (N,) bool outside the price range)``.
    """
    parsed = encoded.parsed
    dense_image = (encoded.clip @ side["photos"].T)[0]  # (N,)
    type_rows = [i for i, name in enumerate(side["types"]) if name in parsed.product_types]
    colour_rows = [i for i, name in enumerate(side["colours"]) if name in parsed.colours]
    matches = (2.0 * np.isin(side["row_types"], type_rows) + np.isin(side["row_colours"], colour_rows))  # (N,)
    signals = {
        "dense_image": dense_image,
        "dense_text": (encoded.sentence @ side["texts"].T)[0],
        "nearest_types": (encoded.sentence @ side["type_embeddings"].T)[0][side["row_types"]] + 1e-3 * dense_image,
        "lexical": side["bm25"].scores(encoded.expanded),
        "attributes": np.where(matches > 0, matches + 1e-3 * dense_image, np.nan),
    }
    price = side["prices"]
    outside = (price > (np.inf if parsed.max_price is None else parsed.max_price)) | \
              (price < (-np.inf if parsed.min_price is None else parsed.min_price))
    return signals, outside


def fused_scores(signals: dict[str, np.ndarray], outside: np.ndarray, blend: HybridBlend) -> np.ndarray:
    """Reciprocal-rank fusion of the signals (BM25's zeros count as not retrieved); with the blend's
    price filter, rows outside the price range go last (:func:`ecmm.hybrid.price_offset`). Shapes: ``(N,)`` each -> ``(N,)``."""
    signals = {**signals, "lexical": np.where(signals["lexical"] > 0, signals["lexical"], np.nan)}
    weights = blend.weights()
    fused = reciprocal_rank_fusion(signals, weights, blend.rrf_k)
    if blend.price_filter:
        fused = np.where(outside, fused - price_offset(list(weights.values()), blend.rrf_k), fused)
    return fused


def top_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the ``k`` best scores (ties keep catalog order) and their scores."""
    top = np.argsort(-scores, kind="stable")[:k]
    return top, scores[top]
