"""Query understanding: the colours, product types, uses and price limits a shopper's query names.

:func:`parse_query` is a small rule-based parser over a :class:`QueryVocabulary`: the catalog's
colours and product types plus the synonyms and uses in ``resources/queries_vocabulary.json``
("rucksack" -> backpack, "navy" -> blue, "keep my neck warm" -> scarf). It works in four steps:

1. **prices** are read and removed: "under 30", "below €30", "over 100", "between 10 and 20";
2. **uses**: a use pattern is a list of word groups ("neck|throat warm|cold"); it matches when
   every group has a word of the query (compared by :func:`word_stem`, so "books" meets "book").
   The words of a pattern of two groups or more belong to the use, never to a product: in "to
   carry my books" the books are what is carried, not what is wanted. The word after "to" is a
   verb ("to watch the news"), never a product; a colour's own name is read anywhere;
3. **spelling**: a word that is no vocabulary word, stop word or everyday word is corrected to the
   vocabulary word within a length-aware number of edits (:func:`edit_distance`, transpositions
   count one: "bakcpack" -> "backpack", "jeens" -> "jeans"); words after "to" / "for" / "as" (a
   purpose: "for the beach") are left as typed;
4. **phrases** are matched longest first. When the query names a product before "for" / "to" /
   "as", the purpose part names none ("backpack for my laptop" asks for a backpack, "teddy bear as
   a gift" for a teddy bear). When it names no product
   at all, the product types of its best-matching uses stand in (``use_product_types``).

The parser knows words, not meanings: :meth:`ecmm.search.CatalogSearch.understand` adds the text
encoder's nearest product types.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Mapping, Sequence

__all__ = ["QueryVocabulary", "UsePattern", "ParsedQuery", "build_vocabulary", "load_vocabulary",
           "vocabulary_for", "parse_query", "normalise_text", "word_stem", "edit_distance", "correct_word",
           "load_query_set", "title_queries", "query_relevance", "corrected_query", "MINIMUM_FUZZY_LENGTH"]

MINIMUM_FUZZY_LENGTH = 4  # shorter words are never corrected ("cap" must not become "car")
_RESOURCES = Path(__file__).parent / "data" / "resources"
_NUMBER = r"(?:€|\$|£|eur\s*|euros?\s*)?\s*(\d+(?:[.,]\d+)?)\s*(?:€|\$|£|eur\b|euros?\b|dollars?\b)?"
_BETWEEN = re.compile(rf"\bbetween\s+{_NUMBER}\s+(?:and|to|-)\s+{_NUMBER}")
_MAXIMUM = re.compile(rf"(?:\bunder|\bbelow|\bless than|\bcheaper than|\bat most|\bup to|\bmax(?:imum)?|\bno more than|<)\s*{_NUMBER}")
_MAXIMUM_AFTER = re.compile(rf"{_NUMBER}\s+(?:or less|or under|max)\b")
_MINIMUM = re.compile(rf"(?:\bover|\babove|\bmore than|\bat least|\bfrom|>)\s*{_NUMBER}")
_WORD = re.compile(r"[a-z0-9ñ]+(?:[-'][a-z0-9ñ]+)*")
_PURPOSE_WORDS = frozenset({"to", "for", "as"})  # what follows says what the product is for ("as a gift")
_STOPWORDS = frozenset(
    "a an the and or for to of in on with my me i im i'm want need looking look some something any "
    "please show do you sell have has is it its that this new one ones thing things get buy find can "
    "if possible would like cheap good nice great best under below over above than less more price "
    "euro euros eur dollars at most up from between colour color coloured colored way".split())


def normalise_text(text: str) -> str:
    """Lower case with typographic apostrophes and dashes made plain ("Man’s" -> "man's")."""
    return text.lower().replace("’", "'").replace("‘", "'").replace("–", "-").replace("—", "-")


def word_stem(word: str) -> str:
    """A crude English stem so that forms of one word meet: "books" / "book", "shaving" / "shave".

    Drops "'s", a plural "s" ("ies" -> "y"; "ches", "shes", "xes", "sses" lose "es"), "ing" / "ed"
    (a doubled last consonant is undoubled: "cutting" -> "cut") and a final "e"; a stem keeps at
    least three letters.
    """
    word = word.removesuffix("'s")
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("ches", "shes", "xes", "sses")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is", "ews")) and len(word) > 3:
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[:-len(suffix)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsfz":
                word = word[:-1]
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def edit_distance(first: str, second: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of two
    neighbouring letters each cost one ("bakcpack" is one edit from "backpack")."""
    previous2, previous = None, list(range(len(second) + 1))
    for i, a in enumerate(first, 1):
        current = [i] + [0] * len(second)
        for j, b in enumerate(second, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b))
            if i > 1 and j > 1 and a == second[j - 2] and first[i - 2] == b:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


@dataclass(frozen=True)
class UsePattern:
    """A use of a product: word groups (stems) that must all occur in a query, and its product types."""

    text: str  # the pattern as written, e.g. "neck|throat warm|cold"
    groups: tuple[frozenset[str], ...]  # stems of each group's alternatives
    product_types: tuple[str, ...]  # catalog product types for this use


@dataclass(frozen=True)
class QueryVocabulary:
    """Phrases the parser recognises, each mapped to the catalog values it stands for."""

    colours: dict[str, tuple[str, ...]]  # normalised phrase -> catalog colours ("navy" -> ("blue",))
    product_types: dict[str, tuple[str, ...]]  # normalised phrase -> catalog product types
    uses: tuple[UsePattern, ...] = ()  # use patterns ("keep my neck warm" -> scarf)
    everyday_words: frozenset[str] = frozenset()  # correctly spelt words a correction leaves alone

    @cached_property
    def longest_phrase(self) -> int:
        """Number of words of the longest phrase."""
        return max(len(phrase.split()) for phrase in [*self.colours, *self.product_types])

    @cached_property
    def words(self) -> frozenset[str]:
        """Every word of every colour or product phrase (the spelling correction's candidates)."""
        return frozenset(word for phrase in [*self.colours, *self.product_types] for word in phrase.split())

    @cached_property
    def known_words(self) -> frozenset[str]:
        """Words that are never corrected: vocabulary, use and everyday words, stop words."""
        use_words = {alternative for pattern in self.uses for alternative in pattern.text.replace("|", " ").split()}
        return self.words | use_words | self.everyday_words | _STOPWORDS


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


def _plural(phrase: str) -> str:
    return phrase + ("es" if phrase.endswith(("sh", "ch", "x")) else "s")


def _add(table: dict[str, list[str]], phrase: str, value: str) -> None:
    values = table.setdefault(normalise_text(phrase).replace("-", " "), [])
    if value not in values:
        values.append(value)


def build_vocabulary(colours: Mapping[str, Sequence[str]], product_types: Mapping[str, Sequence[str]],
                     uses: Mapping[str, Sequence[str]] | None = None,
                     everyday_words: Sequence[str] = ()) -> QueryVocabulary:
    """A :class:`QueryVocabulary` from ``{catalog value: [synonyms]}`` tables (the value counts too).

    Plurals of product phrases are added ("backpacks"), and singulars of plural names ("watches"
    -> "watch"); hyphens count as spaces. ``uses`` maps a product type to its use patterns.
    """
    everyday = frozenset(normalise_text(word) for word in everyday_words) | _STOPWORDS
    colour_table: dict[str, list[str]] = {}
    type_table: dict[str, list[str]] = {}
    for colour, synonyms in colours.items():
        for phrase in (colour, *synonyms):
            _add(colour_table, phrase, colour)
    for product, synonyms in product_types.items():
        for phrase in (product, *synonyms):
            _add(type_table, phrase, product)
            if not phrase.endswith("s"):
                _add(type_table, _plural(phrase), product)
            elif phrase == product and not phrase.endswith("ss") and len(phrase) > 4:
                singular = phrase[:-2] if phrase.endswith(("ches", "shes", "xes")) else phrase[:-1]
                if normalise_text(singular) not in everyday:  # "shorts" are no "short"
                    _add(type_table, singular, product)
    patterns = []
    for product, texts in (uses or {}).items():
        for text in texts:
            groups = tuple(frozenset(word_stem(normalise_text(a)) for a in group.split("|")) for group in text.split())
            patterns.append(UsePattern(text, groups, (product,)))
    return QueryVocabulary({k: tuple(v) for k, v in colour_table.items()},
                           {k: tuple(v) for k, v in type_table.items()}, tuple(patterns), everyday - _STOPWORDS)


@lru_cache(maxsize=1)
def _resource() -> dict:
    return json.loads((_RESOURCES / "queries_vocabulary.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def load_vocabulary() -> QueryVocabulary:
    """The offline shop's vocabulary: every catalog colour and product type, synonyms and uses."""
    table = _resource()
    return build_vocabulary(table["colours"], table["product_types"], table.get("uses"), table.get("everyday_words", ()))


def vocabulary_for(catalog) -> QueryVocabulary:
    """The vocabulary of any catalog: its own ``colour`` and ``product_type`` values, with the
    packaged synonyms and uses of the values it shares with the offline shop (compared in lower
    case, a plural name also by its singular: "Backpacks" shares "backpack"'s).

    Args:
        catalog: a DataFrame with ``colour`` and ``product_type`` columns.
    """
    table = _resource()

    def shared(packaged: dict, value: str) -> list[str]:
        known = {normalise_text(key): entries for key, entries in packaged.items()}
        name = normalise_text(value)
        for form in (name, name[:-2] if name.endswith(("ches", "shes", "xes")) else name, name[:-1]):
            if form in known:
                return list(known[form])
        return []

    colours = {value: shared(table["colours"], value) for value in catalog["colour"].astype(str).unique()}
    types = list(catalog["product_type"].astype(str).unique())  # in catalog order (ties between uses keep it)
    return build_vocabulary(colours, {value: shared(table["product_types"], value) for value in types},
                            {value: shared(table.get("uses", {}), value) for value in types},
                            table.get("everyday_words", ()))


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


def correct_word(word: str, vocabulary: QueryVocabulary) -> str | None:
    """The vocabulary word ``word`` is a misspelling of, or None.

    A word of ``MINIMUM_FUZZY_LENGTH`` letters or more that is not a known word is corrected to the
    nearest vocabulary word of as many letters or more with the same first letter, within one edit
    for words of up to six letters and two edits for longer ones (ties: the first alphabetically).
    """
    if len(word) < MINIMUM_FUZZY_LENGTH or word in vocabulary.known_words or not word.isalpha():
        return None
    allowed = 1 if len(word) <= 6 else 2
    best, best_distance = None, allowed + 1
    for candidate in sorted(vocabulary.words):  # sorted: ties go to the first alphabetically
        if candidate[0] != word[0] or len(candidate) < MINIMUM_FUZZY_LENGTH or abs(len(candidate) - len(word)) > allowed:
            continue
        distance = edit_distance(word, candidate)
        if distance < best_distance:
            best, best_distance = candidate, distance
    return best


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


def parse_query(query: str, vocabulary: QueryVocabulary | None = None) -> ParsedQuery:
    """Colours, product types, uses and price limits named in ``query`` (see the module's steps).

    Args:
        query: free text, e.g. ``"purple backpack under 30"``.
        vocabulary: phrases to recognise; None loads the offline shop's.

    Returns:
        A :class:`ParsedQuery` (``colours=("purple",), product_types=("backpack",), max_price=30.0``).
    """
    vocabulary = vocabulary or load_vocabulary()
    text, max_price, min_price = _prices(normalise_text(query))
    words = [piece for word in _WORD.findall(text) for piece in word.replace("-", " ").split()]
    uses = sorted(_matched_uses(words, vocabulary), key=lambda match: -len(match[0].groups))
    taken = set().union(*(positions for pattern, positions in uses if len(pattern.groups) >= 2))  # words of a use
    taken |= {i for i in range(1, len(words)) if words[i - 1] == "to"}  # "to watch": a verb
    taken -= {i for i, word in enumerate(words) if word in vocabulary.colours.get(word, ())}  # "green" anywhere
    purpose = next((i for i, word in enumerate(words) if word in _PURPOSE_WORDS), len(words))
    corrections: dict[str, str] = {}
    for i, word in enumerate(words):
        correction = None if (i in taken or i > purpose) else correct_word(word, vocabulary)
        if correction:
            corrections[word], words[i] = correction, correction
    colours: list[str] = []
    named: list[tuple[int, str]] = []  # (position, product type)
    used: set[int] = set()
    position = 0
    while position < len(words):
        found = None
        for length in range(min(vocabulary.longest_phrase, len(words) - position), 0, -1):
            if taken & set(range(position, position + length)):
                continue
            found = _lookup(" ".join(words[position:position + length]), vocabulary)
            if found is not None:
                break
        if found is None:
            position += 1
            continue
        colours.extend(c for c in found[0] if c not in colours)
        named.extend((position, t) for t in found[1])
        used |= set(range(position, position + length))
        position += length
    if any(at < purpose for at, _ in named):  # "backpack for my laptop": the laptop is the purpose
        named = [(at, t) for at, t in named if at < purpose]
    types = list(dict.fromkeys(t for _, t in named))
    best = [pattern for pattern, _ in uses if len(pattern.groups) == len(uses[0][0].groups)] if uses else []
    use_types = tuple(dict.fromkeys(t for pattern in best for t in pattern.product_types))
    remainder = " ".join(word for i, word in enumerate(words) if i not in used and word not in _STOPWORDS)
    return ParsedQuery(tuple(colours), tuple(types) or use_types, max_price, min_price, corrections, remainder,
                       tuple(pattern.text for pattern, _ in uses), use_types)


def load_query_set(name: str = "freeform") -> list[dict]:
    """A labelled query set kept in the package (``resources/queries_<name>.json``).

    Returns:
        Dicts with ``query``, ``kind``, ``product_types``, ``colours`` (empty = any colour) and
        optional ``max_price`` / ``min_price``.
    """
    path = _RESOURCES / f"queries_{name}.json"
    if not path.is_file():
        raise ValueError(f"no query set {name!r}; the package has "
                         f"{sorted(p.stem.removeprefix('queries_') for p in _RESOURCES.glob('queries_*.json') if p.stem != 'queries_vocabulary')}")
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
