"""Query understanding: the colours, product types, uses and price limits a shopper's query names.

:func:`parse_query` is a small rule-based parser over a :class:`QueryVocabulary`
(:mod:`ecmm.query_vocabulary`): the catalog's colours and product types plus the synonyms and uses
in ``resources/queries_vocabulary.json`` ("rucksack" -> backpack, "navy" -> blue, "keep my neck
warm" -> scarf). It works in four steps:

1. **prices** are read and removed (:mod:`ecmm.query_prices`): "under 30", "less than £30",
   "no more than 200 quid", "over 100", "between 10 and 20", "20 to 40";
2. **uses**: a use pattern is a list of word groups ("neck|throat warm|cold"); it matches when
   every group has a word of the query (compared by :func:`word_stem`, so "books" meets "book").
   The words of a pattern of two groups or more belong to the use, never to a product: in "to
   carry my books" the books are what is carried, not what is wanted. The word after "to" is a
   verb ("to watch the news"), never a product; a colour's own name is read anywhere. When several
   uses match, the most specific win: most groups, then most query words covered ("relax in a hot
   bath" is a bath, not a bathrobe);
3. **spelling** (:mod:`ecmm.spelling`): a word that is no vocabulary word, stop word or everyday
   word is corrected to the vocabulary word within a length-aware number of edits ("bakcpack" ->
   "backpack"); words after "to" / "for" / "as" (a purpose: "for the beach") are left as typed;
4. **phrases** are matched longest first. A product named after "for" / "to" / "as" is only the
   purpose when the query names a product before it ("backpack for my laptop"), names a thing the
   vocabulary does not know before it ("a case for my phone"), matches a use, or its verb is one no
   use knows ("to video the football match"): then it names no product. Phrases that name
   overlapping types keep the shared ones ("beanie hat": the hats that are beanies). When the
   query names no product, the product types of its most specific uses stand in
   (``use_product_types``).

The parser knows words, not meanings: :meth:`ecmm.search.CatalogSearch.understand` adds the text
encoder's nearest product types.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Sequence

from ecmm.query_prices import read_prices
from ecmm.query_vocabulary import (RESOURCES, STOPWORDS, QueryVocabulary, UsePattern, build_vocabulary,
                                   load_vocabulary, normalise_text, vocabulary_for, word_stem)
from ecmm.spelling import MINIMUM_FUZZY_LENGTH, correct_word, edit_distance

__all__ = ["QueryVocabulary", "UsePattern", "ParsedQuery", "build_vocabulary", "load_vocabulary",
           "vocabulary_for", "parse_query", "normalise_text", "word_stem", "edit_distance", "correct_word",
           "load_query_set", "title_queries", "query_relevance", "corrected_query", "MINIMUM_FUZZY_LENGTH",
           "QUERY_SETS"]

QUERY_SETS = ("validation", "freeform", "heldout", "blind")  # the packaged labelled query sets
_WORD = re.compile(r"[a-z0-9ñ]+(?:[-'][a-z0-9ñ]+)*")
_PURPOSE_WORDS = frozenset({"to", "for", "as"})  # what follows says what the product is for ("as a gift")


@dataclass(frozen=True)
class ParsedQuery:
    """What a query asks for (empty tuples and None where it says nothing)."""

    colours: tuple[str, ...] = ()  # catalog colours named in the query
    product_types: tuple[str, ...] = ()  # product types named, else those of its best uses
    max_price: float | None = None  # inclusive upper price limit
    min_price: float | None = None  # inclusive lower price limit
    corrections: dict[str, str] = field(default_factory=dict)  # misspelt word -> vocabulary word
    remainder: str = ""  # the words that named nothing (purpose, style, ...)
    uses: tuple[str, ...] = ()  # the use patterns the query matched, best first
    use_product_types: tuple[str, ...] = ()  # product types of the best-matching uses

    def as_dict(self) -> dict:
        """JSON-ready dict of every field."""
        return {"colours": list(self.colours), "product_types": list(self.product_types),
                "max_price": self.max_price, "min_price": self.min_price,
                "corrections": dict(self.corrections), "remainder": self.remainder,
                "uses": list(self.uses), "use_product_types": list(self.use_product_types)}

    @property
    def is_empty(self) -> bool:
        """True when the query names no colour, product type, use or price."""
        return not (self.colours or self.product_types) and self.max_price is None and self.min_price is None


def _matched_uses(words: list[str], vocabulary: QueryVocabulary) -> list[tuple[UsePattern, set[int]]]:
    """Use patterns whose every group has a word of the query, with the positions of those words."""
    stems = [word_stem(word) for word in words]
    found = []
    for pattern in vocabulary.uses:
        positions = [{i for i, stem in enumerate(stems) if stem in group} for group in pattern.groups]
        if all(positions) and len(set().union(*positions)) >= len(positions):  # one word meets one group
            found.append((pattern, set().union(*positions)))
    return found


def _lookup(phrase: str, vocabulary: QueryVocabulary) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    colours, types = vocabulary.colours.get(phrase), vocabulary.product_types.get(phrase)
    return (colours or (), types or ()) if (colours or types) else None


def _specific_uses(uses: list[tuple[UsePattern, set[int]]]) -> list[UsePattern]:
    """The most specific matched uses: most word groups, then most query words covered."""
    if not uses:
        return []
    top = max((len(pattern.groups), len(positions)) for pattern, positions in uses)
    return [pattern for pattern, positions in uses if (len(pattern.groups), len(positions)) == top]


def _phrases(words: list[str], taken: set[int], vocabulary: QueryVocabulary) -> list[tuple[int, int, tuple, tuple]]:
    """Colour and product phrases of ``words``, longest first: ``(position, length, colours, types)``."""
    found_all, position = [], 0
    while position < len(words):
        found, length = None, 0
        for length in range(min(vocabulary.longest_phrase, len(words) - position), 0, -1):
            if not taken & set(range(position, position + length)):
                found = _lookup(" ".join(words[position:position + length]), vocabulary)
                if found is not None:
                    break
        if found is None:
            position += 1
            continue
        found_all.append((position, length, *found))
        position += length
    return found_all


def _wanted_types(phrases: list[tuple[int, int, tuple, tuple]], purpose: int, purpose_only: bool) -> list[str]:
    """The product types the query asks for, from its product phrases (see :func:`parse_query`)."""
    named = [(at, types) for at, _, _, types in phrases if types]
    if purpose_only or any(at < purpose for at, _ in named):  # "backpack for my laptop": the laptop is the purpose
        named = [(at, types) for at, types in named if at < purpose]
    if len(named) >= 2:  # "beanie hat": the hats that are beanies
        common = set.intersection(*(set(types) for _, types in named))
        if common:
            return [t for _, types in named for t in types if t in common][:len(common)]
    return list(dict.fromkeys(t for _, types in named for t in types))


def parse_query(query: str, vocabulary: QueryVocabulary | None = None) -> ParsedQuery:
    """Colours, product types, uses and price limits named in ``query`` (see the module's steps).

    Args:
        query: free text, e.g. ``"purple backpack under 30"``.
        vocabulary: phrases to recognise; None loads the offline shop's.

    Returns:
        A :class:`ParsedQuery` (``colours=("purple",), product_types=("backpack",), max_price=30.0``).
    """
    vocabulary = vocabulary or load_vocabulary()
    text, max_price, min_price = read_prices(normalise_text(query))
    words = [piece for word in _WORD.findall(text) for piece in word.replace("-", " ").split()]
    uses = _matched_uses(words, vocabulary)
    taken = set().union(*(positions for pattern, positions in uses if len(pattern.groups) >= 2))  # words of a use
    verbs = {i for i in range(1, len(words)) if words[i - 1] == "to"}  # "to watch": a verb
    taken |= verbs
    taken -= {i for i, word in enumerate(words) if word in vocabulary.colours.get(word, ())}  # "green" anywhere
    purpose = next((i for i, word in enumerate(words) if word in _PURPOSE_WORDS), len(words))
    corrections: dict[str, str] = {}
    for i, word in enumerate(words):
        correction = None if (i in taken or i > purpose) else correct_word(word, vocabulary)
        if correction:
            corrections[word], words[i] = correction, correction
    phrases = _phrases(words, taken, vocabulary)
    used = {i for at, length, _, _ in phrases for i in range(at, at + length)}
    head = [word for i, word in enumerate(words[:purpose]) if i not in used and word.isalpha()
            and word not in vocabulary.everyday_words | STOPWORDS]  # "case" in "a case for my phone"
    unknown_verb = bool(verbs) and min(verbs) - 1 <= purpose and word_stem(words[min(verbs)]) not in vocabulary.use_verbs
    types = _wanted_types(phrases, purpose, bool(uses or head) or unknown_verb)  # "to video the match", "a case for my phone"
    best = _specific_uses(uses)
    use_types = tuple(dict.fromkeys(t for pattern in best for t in pattern.product_types))
    colours = list(dict.fromkeys(c for _, _, found, _ in phrases for c in found))
    remainder = " ".join(word for i, word in enumerate(words) if i not in used and word not in STOPWORDS)
    ranked = sorted(uses, key=lambda match: (-len(match[0].groups), -len(match[1])))
    return ParsedQuery(tuple(colours), tuple(types) or use_types, max_price, min_price, corrections, remainder,
                       tuple(pattern.text for pattern, _ in ranked), use_types)


def load_query_set(name: str = "freeform") -> list[dict]:
    """A labelled query set kept in the package (``resources/queries_<name>.json``, a name of
    :data:`QUERY_SETS`; "blind" was written without sight of the parser, for evaluation only).

    Returns:
        Dicts with ``query``, ``kind``, ``product_types``, ``colours`` (empty = any colour) and
        optional ``max_price`` / ``min_price``.
    """
    path = RESOURCES / f"queries_{name}.json"
    if name not in QUERY_SETS or not path.is_file():
        raise ValueError(f"no query set {name!r}; the package has {list(QUERY_SETS)}")
    return json.loads(path.read_text(encoding="utf-8"))["queries"]


def title_queries(catalog, splits: Sequence[str] = ("test_colours", "test_products"), count: int = 100,
                  seed: int = 0) -> list[dict]:
    """Queries written from a catalog's own titles, for a catalog the packaged query sets do not
    describe: the title of ``count`` seeded rows of ``splits``, labelled with the row's product
    type and colour (kind ``"title"``).

    Returns:
        Dicts like those of :func:`load_query_set`.
    """
    import numpy as np

    rows = np.flatnonzero(catalog["split"].isin(list(splits)).to_numpy())
    rows = np.sort(np.random.default_rng(seed).permutation(rows)[:count])
    return [{"query": str(catalog["title"].iloc[i]), "kind": "title", "product_types": [str(catalog["product_type"].iloc[i])],
             "colours": [str(catalog["colour"].iloc[i])]} for i in rows]


def query_relevance(queries: list[dict], catalog) -> "np.ndarray":
    """Which catalog rows satisfy each labelled query (type listed, colour listed, price in range).

    Shapes:
        ``Q`` queries, ``N`` rows -> ``(Q, N)`` bool.
    """
    import numpy as np

    types = catalog["product_type"].to_numpy()
    colours = catalog["colour"].to_numpy()
    prices = catalog["price"].to_numpy(dtype=np.float64)
    relevance = np.zeros((len(queries), len(catalog)), dtype=bool)
    for row, labels in enumerate(queries):
        match = np.isin(types, labels["product_types"])
        if labels.get("colours"):
            match &= np.isin(colours, labels["colours"])
        match &= prices <= labels.get("max_price", np.inf)
        match &= prices >= labels.get("min_price", -np.inf)
        relevance[row] = match
    return relevance


def corrected_query(query: str, parsed: ParsedQuery) -> str:
    """``query`` in lower case with every misspelt word replaced by its correction ("bakcpack" -> "backpack")."""
    text = normalise_text(query)
    for typo, word in parsed.corrections.items():
        text = re.sub(rf"(?<![a-z0-9]){re.escape(typo)}(?![a-z0-9])", word, text)
    return text
