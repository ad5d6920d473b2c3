"""Lexical retrieval: Okapi BM25 over product documents (title, description, attribute tags).

Term counts come from scikit-learn's :class:`~sklearn.feature_extraction.text.CountVectorizer`
(its tokeniser and vocabulary); the weighting is BM25 (Robertson & Zaragoza 2009):

``score(q, d) = sum_{t in q} idf(t) * f(t, d) * (k1 + 1) / (f(t, d) + k1 * (1 - b + b * |d| / avgdl))``

with ``idf(t) = log(1 + (N - n(t) + 0.5) / (n(t) + 0.5))``: ``f(t, d)`` is how often term ``t``
occurs in document ``d``, ``|d|`` the document's length in terms, ``avgdl`` the mean length,
``N`` the number of documents and ``n(t)`` how many contain ``t``. ``k1`` caps how much a repeated
term counts; ``b`` decides how much long documents are penalised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["BM25Config", "BM25Index", "tokenise"]

_TOKEN_PATTERN = r"(?u)\b\w+\b"  # every word of one character or more ("t", "shirt")


def tokenise(text: str) -> list[str]:
    """The index's tokens of ``text``: lower-case words, apostrophes and hyphens split."""
    import re

    return re.findall(_TOKEN_PATTERN, text.lower().replace("’", "'"))


@dataclass(frozen=True)
class BM25Config:
    """BM25's two constants (the common defaults)."""

    k1: float = 1.2  # term-frequency saturation: 0 = presence only, large = raw counts
    b: float = 0.75  # length normalisation: 0 = none, 1 = full

    def __post_init__(self) -> None:
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise ValueError(f"BM25 needs k1 >= 0 and 0 <= b <= 1; got k1={self.k1}, b={self.b}")


class BM25Index:
    """BM25 scores of a query against a fixed list of documents.

    Args:
        documents: ``N`` texts.
        config: the BM25 constants.
    """

    def __init__(self, documents: Sequence[str], config: BM25Config = BM25Config()) -> None:
        from sklearn.feature_extraction.text import CountVectorizer

        if len(documents) == 0:
            raise ValueError("BM25Index needs at least one document")
        self.config = config
        self.vectorizer = CountVectorizer(token_pattern=_TOKEN_PATTERN, lowercase=True)
        counts = self.vectorizer.fit_transform([text.replace("’", "'") for text in documents]).tocsc()  # (N, V)
        self.num_documents = counts.shape[0]
        lengths = np.asarray(counts.sum(axis=1)).ravel().astype(np.float64)  # (N,)
        containing = np.diff(counts.indptr).astype(np.float64)  # (V,) documents holding each term
        self.idf = np.log1p((self.num_documents - containing + 0.5) / (containing + 0.5))  # (V,)
        norm = config.k1 * (1.0 - config.b + config.b * lengths / max(lengths.mean(), 1e-12))  # (N,)
        weights = counts.astype(np.float64).tocoo()
        tf = weights.data
        weights.data = tf * (config.k1 + 1.0) / (tf + norm[weights.row]) * self.idf[weights.col]
        self.weights = weights.tocsc()  # (N, V): each term's BM25 contribution per document

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query`` (a repeated query word counts once per repeat).

        Returns:
            ``(N,)`` float array; 0 where the document shares no term with the query.
        """
        vocabulary = self.vectorizer.vocabulary_
        columns = [vocabulary[token] for token in tokenise(query) if token in vocabulary]
        if not columns:
            return np.zeros(self.num_documents)
        return np.asarray(self.weights[:, columns].sum(axis=1)).ravel()
