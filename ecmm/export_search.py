"""Catalog search with int8 query encoders: the serving option of :func:`ecmm.export.quantize_int8`.

:func:`int8_query_search` quantises the query side of a :class:`ecmm.search.CatalogSearch`
(every ``nn.Linear`` of the CLIP model and of the sentence encoder, dynamic int8, CPU) and keeps
its catalog side (photo index, title embeddings, BM25) in float32 as built. Queries then embed
faster and slightly differently from the catalog they are compared with: measure what it costs
(``python -m ecmm.bench serve --int8`` prints the free-form queries' MRR and R@10 both ways and how
many top-10 lists are unchanged).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ecmm.export import quantize_int8

__all__ = ["int8_query_search"]


def int8_query_search(search: Any) -> Any:
    """The same search with int8 query encoders (its catalog side shared, float32).

    When the sentence encoder is the model's own MiniLM (:func:`ecmm.text_side.tower_sentence_encoder`)
    the int8 tower serves both signals, one pass per query; a separate sentence encoder module
    (a bound ``encode`` of an ``nn.Module``) is quantised too; any other callable is kept.

    Args:
        search: a :class:`ecmm.search.CatalogSearch` on the CPU.

    Returns:
        A new :class:`ecmm.search.CatalogSearch`; ``search`` is unchanged.

    Raises:
        ValueError: the search runs on another device (dynamic int8 kernels are CPU kernels).
    """
    from ecmm.text_side import tower_sentence_encoder

    if torch.device(search.device).type != "cpu":
        raise ValueError(f"int8 query encoders run on the CPU; this search embeds queries on {search.device}")
    search.text_side()  # built once, in float32, before anything is quantised
    model = quantize_int8(search.model)
    memo = getattr(model, "text_feature_cache", None)
    if isinstance(memo, dict):
        memo.clear()  # the copy's memo holds float32 features
    encoder = search.text_encoder
    if encoder is not None:
        owner = getattr(encoder, "__self__", None)
        if tower_sentence_encoder(search.model) is not None:
            encoder = tower_sentence_encoder(model, check_weights=False)
        elif isinstance(owner, nn.Module):
            encoder = getattr(quantize_int8(owner), encoder.__name__)
    return search.with_query_encoders(model, encoder)
