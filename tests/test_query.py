"""ecmm.query: the query parser on hand-written cases, the packaged query sets' labels."""

import numpy as np
import pandas as pd
import pytest

from ecmm.data import COLOURS, PRODUCT_TYPES
from ecmm.query import (build_vocabulary, corrected_query, load_query_set, parse_query, query_relevance)


@pytest.mark.parametrize("query, colours, types, max_price, min_price", [
    ("purple backpack under 30", ("purple",), ("backpack",), 30.0, None),
    ("something to keep my neck warm", (), (), None, None),
    ("Red backpack", ("red",), ("backpack",), None, None),
    ("navy rucksack", ("blue",), ("backpack",), None, None),
    ("cheap trainers below €50", (), ("running shoe",), 50.0, None),
    ("a tshirt between 10 and 20 euros", (), ("t-shirt",), 20.0, 10.0),
    ("mens shoes brown", ("brown",), ("man’s shoe",), None, None),
    ("red or blue umbrella over 20", ("red", "blue"), ("umbrella",), None, 20.0),
    ("tool box", (), ("toolbox",), None, None),
])
def test_parser_cases(query, colours, types, max_price, min_price):
    parsed = parse_query(query)
    assert (parsed.colours, parsed.product_types, parsed.max_price, parsed.min_price) == (
        colours, types, max_price, min_price)


def test_misspellings_are_corrected_and_short_or_common_words_are_not():
    parsed = parse_query("purpel bakcpack")
    assert parsed.colours == ("purple",) and parsed.product_types == ("backpack",)
    assert parsed.corrections == {"purpel": "purple", "bakcpack": "backpack"}
    assert corrected_query("Purpel bakcpack!", parsed) == "purple backpack!"
    assert parse_query("something to write with").is_empty  # "write" is not "white"
    assert parse_query("sunglasess for the beach").colours == ()  # "beach" is not "peach"
    assert parse_query("for a rock band").is_empty  # "rock" is not "frock"


def test_as_dict_is_json_ready():
    understood = parse_query("blue jeans under 40").as_dict()
    assert understood["colours"] == ["blue"] and understood["product_types"] == ["jeans"]
    assert understood["max_price"] == 40.0 and understood["remainder"] == ""


def test_custom_vocabulary_adds_plurals():
    vocabulary = build_vocabulary({"red": ["scarlet"]}, {"lamp": ["light"]})
    parsed = parse_query("two scarlet lights", vocabulary)
    assert parsed.colours == ("red",) and parsed.product_types == ("lamp",) and parsed.remainder == "two"


@pytest.mark.parametrize("name", ["freeform", "validation"])
def test_query_sets_refer_to_real_types_and_colours(name):
    queries = load_query_set(name)
    names = {product.name for product in PRODUCT_TYPES}
    for item in queries:
        assert item["query"].strip() and item["kind"]
        assert item["product_types"] and set(item["product_types"]) <= names, item
        assert set(item["colours"]) <= set(COLOURS), item
    if name == "freeform":
        assert len(queries) >= 100 and len({item["kind"] for item in queries}) >= 5


def test_free_form_and_validation_sets_do_not_overlap():
    free_form = {item["query"] for item in load_query_set("freeform")}
    assert not free_form & {item["query"] for item in load_query_set("validation")}
    with pytest.raises(ValueError, match="freeform"):
        load_query_set("nope")


def test_query_relevance_uses_type_colour_and_price():
    catalog = pd.DataFrame({"product_type": ["bag", "bag", "hat"], "colour": ["red", "blue", "red"],
                            "price": [10.0, 50.0, 5.0]})
    queries = [{"product_types": ["bag"], "colours": []}, {"product_types": ["bag"], "colours": ["red"]},
               {"product_types": ["bag", "hat"], "colours": [], "max_price": 20}]
    np.testing.assert_array_equal(query_relevance(queries, catalog),
                                  [[True, True, False], [True, False, False], [True, False, True]])
