"""Reading untrusted input into the contact-centre schema, with every reason it fails (pure)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import ValidationError

from caseway_shared.contact_centre import ContactCentreReport
from caseway_shared.errors import validation_reasons

if TYPE_CHECKING:
    from collections.abc import Iterable

MAX_EVENT_BYTES = 64 * 1024
MAX_ID_LENGTH = 128
_SUSPECT_ESCAPE = re.compile(rb"\\u(0000|[dD][89abcdefABCDEF])")

# Why a message was rejected, in few enough words to count by (caseway_records_rejected_total's `reason`):
# its body is not a JSON object that can be read, its fields do not make a report, or its contact details
# were sealed with a key this intake does not hold.
RejectionKind = Literal["unreadable", "invalid", "unsealable"]


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why a message cannot be accepted: every reason at once, and its ids where they could be read."""

    reasons: tuple[str, ...]
    source_system: str | None = None
    source_id: str | None = None
    kind: RejectionKind = "invalid"


def describe_errors(error: ValidationError) -> tuple[str, ...]:
    """pydantic's errors as short sentences naming the field; never echoing the offending value."""
    return validation_reasons(error)


def text_problems(where: str, values: Iterable[str]) -> list[str]:
    """Text PostgreSQL cannot store: NUL characters, and lone surrogates (JSON's \\ud800) that are not
    UTF-8. Caught here so that such input is rejected with a reason instead of failing a transaction.
    """
    reasons = []
    for value in values:
        if "\x00" in value:
            reasons.append(f"{where}: contains a NUL character")
            break
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            reasons.append(f"{where}: not valid Unicode text")
            break
    return reasons


def document_text_problems(document: object, where: str = "") -> list[str]:
    """`text_problems` for every key and string of a parsed JSON document, by path."""
    if isinstance(document, str):
        return text_problems(where or "body", (document,))
    if isinstance(document, dict):
        reasons = []
        for key, value in document.items():
            path = f"{where}.{key}" if where else str(key)
            reasons.extend(text_problems(path, (str(key),)))
            reasons.extend(document_text_problems(value, path))
        return reasons
    if isinstance(document, list):
        return [
            reason
            for index, item in enumerate(document)
            for reason in document_text_problems(item, f"{where}.{index}" if where else str(index))
        ]
    return []


def parse_contact_centre_event(value: bytes) -> ContactCentreReport | Invalid:
    """The report in `value`, or why it is not one."""
    if len(value) > MAX_EVENT_BYTES:
        return Invalid((f"body: larger than {MAX_EVENT_BYTES} bytes",), kind="unreadable")
    try:
        document = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        return Invalid((f"body: not valid UTF-8 JSON ({type(error).__name__})",), kind="unreadable")
    if not isinstance(document, dict):
        return Invalid(("body: must be a JSON object",), kind="unreadable")
    source_system = document.get("source_system")
    source_id = document.get("source_id")
    ids = {
        "source_system": source_system if isinstance(source_system, str) else None,
        "source_id": source_id if isinstance(source_id, str) else None,
    }
    # NUL and lone surrogates can only arrive escaped (\u0000, \ud800): most events need no walk at all.
    if _SUSPECT_ESCAPE.search(value) and (problems := document_text_problems(document)):
        return _invalid_fields(tuple(problems), ids)
    try:
        return ContactCentreReport.model_validate(document)
    except ValidationError as error:
        return _invalid_fields(describe_errors(error), ids)


def _invalid_fields(reasons: tuple[str, ...], ids: dict[str, str | None]) -> Invalid:
    # The ids travel in headers and keys of the rejection: only short, well-formed text is kept.
    printable = {
        name: value if value and len(value) <= MAX_ID_LENGTH and not text_problems(name, (value,)) else None
        for name, value in ids.items()
    }
    return Invalid(reasons, source_system=printable["source_system"], source_id=printable["source_id"])
