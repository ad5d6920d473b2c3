"""Query understanding: the colours, product types and price limits a shopper's query names.

:func:`parse_query` is a small rule-based parser: the vocabulary is the catalog's colours and
product types plus the synonyms in ``resources/queries_vocabulary.json`` ("rucksack" ->
backpack, "navy" -> blue); phrases are matched longest first; a word that matches nothing is
compared with the vocabulary by :func:`difflib.get_close_matches` (misspellings such as
"bakcpack"); prices are read from "under 30", "below €30", "over 100", "between 10 and 20".

The parser knows words, not uses: "something to keep my neck warm" names no colour, type or
price. For such queries :meth:`ecmm.search.CatalogSearch.understand` adds the nearest product
types by its text encoder (the CLIP text tower unless another is given).
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

__all__ = ["QueryVocabulary", "ParsedQuery", "build_vocabulary", "load_vocabulary", "parse_query", "normalise_text",
           "load_query_set", "query_relevance", "corrected_query",
           "MISSPELLING_CUTOFF"]

MISSPELLING_CUTOFF = 0.84  # difflib similarity a word needs to count as a misspelling of a vocabulary word
MINIMUM_FUZZY_LENGTH = 4  # shorter words are never corrected ("cap" must not become "car")
_RESOURCES = Path(__file__).parent / "data" / "resources"
_NUMBER = r"(?:€|\$|£|eur\s*|euros?\s*)?\s*(\d+(?:[.,]\d+)?)\s*(?:€|\$|£|eur\b|euros?\b|dollars?\b)?"
_BETWEEN = re.compile(rf"\bbetween\s+{_NUMBER}\s+(?:and|to|-)\s+{_NUMBER}")
_MAXIMUM = re.compile(rf"(?:\bunder|\bbelow|\bless than|\bcheaper than|\bat most|\bup to|\bmax(?:imum)?|\bno more than|<)\s*{_NUMBER}")
_MAXIMUM_AFTER = re.compile(rf"{_NUMBER}\s+(?:or less|or under|max)\b")
_MINIMUM = re.compile(rf"(?:\bover|\babove|\bmore than|\bat least|\bfrom|>)\s*{_NUMBER}")
_WORD = re.compile(r"[a-z0-9ñ]+(?:[-'][a-z0-9ñ]+)*")
_STOPWORDS = frozenset(
    "a an the and or for to of in on with my me i im i'm want need looking look some something any "
    "please show do you sell have has is it its that this new one ones thing things get buy find can "
    "if possible would like cheap good nice great best under below over above than less more price "
    "euro euros eur dollars at most up from between colour color coloured colored".split())


def normalise_text(text: str) -> str:
    """Lower case with typographic apostrophes and dashes made plain ("Man’s" -> "man's")."""
    return text.lower().replace("’", "'").replace("‘", "'").replace("–", "-").replace("—", "-")


@dataclass(frozen=True)
class QueryVocabulary:
    """Phrases the parser recognises, each mapped to the catalog values it stands for."""

    colours: dict[str, tuple[str, ...]]  # normalised phrase -> catalog colours ("navy" -> ("blue",))
    product_types: dict[str, tuple[str, ...]]  # normalised phrase -> catalog product types

    @property
    def longest_phrase(self) -> int:
        """Number of words of the longest phrase."""
        return max(len(phrase.split()) for phrase in [*self.colours, *self.product_types])


@dataclass(frozen=True)
class ParsedQuery:
    """What a query asks for (empty tuples and None where it says nothing)."""

    colours: tuple[str, ...] = ()  # catalog colours named in the query
    product_types: tuple[str, ...] = ()  # catalog product types named in the query
    max_price: float | None = None  # inclusive upper price limit
    min_price: float | None = None  # inclusive lower price limit
    corrections: dict[str, str] = field(default_factory=dict)  # misspelt word -> vocabulary phrase
    remainder: str = ""  # the words that named nothing (purpose, style, ...)

    def as_dict(self) -> dict:
        """JSON-ready dict: ``colours, product_types, max_price, min_price, corrections, remainder``."""
        return {"colours": list(self.colours), "product_types": list(self.product_types),
                "max_price": self.max_price, "min_price": self.min_price,
                "corrections": dict(self.corrections), "remainder": self.remainder}

    @property
    def is_empty(self) -> bool:
        """True when the query names no colour, product type or price."""
        return not (self.colours or self.product_types) and self.max_price is None and self.min_price is None


def _add(table: dict[str, list[str]], phrase: str, value: str) -> None:
    values = table.setdefault(normalise_text(phrase).replace("-", " "), [])
    if value not in values:
        values.append(value)


def build_vocabulary(colours: dict[str, list[str]], product_types: dict[str, list[str]]) -> QueryVocabulary:
    """A :class:`QueryVocabulary` from ``{catalog value: [synonyms]}`` tables (the value counts too).

    Plurals of single product words are added ("backpacks"); hyphens count as spaces.
    """
    colour_table: dict[str, list[str]] = {}
    type_table: dict[str, list[str]] = {}
    for colour, synonyms in colours.items():
        for phrase in (colour, *synonyms):
            _add(colour_table, phrase, colour)
    for product, synonyms in product_types.items():
        for phrase in (product, *synonyms):
            _add(type_table, phrase, product)
            if not phrase.endswith("s"):
                _add(type_table, phrase + ("es" if phrase.endswith(("sh", "ch", "x")) else "s"), product)
    return QueryVocabulary({k: tuple(v) for k, v in colour_table.items()},
                           {k: tuple(v) for k, v in type_table.items()})


@lru_cache(maxsize=1)
def load_vocabulary() -> QueryVocabulary:
    """The offline shop's vocabulary: every catalog colour and product type and their synonyms."""
    table = json.loads((_RESOURCES / "queries_vocabulary.json").read_text(encoding="utf-8"))
    return build_vocabulary(table["colours"], table["product_types"])


def _prices(text: str) -> tuple[str, float | None, float | None]:
    """Remove price phrases from ``text``; return ``(rest, max_price, min_price)``."""
    max_price = min_price = None
    match = _BETWEEN.search(text)
    if match:
        low, high = sorted(float(group.replace(",", ".")) for group in match.groups())
        return text[:match.start()] + " " + text[match.end():], high, low
    for pattern in (_MAXIMUM, _MAXIMUM_AFTER):
        match = pattern.search(text)
        if match:
            max_price = float(match.group(1).replace(",", "."))
            text = text[:match.start()] + " " + text[match.end():]
            break
    match = _MINIMUM.search(text)
    if match:
        min_price = float(match.group(1).replace(",", "."))
        text = text[:match.start()] + " " + text[match.end():]
    return text, max_price, min_price


def _lookup(phrase: str, vocabulary: QueryVocabulary) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    colours, types = vocabulary.colours.get(phrase), vocabulary.product_types.get(phrase)
    return (colours or (), types or ()) if (colours or types) else None


def _transposed(word: str, phrases: list[str]) -> list[str]:
    """Vocabulary words spelt with the same letters and first letter ("purpel" -> "purple")."""
    return [phrase for phrase in phrases if len(phrase) == len(word) and phrase[0] == word[0]
            and sorted(phrase) == sorted(word)][:1]


def parse_query(query: str, vocabulary: QueryVocabulary | None = None) -> ParsedQuery:
    """Colours, product types and price limits named in ``query``.

    Args:
        query: free text, e.g. ``"purple backpack under 30"``.
        vocabulary: phrases to recognise; None loads the offline shop's.

    Returns:
        A :class:`ParsedQuery` (``colours=("purple",), product_types=("backpack",), max_price=30.0``).
    """
    vocabulary = vocabulary or load_vocabulary()
    text, max_price, min_price = _prices(normalise_text(query))
    words = [word.replace("-", " ") for word in _WORD.findall(text)]
    words = [piece for word in words for piece in word.split()]
    colours: list[str] = []
    types: list[str] = []
    corrections: dict[str, str] = {}
    rest: list[str] = []
    fuzzy_phrases = sorted({*vocabulary.colours, *vocabulary.product_types})
    position = 0
    while position < len(words):
        found = None
        for length in range(min(vocabulary.longest_phrase, len(words) - position), 0, -1):
            phrase = " ".join(words[position:position + length])
            found = _lookup(phrase, vocabulary)
            if found is None and length > 1 and phrase not in _STOPWORDS:
                close = difflib.get_close_matches(phrase, fuzzy_phrases, n=1, cutoff=MISSPELLING_CUTOFF + 0.04)
                if close and len(close[0].split()) == length:
                    corrections[phrase], found = close[0], _lookup(close[0], vocabulary)
            if found is None and length == 1 and len(phrase) >= MINIMUM_FUZZY_LENGTH and phrase not in _STOPWORDS:
                close = ([match for match in difflib.get_close_matches(phrase, fuzzy_phrases, n=3, cutoff=MISSPELLING_CUTOFF)
                          if match[0] == phrase[0]][:1]  # a misspelling keeps its first letter ("rock" is no "frock")
                         or _transposed(phrase, fuzzy_phrases))
                if close:
                    corrections[phrase], found = close[0], _lookup(close[0], vocabulary)
            if found is not None:
                position += length
                break
        if found is None:
            rest.append(words[position])
            position += 1
            continue
        colours.extend(c for c in found[0] if c not in colours)
        types.extend(t for t in found[1] if t not in types)
    remainder = " ".join(word for word in rest if word not in _STOPWORDS)
    return ParsedQuery(tuple(colours), tuple(types), max_price, min_price, corrections, remainder)


def load_query_set(name: str = "freeform") -> list[dict]:
    """A labelled query set kept in the package (``resources/queries_<name>.json``).

    Returns:
        Dicts with ``query``, ``kind``, ``product_types``, ``colours`` (empty = any colour) and
        optional ``max_price`` / ``min_price``.
    """
    path = _RESOURCES / f"queries_{name}.json"
    if not path.is_file():
        raise ValueError(f"no query set {name!r}; the package has "
                         f"{sorted(p.stem.removeprefix('queries_') for p in _RESOURCES.glob('queries_*.json'))}")
    return json.loads(path.read_text(encoding="utf-8"))["queries"]


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
