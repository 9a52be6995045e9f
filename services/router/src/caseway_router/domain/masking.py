"""Masking residents' contact details in free text shown to staff or published (pure).

Residents write their phone numbers and email addresses into descriptions ("call me on 07700 900123",
"j.smith at example dot com"). Staff pages, the JSON API and public notes carry the text with anything
that looks like either replaced by a marker, so a case can be read and forwarded without them. The rules
err on the side of masking: a long run of digits (nine or more, with spaces, dots, dashes or brackets
between) is masked even when it is not a phone number, because a missed number is the worse mistake.
Dates, times, house numbers, postcodes and case references are left alone (fewer than nine digits).
"""

from __future__ import annotations

import re

EMAIL_MASK = "[email hidden]"
PHONE_MASK = "[phone hidden]"

# name@host.tld, with the @ and the dots also written out ("name at host dot com", "name(at)host.com").
_AT = r"(?:@|\s*[\(\[\{]\s*at\s*[\)\]\}]\s*|\s+at\s+)"
_DOT = r"(?:\.|\s*[\(\[\{]\s*dot\s*[\)\]\}]\s*|\s+dot\s+)"
_EMAIL = re.compile(
    rf"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~-]+(?:{_DOT}[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~-]+)*"
    rf"{_AT}[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:{_DOT}[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+",
    re.IGNORECASE,
)
# A plain email is always masked; the written-out forms only when they end in a common suffix, so that
# "the bins at the back dot the pavement" is left as written.
_SPELT_SUFFIX = re.compile(r"(?:dot\s*[\)\]\}]?\s*)(com|org|net|uk|gov|ac|co|io|info|me)\b", re.IGNORECASE)

# Nine or more digits, optionally starting with +, with at most two separators between digits; not part of
# a reference (LV-2026-000123), a date or a time.
_PHONE = re.compile(r"(?<![\w+\-/])\+?\(?\d(?:[\s().\-]{0,2}\d){8,}(?![\w:/])")


def mask_contact_details(text: str) -> str:
    """`text` with every email address and phone number (or what looks like one) replaced by a marker."""

    def email(match: re.Match[str]) -> str:
        found = match.group(0)
        if "@" in found or _SPELT_SUFFIX.search(found):
            return EMAIL_MASK
        return found

    return _PHONE.sub(PHONE_MASK, _EMAIL.sub(email, text))


def has_contact_details(text: str) -> bool:
    return mask_contact_details(text) != text
