"""Lexical retrieval: Okapi BM25 over product documents (title, description, attribute tags).

Documents are split into lower-case words (:func:`tokenise`, the token rule of scikit-learn's
``CountVectorizer`` with one-letter words kept) and counted here, so the index needs numpy only
(a command that searches once does not pay for importing scipy and scikit-learn); the weighting
is BM25 (Robertson & Zaragoza 2009):

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
        if len(documents) == 0:
            raise ValueError("BM25Index needs at least one document")
        self.config = config
        self.vocabulary: dict[str, int] = {}  # term -> column
        rows, columns = [], []
        for row, text in enumerate(documents):
            for token in tokenise(text):
                rows.append(row)
                columns.append(self.vocabulary.setdefault(token, len(self.vocabulary)))
        self.num_documents, width = len(documents), max(len(self.vocabulary), 1)
        pairs, tf = np.unique(np.asarray(rows, dtype=np.int64) * width + np.asarray(columns, dtype=np.int64),
                              return_counts=True)  # one entry per (document, term) present
        row_of, column_of = pairs // width, pairs % width
        lengths = np.bincount(np.asarray(rows, dtype=np.int64), minlength=self.num_documents).astype(np.float64)  # (N,)
        containing = np.bincount(column_of, minlength=len(self.vocabulary)).astype(np.float64)  # (V,)
        self.idf = np.log1p((self.num_documents - containing + 0.5) / (containing + 0.5))  # (V,)
        norm = config.k1 * (1.0 - config.b + config.b * lengths / max(lengths.mean(), 1e-12))  # (N,)
        weights = tf * (config.k1 + 1.0) / (tf + norm[row_of]) * self.idf[column_of]
        order = np.argsort(column_of, kind="stable")  # entries grouped by term (a CSC layout)
        self.term_rows, self.term_weights = row_of[order], weights[order]
        self.term_starts = np.searchsorted(column_of[order], np.arange(len(self.vocabulary) + 1))  # (V + 1,)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query`` (a repeated query word counts once per repeat).

        Returns:
            ``(N,)`` float array; 0 where the document shares no term with the query.
        """
        scores = np.zeros(self.num_documents)
        for token in tokenise(query):
            column = self.vocabulary.get(token)
            if column is not None:
                start, stop = self.term_starts[column], self.term_starts[column + 1]
                scores[self.term_rows[start:stop]] += self.term_weights[start:stop]  # rows unique per term
        return scores
