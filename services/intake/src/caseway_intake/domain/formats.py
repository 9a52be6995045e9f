"""Printing Open311 answers as JSON or XML, as the spec's `.json` / `.xml` extensions ask (pure)."""

from __future__ import annotations

import json
import re
from typing import Literal
from xml.etree import ElementTree as ET

Format = Literal["json", "xml"]

# The spec names the elements of a list by the singular of the list's name.
_ITEM = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "attributes": "attribute",
    "values": "value",
    "service_request_updates": "request_update",
}
# What XML 1.0 can carry (its production `Char`): everything else, e.g. a vertical tab or an escape character
# stored from another channel, is shown as U+FFFD so that every answer stays well-formed.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """`text` with every character XML 1.0 cannot represent replaced by U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


MEDIA_TYPES: dict[str, str] = {"json": "application/json", "xml": "text/xml; charset=utf-8"}


def render(fmt: Format, root: str, data: object) -> bytes:
    """`data` as the spec prints it: JSON as it is, XML under `root` (lists as repeated singular items)."""
    if fmt == "json":
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    element = _element(root, data)
    return b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(element, encoding="unicode").encode()


def _element(name: str, value: object) -> ET.Element:
    element = ET.Element(name)
    if isinstance(value, list):
        item = _ITEM.get(name, "item")
        element.extend(_element(item, entry) for entry in value)
    elif isinstance(value, dict):
        element.extend(_element(key, entry) for key, entry in value.items())
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = xml_safe(str(value))
    return element


def clean_text(text: str) -> str:
    """Text as received, made fit for every answer: a vertical tab or form feed (how word processors break
    lines) becomes a line break; any other character XML 1.0 cannot represent becomes U+FFFD.
    """
    return xml_safe(text.replace("\x0b", "\n").replace("\x0c", "\n"))
