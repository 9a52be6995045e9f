"""Reading untrusted input into the contact-centre schema, with every reason it fails (pure)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import ValidationError

from caseway_shared.contact_centre import ContactCentreReport

MAX_EVENT_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why a message cannot be accepted: every reason at once, and its ids where they could be read."""

    reasons: tuple[str, ...]
    source_system: str | None = None
    source_id: str | None = None


def describe_errors(error: ValidationError) -> tuple[str, ...]:
    """pydantic's errors as short sentences naming the field; never echoing the offending value."""
    reasons = []
    for item in error.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "body"
        reasons.append(f"{where}: {item['msg']}")
    return tuple(reasons)


def parse_contact_centre_event(value: bytes) -> ContactCentreReport | Invalid:
    """The report in `value`, or why it is not one."""
    if len(value) > MAX_EVENT_BYTES:
        return Invalid((f"body: larger than {MAX_EVENT_BYTES} bytes",))
    try:
        document = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return Invalid((f"body: not valid UTF-8 JSON ({type(error).__name__})",))
    if not isinstance(document, dict):
        return Invalid(("body: must be a JSON object",))
    try:
        return ContactCentreReport.model_validate(document)
    except ValidationError as error:
        source_system = document.get("source_system")
        source_id = document.get("source_id")
        return Invalid(
            describe_errors(error),
            source_system=source_system if isinstance(source_system, str) else None,
            source_id=source_id if isinstance(source_id, str) else None,
        )
