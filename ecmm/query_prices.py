"""Price limits in a shop query: "under 30", "less than £30", "no more than 200 quid", "20 to 40"."""

from __future__ import annotations

import re

__all__ = ["read_prices"]

_CURRENCY_BEFORE = r"(?:€|\$|£|(?:eur|euros?|usd|gbp)\s*)?"
_CURRENCY_AFTER = r"(?:\s*(?:€|\$|£|eur\b|euros?\b|dollars?\b|bucks\b|pounds?\b|quid\b|gbp\b|usd\b))?"
_NUMBER = rf"{_CURRENCY_BEFORE}\s*(\d+(?:[.,]\d+)?)(?![\d.,]*(?!eur|usd|gbp|quid|bucks|pounds?|dollars?)[a-z])(?:{_CURRENCY_AFTER})"
_BETWEEN = re.compile(rf"\bbetween\s+{_NUMBER}\s*(?:and|to|-)\s*{_NUMBER}")
_RANGE = re.compile(rf"(?:\bfrom\s+)?(?<![\w.,]){_NUMBER}\s*(?:to|-)\s*{_NUMBER}")
_MAXIMUM = re.compile(rf"(?:\bunder|\bbelow|\bless than|\bcheaper than|\bat most|\bup to|\bmax(?:imum)?|"
                      rf"\bno more than|\bnot more than|\bnot over|\bwithin|\bbudget(?: of)?|\bbelow|<=?)\s*{_NUMBER}")
_MAXIMUM_AFTER = re.compile(rf"{_NUMBER}\s+(?:or less|or under|or cheaper|max|maximum|tops)\b")
_MINIMUM = re.compile(rf"(?:\bover|\babove|\bmore than|\bat least|\bminimum|\bmin|\bfrom|>=?)\s*{_NUMBER}")
_MINIMUM_AFTER = re.compile(rf"{_NUMBER}\s+(?:or more|or over|plus|and up|and above)\b")


def _number(text: str) -> float:
    return float(text.replace(",", "."))


def _cut(text: str, match: re.Match) -> str:
    return text[:match.start()] + " " + text[match.end():]


def read_prices(text: str) -> tuple[str, float | None, float | None]:
    """Remove price phrases from normalised ``text``; return ``(rest, max_price, min_price)``.

    A range ("between 10 and 20", "from 10 to 20", "10 to 20", "£10-£20") sets both limits; else an
    upper limit ("under", "less than", "no more than", "30 or less") and a lower one ("over", "at
    least", "100 or more") are read. A number needs a price word or currency sign beside it, or
    to be one end of a range: "size 10 boots" names no price.
    """
    match = _BETWEEN.search(text) or _RANGE.search(text)
    if match:
        low, high = sorted(_number(group) for group in match.groups())
        return _cut(text, match), high, low
    max_price = min_price = None
    for pattern in (_MAXIMUM, _MAXIMUM_AFTER):
        match = pattern.search(text)
        if match:
            max_price, text = _number(match.group(1)), _cut(text, match)
            break
    for pattern in (_MINIMUM, _MINIMUM_AFTER):
        match = pattern.search(text)
        if match:
            min_price, text = _number(match.group(1)), _cut(text, match)
            break
    return text, max_price, min_price
