"""ecmm.hybrid: RRF weights and rank offset fitted on a stub search whose signals are written by hand."""

import numpy as np
import pandas as pd
import pytest

from ecmm.hybrid import SIGNALS, HybridBlend, evaluate_queries, fit_blend, reciprocal_rank_fusion, signal_ranks

CATALOG = pd.DataFrame({"product_type": ["bag", "hat", "cup"], "colour": ["red", "red", "blue"],
                        "price": [10.0, 50.0, 5.0]})


class StubSearch:
    """Signals fixed per query: only "attributes" ranks the relevant row first."""

    catalog = CATALOG

    def signals(self, query):
        relevant = {"bag": 0, "hat": 1, "cup": 2}[query]
        wrong = (relevant + 1) % 3
        scores = {name: np.where(np.arange(3) == wrong, 1.0, 0.5) for name in SIGNALS}
        scores["attributes"] = np.where(np.arange(3) == relevant, 1.0, np.nan)
        scores["lexical"] = np.zeros(3)  # no shared word: BM25 retrieves nothing
        return scores, np.zeros(3, dtype=bool)

    def scores(self, query, mode=None):
        signals, outside = self.signals(query)
        if mode == "lexical":
            return signals["lexical"]
        weights = HybridBlend(attributes=1.0, dense_text=0.0).weights() if mode == "hybrid" else {"dense_image": 1.0}
        return reciprocal_rank_fusion(signals, weights) - outside


QUERIES = [{"query": name, "kind": "plain", "product_types": [name], "colours": []} for name in ("bag", "hat", "cup")]


def test_signal_ranks_have_one_rank_per_signal_and_row():
    ranks, outside = signal_ranks(StubSearch(), QUERIES)
    assert ranks.shape == (3, len(SIGNALS), 3) and outside.shape == (3, 3)
    attributes = ranks[:, SIGNALS.index("attributes")]
    np.testing.assert_array_equal(np.isnan(attributes), ~np.eye(3, dtype=bool))
    assert np.isnan(ranks[:, SIGNALS.index("lexical")]).all()  # a zero BM25 score retrieves nothing


def test_fit_blend_finds_the_only_useful_signal():
    blend, mrr = fit_blend(StubSearch(), QUERIES, grid=(0.0, 1.0), rrf_ks=(60.0, 10.0))
    assert mrr == 1.0 and blend.rrf_k == 60.0  # ties keep the first k tried
    weights = blend.weights()
    assert weights["attributes"] == 1.0
    assert sum(weights.values()) == 1.0  # ties keep the smallest weights: attributes alone


def test_evaluate_queries_per_mode_and_kind():
    table = evaluate_queries(StubSearch(), QUERIES, modes=("dense", "hybrid"))
    hybrid = table[(table["mode"] == "hybrid") & (table["kind"] == "all")].iloc[0]
    dense = table[(table["mode"] == "dense") & (table["kind"] == "all")].iloc[0]
    assert hybrid["R@1"] == 1.0 and dense["R@1"] == 0.0 and hybrid["queries"] == 3


def test_default_blend_is_valid_and_checked():
    assert set(HybridBlend().weights()) == set(SIGNALS) and HybridBlend().rrf_k > 0
    with pytest.raises(ValueError):
        HybridBlend(rrf_k=0.0)


def test_reciprocal_rank_fusion_by_hand():
    signals = {"lexical": np.array([3.0, 2.0, np.nan]), "dense_text": np.array([0.1, 0.2, 0.3])}
    fused = reciprocal_rank_fusion(signals, {"lexical": 2.0, "dense_text": 1.0}, k=10.0)
    # row 0: lexical rank 1, dense rank 3; row 1: ranks 2 and 2; row 2: not retrieved by lexical, dense rank 1
    np.testing.assert_allclose(fused, [2 / 11 + 1 / 13, 2 / 12 + 1 / 12, 1 / 11])


def test_default_blend_lets_understood_types_lead():
    weights = HybridBlend().weights()
    assert weights["attributes"] > weights["dense_text"] > 0 and weights["nearest_types"] > 0
    assert weights["dense_image"] == weights["lexical"] == 0.0


def test_price_offset_puts_every_row_outside_the_range_below_every_row_inside():
    from ecmm.hybrid import price_offset

    assert price_offset(list(HybridBlend().weights().values()), HybridBlend().rrf_k) == 1.0  # 5 / 11 < 1
    assert price_offset([4.0] * 5, 10.0) == pytest.approx(20 / 11 + 1)
    best_outside = 20 / 11 - price_offset([4.0] * 5, 10.0)  # ranked first by every signal, but too dear
    assert best_outside < 0.0  # every row inside scores >= 0
