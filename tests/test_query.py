"""ecmm.query: the query parser on hand-written cases, the packaged query sets' labels."""

import numpy as np
import pandas as pd
import pytest

from ecmm.data import COLOURS, PRODUCT_TYPES
from ecmm.query import (build_vocabulary, correct_word, corrected_query, edit_distance, load_query_set,
                        load_vocabulary, parse_query, query_relevance, vocabulary_for, word_stem)


@pytest.mark.parametrize("query, colours, types, max_price, min_price", [
    ("purple backpack under 30", ("purple",), ("backpack",), 30.0, None),
    ("something to keep my neck warm", (), ("scarf",), None, None),
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
    assert parse_query("something to write with").colours == ()  # "write" is not "white"
    assert parse_query("sunglasess for the beach").colours == ()  # "beach" is not "peach"
    assert "dress" not in parse_query("for a rock band").product_types  # "rock" is not "frock"
    assert parse_query("blue jeens").corrections == {"jeens": "jeans"}  # one edit in five letters
    assert parse_query("microfone").product_types == ("microphone",)  # two edits in nine letters
    assert parse_query("winter coat").product_types == ("coat",)  # "winter" is an everyday word, not "wine"
    assert parse_query("to tell the time").corrections == {}  # "time" is not "tie"


def test_edit_distance_counts_a_swap_once_and_stems_meet():
    assert edit_distance("bakcpack", "backpack") == 1 and edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3 and edit_distance("same", "same") == 0
    assert word_stem("books") == word_stem("book") and word_stem("shaving") == word_stem("shave")
    assert word_stem("cutting") == word_stem("cut") and word_stem("boxes") == word_stem("box")
    vocabulary = load_vocabulary()
    assert correct_word("umbrela", vocabulary) == "umbrella" and correct_word("cap", vocabulary) is None
    assert correct_word("xylophone", vocabulary) is None  # nothing near it


@pytest.mark.parametrize("query, types", [
    ("something to keep my hands warm", ("gloves",)),
    ("something to carry my books to school", ("backpack",)),  # the books are carried, not wanted
    ("to watch the news at home", ("television",)),  # "watch" after "to" is a verb
    ("to brush my teeth", ("toothbrush",)),  # not a paintbrush
    ("to tighten a bolt", ("wrench",)),  # not a nut and bolt
    ("backpack for my laptop", ("backpack",)),  # the laptop is the purpose
    ("brown teddy bear as a gift", ("teddy bear",)),
    ("black watch for the office", ("watch",)),
])
def test_uses_name_product_types_and_their_words_are_no_products(query, types):
    assert parse_query(query).product_types == types


def test_uses_are_reported_apart_from_named_products():
    parsed = parse_query("something to keep my neck warm")
    assert parsed.use_product_types == ("scarf",) and parsed.uses and not parsed.colours
    named = parse_query("red scarf for a cold neck")
    assert named.product_types == ("scarf",) and named.colours == ("red",)
    assert parse_query("green potted plant for my desk").colours == ("green",)
    assert parse_query("to keep my coffee warm").colours == ()  # "coffee" is brown only as a colour word


def test_as_dict_is_json_ready():
    understood = parse_query("blue jeans under 40").as_dict()
    assert understood["colours"] == ["blue"] and understood["product_types"] == ["jeans"]
    assert understood["max_price"] == 40.0 and understood["remainder"] == ""


def test_custom_vocabulary_adds_plurals_singulars_and_uses():
    vocabulary = build_vocabulary({"red": ["scarlet"]}, {"lamp": ["light"], "Watches": []},
                                  {"lamp": ["read|see dark|night"]}, ["short"])
    parsed = parse_query("two scarlet lights", vocabulary)
    assert parsed.colours == ("red",) and parsed.product_types == ("lamp",) and parsed.remainder == "two"
    assert parse_query("a watch", vocabulary).product_types == ("Watches",)
    assert parse_query("to read at night", vocabulary).product_types == ("lamp",)


def test_vocabulary_of_another_catalog_comes_from_its_table():
    catalog = pd.DataFrame({"colour": ["Navy Blue", "red", "Black"], "product_type": ["Backpacks", "Tshirts", "Watches"]})
    vocabulary = vocabulary_for(catalog)
    assert set(vocabulary.product_types["backpack"]) == {"Backpacks"}
    assert parse_query("navy blue backpack", vocabulary).colours == ("Navy Blue",)
    assert parse_query("scarlet tshirt", vocabulary).colours == ("red",)  # the packaged synonyms of a shared value
    assert parse_query("black watch", vocabulary).product_types == ("Watches",)
    assert parse_query("rucksack", vocabulary).product_types == ("Backpacks",)  # "backpack"'s synonyms, by its singular
    assert parse_query("to tell the time", vocabulary).product_types == ("Watches",)  # and its uses
    assert parse_query("a kimono", vocabulary).product_types == ()  # a type the catalog does not have


@pytest.mark.parametrize("name", ["freeform", "heldout", "validation"])  # "blind" is read by the notebook only
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
    held_out = {item["query"] for item in load_query_set("heldout")}
    validation = {item["query"] for item in load_query_set("validation")}
    assert not free_form & validation and not held_out & validation and not free_form & held_out
    with pytest.raises(ValueError, match="freeform"):
        load_query_set("nope")


def test_query_relevance_uses_type_colour_and_price():
    catalog = pd.DataFrame({"product_type": ["bag", "bag", "hat"], "colour": ["red", "blue", "red"],
                            "price": [10.0, 50.0, 5.0]})
    queries = [{"product_types": ["bag"], "colours": []}, {"product_types": ["bag"], "colours": ["red"]},
               {"product_types": ["bag", "hat"], "colours": [], "max_price": 20}]
    np.testing.assert_array_equal(query_relevance(queries, catalog),
                                  [[True, True, False], [True, False, False], [True, False, True]])


@pytest.mark.parametrize("text, max_price, min_price", [
    ("laptop for less than 300 quid", 300.0, None),
    ("wallet no more than $20", 20.0, None),
    ("trainers 30 to 60 pounds", 60.0, 30.0),
    ("boots £20-£40", 40.0, 20.0),
    ("headphones 100 or more", None, 100.0),
    ("at least 80 euros", None, 80.0),
    ("size 10 boots", None, None),  # a number without a price word is no price
])
def test_price_phrases(text, max_price, min_price):
    parsed = parse_query(text)
    assert (parsed.max_price, parsed.min_price) == (max_price, min_price)


def test_overlapping_phrases_keep_the_shared_types():
    vocabulary = build_vocabulary({"black": []}, {"soft hat": ["beanie", "hat"], "tall hat": ["hat"]})
    assert parse_query("hat", vocabulary).product_types == ("soft hat", "tall hat")
    assert parse_query("black beanie hat", vocabulary).product_types == ("soft hat",)  # {soft} & {soft, tall}


def test_the_most_specific_use_wins():
    vocabulary = build_vocabulary({}, {"robe": [], "tub": []}, {"robe": ["relax bath"], "tub": ["relax bath|hot"]})
    parsed = parse_query("to relax in a hot bath", vocabulary)  # robe covers 2 words, tub 3 ("relax", "hot", "bath")
    assert parsed.product_types == ("tub",) and parsed.uses == ("relax bath|hot", "relax bath")
    assert parse_query("to relax in the bath", vocabulary).product_types == ("robe", "tub")  # a tie keeps both


def test_a_product_inside_the_purpose_is_not_what_is_wanted():
    vocabulary = build_vocabulary({}, {"ball": ["football"], "camera": []}, {"ball": ["kick football"]})
    assert parse_query("football", vocabulary).product_types == ("ball",)
    assert parse_query("to video the football match", vocabulary).product_types == ()  # a verb no use knows
    assert parse_query("to kick a football", vocabulary).product_types == ("ball",)  # the use's type
    assert parse_query("a case for my phone").product_types == ()  # "case": an unknown thing before "for"
    assert parse_query("backpack for my laptop").product_types == ("backpack",)
    assert parse_query("for my laptop").product_types == ("laptop",)  # nothing else is named


def test_packaged_vocabulary_covers_every_type_without_clashes():
    vocabulary = load_vocabulary()
    names = {product.name for product in PRODUCT_TYPES}
    synonyms = {name: [phrase for phrase, types in vocabulary.product_types.items() if name in types] for name in names}
    assert min(len(phrases) for phrases in synonyms.values()) >= 4  # the name, its plural and synonyms
    assert not set(vocabulary.colours) & set(vocabulary.product_types)  # no word is both a colour and a product
    assert parse_query("crimson dress").colours == ("red",) and parse_query("ivory candle").colours == ("white",)
    assert parse_query("blazer in navy").product_types == ("coat",)
