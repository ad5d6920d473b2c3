"""Spelling correction of query words against a :class:`~ecmm.query_vocabulary.QueryVocabulary`."""

from __future__ import annotations

from ecmm.query_vocabulary import QueryVocabulary

__all__ = ["MINIMUM_FUZZY_LENGTH", "edit_distance", "correct_word"]

MINIMUM_FUZZY_LENGTH = 4  # shorter words are never corrected ("cap" must not become "car")


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
