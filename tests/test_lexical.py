"""ecmm.lexical: BM25 on a tiny catalog, checked against the formula by hand."""

import math

import numpy as np
import pytest

from ecmm.lexical import BM25Config, BM25Index, tokenise

DOCUMENTS = ["red backpack", "blue backpack for school", "red necktie"]


def test_bm25_matches_the_formula():
    index = BM25Index(DOCUMENTS, BM25Config(k1=1.2, b=0.75))
    lengths, average = np.array([2, 4, 2]), 8 / 3
    idf_red = math.log1p((3 - 2 + 0.5) / (2 + 0.5))
    idf_backpack = idf_red  # both in two documents
    expected = []
    for length, has_red, has_backpack in zip(lengths, [1, 0, 1], [1, 1, 0]):
        norm = 1.2 * (1 - 0.75 + 0.75 * length / average)
        expected.append(sum(idf * tf * 2.2 / (tf + norm) for idf, tf in
                            [(idf_red, has_red), (idf_backpack, has_backpack)]))
    np.testing.assert_allclose(index.scores("Red backpack"), expected)


def test_bm25_ranks_the_document_with_both_words_first():
    scores = BM25Index(DOCUMENTS).scores("red backpack")
    assert int(np.argmax(scores)) == 0 and scores[1] > 0 and scores[2] > 0
    assert BM25Index(DOCUMENTS).scores("teapot").tolist() == [0.0, 0.0, 0.0]


def test_rare_terms_weigh_more_and_config_is_checked():
    scores = BM25Index(DOCUMENTS).scores("school")
    assert scores[1] > 0 and scores[0] == scores[2] == 0
    assert tokenise("Man’s T-shirt") == ["man", "s", "t", "shirt"]
    with pytest.raises(ValueError):
        BM25Config(b=2.0)
    with pytest.raises(ValueError):
        BM25Index([])


def test_counts_agree_with_scikit_learns_vectoriser():
    from sklearn.feature_extraction.text import CountVectorizer

    documents = ["Red backpack. A red bag for school red", "Man’s t-shirt in blue", "blue blue kite", "a"]
    index = BM25Index(documents)
    counts = CountVectorizer(token_pattern=r"(?u)\b\w+\b").fit([d.replace("’", "'") for d in documents])
    assert set(index.vocabulary) == set(counts.vocabulary_)
    matrix = counts.transform([d.replace("’", "'") for d in documents]).toarray()  # (N, V)
    lengths = matrix.sum(1)
    norm = 1.2 * (1 - 0.75 + 0.75 * lengths / lengths.mean())
    for term, column in counts.vocabulary_.items():
        tf = matrix[:, column]
        idf = math.log1p((4 - (tf > 0).sum() + 0.5) / ((tf > 0).sum() + 0.5))
        np.testing.assert_allclose(index.scores(term), idf * tf * 2.2 / (tf + norm))
