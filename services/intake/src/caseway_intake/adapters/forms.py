"""Reading a POSTed Open311 body: form-encoded, multipart (fields and photo parts) or JSON, within a size,
into the fields (name -> values) the pure parsers take and the photos the request carries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from caseway_intake.domain import open311
from caseway_intake.domain.media import MAX_PHOTOS, Photo, read_photo

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from starlette.requests import Request

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


class BodyError(Exception):
    """The body cannot be read: every reason, for a 400."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass
class Body:
    fields: dict[str, list[str]] = field(default_factory=dict)
    photos: list[Photo] = field(default_factory=list)


async def read_body(request: Request, *, max_bytes: int, max_upload_bytes: int, max_photo_bytes: int) -> Body:
    """The POSTed fields and photos. A multipart body may be `max_upload_bytes` long (photos); any other
    `max_bytes`. Photos are kept only as the bytes sent: a URL is never fetched.
    """
    content_type = request.headers.get("content-type", FORM).split(";")[0].strip().lower()
    limit = max_upload_bytes if content_type == MULTIPART else max_bytes
    body = await _bytes(request, limit)
    if content_type == "application/json":
        return Body(fields=_json_fields(body))
    if content_type in {FORM, ""}:
        return Body(fields=_form_fields(body))
    if content_type == MULTIPART:
        return await _multipart(request, body, max_photo_bytes)
    raise BodyError(
        ["Content-Type: send application/x-www-form-urlencoded, multipart/form-data or application/json"]
    )


async def _bytes(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length and (not length.isdigit() or int(length) > limit):
        raise BodyError([f"body: larger than {limit} bytes"])
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyError([f"body: larger than {limit} bytes"])
    return bytes(body)


def _form_fields(body: bytes) -> dict[str, list[str]]:
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            errors="strict",
            max_num_fields=open311.MAX_FIELDS * open311.MAX_VALUES_PER_FIELD,
        )
    except (UnicodeDecodeError, ValueError):
        raise BodyError(["body: not a UTF-8 form (application/x-www-form-urlencoded)"]) from None
    fields: dict[str, list[str]] = {}
    for name, value in pairs:
        fields.setdefault(name, []).append(value)
    return fields


async def _multipart(request: Request, body: bytes, max_photo_bytes: int) -> Body:
    async def chunks() -> AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(
        request.headers,
        chunks(),
        max_files=MAX_PHOTOS,
        max_fields=open311.MAX_FIELDS * open311.MAX_VALUES_PER_FIELD,
        max_part_size=max(len(body), 1),
    )
    try:
        form = await parser.parse()
    except MultiPartException as error:
        # Too many files or fields, a missing boundary, or bytes that are not a multipart body.
        raise BodyError([f"body: not a readable multipart form ({error.message})"]) from None
    result = Body()
    reasons: list[str] = []
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                photo = read_photo(name, value.filename, await value.read(), max_bytes=max_photo_bytes)
                if isinstance(photo, str):
                    reasons.append(photo)
                else:
                    result.photos.append(photo)
            else:
                result.fields.setdefault(name, []).append(value)
    finally:
        await form.close()
    if reasons:
        raise BodyError(reasons)
    return result


def _json_fields(body: bytes) -> dict[str, list[str]]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BodyError(["body: not valid UTF-8 JSON"]) from None
    if not isinstance(document, dict):
        raise BodyError(["body: must be a JSON object"])
    fields: dict[str, list[str]] = {}
    reasons: list[str] = []
    for name, value in document.items():
        if name == "attribute" and isinstance(value, dict):
            for code, answer in value.items():
                _add_json_value(fields, f"attribute[{code}]", answer, reasons)
        else:
            _add_json_value(fields, name, value, reasons)
    if reasons:
        raise BodyError(reasons)
    return fields


def _add_json_value(fields: dict[str, list[str]], name: str, value: object, reasons: list[str]) -> None:
    values = value if isinstance(value, list) else [value]
    for item in values:
        if item is None:
            continue
        if isinstance(item, str):
            fields.setdefault(name, []).append(item)
        elif isinstance(item, int | float) and not isinstance(item, bool):
            fields.setdefault(name, []).append(repr(item))
        else:
            reasons.append(f"{name}: must be text or a number")
            return
