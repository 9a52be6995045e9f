"""Mapping what a resident or call handler said to one of the council's category codes."""

from __future__ import annotations

import re

from caseway_shared.council import TRIAGE, Council

_WORDS = re.compile(r"[a-z0-9]+")


def map_category(council: Council, *, code: str | None, text: str | None) -> str:
    """The category for a report: a known code wins; otherwise the category whose keywords best match the
    free text (longest matching keyword first, then configuration order); otherwise triage, where a person
    routes it. Never fails: an unknown category is a question for staff, not a rejection.
    """
    if code:
        normalised = code.strip().lower().replace("_", "-").replace(" ", "-")
        if normalised in council.categories:
            return normalised
    haystack = " ".join(_WORDS.findall(" ".join(filter(None, (code, text))).lower()))
    best: tuple[int, str] | None = None
    for category in council.categories.values():
        for keyword in category.keywords:
            needle = " ".join(_WORDS.findall(keyword.lower()))
            if (
                needle
                and re.search(rf"\b{re.escape(needle)}", haystack)
                and (best is None or len(needle) > best[0])
            ):
                best = (len(needle), category.code)
    return best[1] if best else TRIAGE
