"""The words the query parser knows: :class:`QueryVocabulary` and how it is built.

A vocabulary maps phrases to the catalog's colours and product types ("navy" -> blue, "rucksack"
-> backpack) and holds use patterns ("neck|throat warm|cold" -> scarf) and everyday words a
spelling correction must leave alone. :func:`load_vocabulary` reads the offline shop's from
``resources/queries_vocabulary.json``; :func:`vocabulary_for` fits it to any catalog.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Mapping, Sequence

__all__ = ["QueryVocabulary", "UsePattern", "STOPWORDS", "RESOURCES", "build_vocabulary", "load_vocabulary",
           "vocabulary_for", "normalise_text", "word_stem"]

RESOURCES = Path(__file__).parent / "data" / "resources"  # the packaged vocabulary and query sets
STOPWORDS = frozenset(
    "a an the and or for to of in on with my me i im i'm want need looking look some something any "
    "please show do you sell have has is it its that this new one ones thing things get buy find can "
    "if possible would like cheap good nice great best under below over above than less more price "
    "euro euros eur dollars dollar pounds pound quid bucks at most up from between colour color "
    "coloured colored way our your his her their we us".split())


def normalise_text(text: str) -> str:
    """Lower case with typographic apostrophes and dashes made plain ("Man’s" -> "man's")."""
    return text.lower().replace("’", "'").replace("‘", "'").replace("–", "-").replace("—", "-")


def word_stem(word: str) -> str:
    """A crude English stem so that forms of one word meet: "books" / "book", "shaving" / "shave".

    Drops "'s", a plural "s" ("ies" -> "y"; "ches", "shes", "xes", "sses" lose "es"), "ing" / "ed"
    (a doubled last consonant is undoubled: "cutting" -> "cut") and a final "e"; a stem keeps at
    least three letters.
    """
    word = word.removesuffix("'s").removesuffix("'")
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
    def use_words(self) -> frozenset[str]:
        """Every alternative word of every use pattern, as written."""
        return frozenset(alternative for pattern in self.uses for alternative in pattern.text.replace("|", " ").split())

    @cached_property
    def use_verbs(self) -> frozenset[str]:
        """Stems of the first word group of every use pattern (mostly verbs: "carry", "play")."""
        return frozenset(stem for pattern in self.uses for stem in pattern.groups[0])

    @cached_property
    def known_words(self) -> frozenset[str]:
        """Words that are never corrected: vocabulary, use and everyday words, stop words."""
        return self.words | self.use_words | self.everyday_words | STOPWORDS


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
    everyday = frozenset(normalise_text(word) for word in everyday_words) | STOPWORDS
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
                           {k: tuple(v) for k, v in type_table.items()}, tuple(patterns), everyday - STOPWORDS)


@lru_cache(maxsize=1)
def _resource() -> dict:
    return json.loads((RESOURCES / "queries_vocabulary.json").read_text(encoding="utf-8"))


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
