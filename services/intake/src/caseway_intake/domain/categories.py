"""Mapping what a resident or call handler said to one of the council's category codes."""

from __future__ import annotations

import re

from caseway_shared.council import TRIAGE, Council

_WORDS = re.compile(r"[a-z0-9]+")


class CategoryMatcher:
    """The council's keywords compiled once into one pattern, so that mapping a report costs one scan.

    A known code wins; otherwise the category whose keyword found in the free text is longest (a keyword
    matches at the start of a word), ties going to the category listed first; otherwise triage, where a
    person routes it. Never fails: an unknown category is a question for staff, not a rejection.
    """

    def __init__(self, council: Council) -> None:
        self._codes = frozenset(council.categories)
        self._owner: dict[str, str] = {}
        for category in council.categories.values():
            for keyword in category.keywords:
                needle = " ".join(_WORDS.findall(keyword.lower()))
                if needle:
                    self._owner.setdefault(needle, category.code)
        # Longest first, so that at each word start the longest keyword there is the one found.
        alternatives = "|".join(re.escape(n) for n in sorted(self._owner, key=len, reverse=True))
        self._pattern = re.compile(rf"\b(?=({alternatives}))") if alternatives else None

    def match(self, *, code: str | None, text: str | None) -> str:
        if code:
            normalised = code.strip().lower().replace("_", "-").replace(" ", "-")
            if normalised in self._codes:
                return normalised
        if self._pattern is None:
            return TRIAGE
        haystack = " ".join(_WORDS.findall(" ".join(filter(None, (code, text))).lower()))
        best: str | None = None
        for found in self._pattern.finditer(haystack):
            needle = found.group(1)
            if best is None or len(needle) > len(best):
                best = needle
        return self._owner[best] if best else TRIAGE


def map_category(council: Council, *, code: str | None, text: str | None) -> str:
    """`CategoryMatcher(council).match(...)` for one report; services keep a matcher instead."""
    return CategoryMatcher(council).match(code=code, text=text)
