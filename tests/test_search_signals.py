"""Reading and scoring one text query over a hand-made text side of three rows."""

import numpy as np
import pandas as pd
import pytest

from ecmm.hybrid import HybridBlend
from ecmm.query import ParsedQuery
from ecmm.search_signals import (MAX_QUERY_CHARACTERS, EncodedQuery, checked_query, expanded_query, fused_scores,
                                 query_signals, top_rows)
from ecmm.text_side import normalised, text_side_tables

CATALOG = pd.DataFrame({
    "sku_id": ["a", "b", "c"], "title": ["Red backpack", "Blue backpack", "Red kettle"],
    "description": ["", "", ""], "product_type": ["backpack", "backpack", "kettle"],
    "colour": ["red", "blue", "red"], "category": ["bags", "bags", "kitchen"], "price": [30.0, 50.0, 20.0]})
TAGS = pd.DataFrame({"colour": ["red", "blue", "red"], "product_type": ["backpack", "backpack", "kettle"]})


def side():
    photos = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32)  # (N=3, E=2)
    encoded = {"texts": np.eye(3, dtype=np.float32),  # (N, D=3): row i's title is axis i
               "type_embeddings": np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32) / [[2 ** .5], [1.0]]}
    return text_side_tables(CATALOG, photos, TAGS, encoded, ["backpack", "kettle"], ["sku_id", "title"])


def query(parsed, clip=(1.0, 0.0), sentence=(0.0, 1.0, 0.0), expanded="backpack"):
    return EncodedQuery("q", "hybrid", parsed, expanded, np.array([clip], dtype=np.float32),
                        np.array([sentence], dtype=np.float32))


def test_checked_query_strips_and_refuses_empty_or_long_text():
    assert checked_query("  red backpack ") == "red backpack"
    with pytest.raises(ValueError, match="empty"):
        checked_query("   ")
    with pytest.raises(ValueError, match=f"keep it under {MAX_QUERY_CHARACTERS}"):
        checked_query("x" * (MAX_QUERY_CHARACTERS + 1))


def test_expanded_query_adds_what_the_query_was_read_as():
    parsed = ParsedQuery(colours=("red",), product_types=("backpack",), corrections={"bakpack": "backpack"})
    assert expanded_query("Bakpack", parsed) == "backpack red backpack"


def test_text_side_tables_index_rows_by_type_and_colour():
    tables = side()
    assert tables["row_types"].tolist() == [0, 0, 1] and tables["colours"] == ["blue", "red"]
    assert tables["row_colours"].tolist() == [1, 0, 1] and tables["prices"].tolist() == [30.0, 50.0, 20.0]
    assert tables["records"][2] == {"sku_id": "c", "title": "Red kettle"}


def test_signals_are_the_hand_computed_products():
    signals, outside = query_signals(side(), query(ParsedQuery(colours=("red",), product_types=("backpack",),
                                                               max_price=40.0)))
    np.testing.assert_allclose(signals["dense_image"], [1.0, 0.6, 0.0])
    np.testing.assert_allclose(signals["dense_text"], [0.0, 1.0, 0.0])
    # the query's nearness to each row's type name (backpack: 1/sqrt 2; kettle: 0), tie broken by the photo
    np.testing.assert_allclose(signals["nearest_types"], [2 ** -.5 + 1e-3, 2 ** -.5 + 6e-4, 0.0], rtol=1e-6)
    # 2 for the named type + 1 for the named colour; a row matching neither is not retrieved
    np.testing.assert_allclose(signals["attributes"], [3.001, 2.0006, 1.0], rtol=1e-6)
    assert outside.tolist() == [False, True, False]  # 50 > 40
    assert signals["lexical"][0] > 0 and signals["lexical"][2] == 0  # "backpack" is not in row c's text


def test_fusion_is_weighted_reciprocal_rank_and_the_price_filter_sends_rows_last():
    signals = {"dense_image": np.zeros(3), "dense_text": np.array([0.9, 0.5, 0.1]), "nearest_types": np.zeros(3),
               "lexical": np.array([0.0, 2.0, 1.0]), "attributes": np.array([np.nan, 1.0, np.nan])}
    blend = HybridBlend(dense_image=0.0, dense_text=1.0, nearest_types=0.0, lexical=1.0, attributes=2.0, rrf_k=1.0)
    fused = fused_scores(signals, np.array([False, False, False]), blend)
    # dense_text ranks a, b, c; lexical b, c (a's 0 is not retrieved); attributes b only
    np.testing.assert_allclose(fused, [1 / 2, 1 / 3 + 1 / 2 + 2 / 2, 1 / 4 + 1 / 3])
    filtered = fused_scores(signals, np.array([False, True, False]), blend)
    # the weights sum to 4, so a row can score up to 4 / (1 + 1) = 2: the shift is 2 + 1
    np.testing.assert_allclose(filtered, fused - [0.0, 3.0, 0.0])
    assert top_rows(filtered, 3)[0].tolist() == [2, 0, 1]
    default = fused_scores(signals, np.array([False, True, False]), HybridBlend())
    assert default[1] == pytest.approx(fused_scores(signals, np.zeros(3, bool), HybridBlend())[1] - 1.0)


def test_top_rows_keep_catalog_order_on_ties():
    rows, scores = top_rows(np.array([0.5, 0.9, 0.5, 0.1]), 3)
    assert rows.tolist() == [1, 0, 2] and scores.tolist() == [0.9, 0.5, 0.5]


def test_normalised_rows_have_unit_length_and_zero_rows_stay_zero():
    out = normalised(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    assert out.dtype == np.float32
