"""Printing Open311 answers as JSON or XML, as the spec's `.json` / `.xml` extensions ask (pure)."""

from __future__ import annotations

import json
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
}
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
        element.text = str(value)
    return element
