"""FAQ answers by embedding similarity: the message and every FAQ entry in one MiniLM space.

An FAQ entry is embedded from its title and answer; a message retrieves the entries with the
largest cosine similarity. A retrieval is right when the entry belongs to the message's intent
(some intents have two entries, either counts).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ecmm.metrics.retrieval import first_relevant_ranks, recall_at_k

__all__ = ["FaqRetriever", "evaluate_faq_retrieval"]


class FaqRetriever:
    """Nearest FAQ entries of a message under cosine similarity of sentence embeddings.

    Args:
        encoder: text encoder with ``encode(texts) -> (N, D)`` L2-normalised embeddings.
        faq: DataFrame with ``faq_id, intent, answer`` and a ``title`` (or ``question``) column.
    """

    def __init__(self, encoder, faq: pd.DataFrame) -> None:
        title_column = "title" if "title" in faq.columns else "question"
        missing = {"faq_id", "intent", "answer", title_column} - set(faq.columns)
        if missing:
            raise ValueError(f"The FAQ table lacks columns {sorted(missing)}: load it with ecmm.data.load_faq().")
        if faq.empty:
            raise ValueError("The FAQ table is empty: pass at least one entry.")
        self.encoder = encoder
        self.faq = faq.reset_index(drop=True)
        documents = (self.faq[title_column] + " " + self.faq["answer"]).tolist()
        with torch.no_grad():
            self.faq_embeddings = torch.as_tensor(encoder.encode(documents)).float().cpu()  # (F, D)

    def scores(self, messages: Sequence[str]) -> np.ndarray:
        """Cosine similarity of every message to every FAQ entry.

        Args:
            messages: Q customer messages.

        Returns:
            (Q, F) similarities in [-1, 1].
        """
        messages = [str(message) for message in messages]
        if not messages:
            raise ValueError("No messages given: pass at least one text.")
        with torch.no_grad():
            queries = torch.as_tensor(self.encoder.encode(messages)).float().cpu()  # (Q, D)
        return (queries @ self.faq_embeddings.T).numpy()

    def retrieve(self, messages: Sequence[str], k: int = 3) -> list[pd.DataFrame]:
        """Top-``k`` FAQ entries of every message.

        Args:
            messages: Q customer messages.
            k: entries per message.

        Returns:
            Q DataFrames of FAQ rows (best first) with an added ``score`` column.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}.")
        scores = self.scores(messages)
        order = np.argsort(-scores, axis=1)[:, :k]  # (Q, k)
        return [self.faq.iloc[row].assign(score=scores[q, row]) for q, row in enumerate(order)]


def evaluate_faq_retrieval(
    retriever: FaqRetriever, messages: Sequence[str], intents: Sequence[str], ks: Sequence[int] = (1, 3)
) -> dict:
    """Recall@k of the right FAQ entry (an entry of the message's intent).

    Args:
        retriever: a fitted :class:`FaqRetriever`.
        messages: Q messages whose intent has at least one FAQ entry.
        intents: their Q true intents.
        ks: cut-offs.

    Returns:
        ``{"R@1": float, "R@3": float, ...}``.
    """
    if len(messages) != len(intents):
        raise ValueError(f"Got {len(messages)} messages but {len(intents)} intents.")
    faq_intents = retriever.faq["intent"].to_numpy()
    relevance = np.asarray(intents)[:, None] == faq_intents[None, :]  # (Q, F)
    keep = relevance.any(axis=1)
    if not keep.any():
        raise ValueError("None of these intents has an FAQ entry: evaluate on in-scope messages.")
    scores = retriever.scores([m for m, kept in zip(messages, keep) if kept])
    ranks = first_relevant_ranks(scores, relevance[keep])
    return {f"R@{k}": recall_at_k(ranks, k) for k in ks}
