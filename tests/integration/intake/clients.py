"""How real Open311 clients build their requests and read our answers, transcribed from their published
code so that the compatibility tests replay them exactly (each function names its source).

- FixMyStreet: mysociety/fixmystreet at 84d7c80c5d9abd0d330325742c6b9eedc30b19fd, perllib/Open311.pm
  (`_populate_service_request_params`, `_populate_service_request_update_params`, `_request`,
  `_get_xml_object`, `map_state`, `split_name`), perllib/Utils.pm (`truncate_coordinate`),
  perllib/Open311/UpdatesBase.pm (`check_date`), db/fixture.sql and perllib/FixMyStreet/DB/ResultSet/State.pm
  (the states a report can take).
- georeport (PyPI `georeport`): 7673502/georeport at 129cd0ec4e5d6040f1b1e36e030df65d49cbae6f,
  georeport/georeport.py (reads XML with xmltodict, JSON with `response.json()`).
- GeoReporter for Android: City-of-Bloomington/open311-android at 607a61eab15ca069b0862909c2fa646c3fd41433,
  open311-android/src/gov/in/bloomington/georeporter/models/Open311.java (`prepareUrlEncodedEntity`,
  `prepareMultipartEntity`) and util/Media.java (`UPLOAD_FILENAME`).
"""

# ruff: noqa: S314 - the XML parsed is our own answer

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree as ET

# --- FixMyStreet ---------------------------------------------------------------------------------------

# Open311.pm, _get_xml_object: XML::Simple->new(ForceArray => [values %$group_tags], KeyAttr => {},
# GroupTags => $group_tags, SuppressEmpty => undef).
FMS_GROUP_TAGS = {
    "services": "service",
    "attributes": "attribute",
    "values": "value",
    "service_requests": "request",
    "errors": "error",
    "service_request_updates": "request_update",
    "groups": "group",
}
FMS_FORCE_ARRAY = frozenset(FMS_GROUP_TAGS.values())
# db/fixture.sql and ResultSet/State.pm ('confirmed', 'closed'), Problem.pm fixed_states ('fixed - user',
# 'fixed - council'): every state an update can move a report to.
FMS_STATES = frozenset(
    {
        "confirmed",
        "closed",
        "investigating",
        "in progress",
        "planned",
        "action scheduled",
        "unable to fix",
        "not responsible",
        "duplicate",
        "internal referral",
        "cancelled",
        "fixed",
        "fixed - user",
        "fixed - council",
    }
)


def fms_parse(content: bytes) -> Any:
    """Our XML answer as FixMyStreet's `_get_xml_object` sees it (XML::Simple with its options): the root
    dropped, the grouped lists forced to lists (a list of one is still a list), empty elements undef.
    """
    return _simple(ET.fromstring(content))


def _simple(element: ET.Element) -> Any:
    children = list(element)
    if not children:
        text = element.text
        return text if text not in (None, "") else None  # SuppressEmpty => undef
    result: dict[str, Any] = {}
    for child in children:
        value = _simple(child)
        # GroupTags: <attributes><attribute/>...</attributes> becomes attributes => [ ... ].
        grouped = FMS_GROUP_TAGS.get(child.tag)
        if grouped and isinstance(value, dict) and set(value) == {grouped}:
            value = value[grouped]
        if child.tag in FMS_FORCE_ARRAY:
            result.setdefault(child.tag, []).append(value)
        elif child.tag in result:
            existing = result[child.tag]
            result[child.tag] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            result[child.tag] = value
    return result


def fms_truncate_coordinate(value: float) -> str:
    """Utils.pm, truncate_coordinate: sprintf('%0.6f'), trailing zeros (and a bare point) dropped."""
    out = f"{value:0.6f}"
    return re.sub(r"\.?0+\Z", "", out) if "." in out else out


def fms_split_name(name: str) -> tuple[str, str]:
    """Open311.pm, split_name: my ( $first, $last ) = ( $name =~ /(\\S+)(?:\\.?\\s+(.+))?/ )."""
    match = re.search(r"(\S+)(?:\.?\s+(.+))?", name)
    return (match.group(1), match.group(2) or "") if match else ("", "")


def fms_service_request_params(
    *,
    service_code: str,
    title: str,
    detail: str,
    url: str,
    name: str,
    email: str,
    latitude: float | None,
    longitude: float | None,
    postcode: str = "",
    uprn: str | None = None,
    extra_fields: list[tuple[str, str | None]] = (),  # type: ignore[assignment]
    image_urls: list[str] = (),  # type: ignore[assignment]
    multi_photos: bool = False,
) -> dict[str, str | list[str]]:
    """Open311.pm, _populate_service_request_params, for a UK cobrand (extended description with
    `easting` set), as t/open311.t 'posting service request' expects it.
    """
    description = f"title: {title}\n\ndetail: {detail}\n\nurl: {url}\n\nSubmitted via FixMyStreet\n"
    first, last = fms_split_name(name)
    params: dict[str, str | list[str]] = {
        "description": description,
        "service_code": service_code,
        "first_name": first,
        "last_name": last,
        "email": email,
    }
    if latitude is not None and longitude is not None:
        params["lat"] = fms_truncate_coordinate(latitude)
        params["long"] = fms_truncate_coordinate(longitude)
    else:
        params["address_string"] = postcode
    if image_urls:
        params["media_url"] = list(image_urls) if multi_photos else image_urls[0]
    for attr_name, value in extra_fields:
        if attr_name in {"first_name", "last_name"}:
            if value:
                params[attr_name] = value
            if attr_name == "first_name":
                continue
        # An undef value is sent as '' (t/open311.t, 'undef extra values handled').
        params[f"attribute[{attr_name.removeprefix('fms_extra_')}]"] = value if value is not None else ""
    if uprn:
        params["attribute[uprn]"] = uprn
    return params


def fms_update_params(
    *,
    service_request_id: str,
    comment_id: int,
    text: str,
    status: str,
    name: str,
    email: str,
    confirmed: datetime,
) -> dict[str, str]:
    """Open311.pm, _populate_service_request_update_params (t/open311.t 'basic request update post
    parameters'): the comment's W3CDTF time, its id as update_id, last_name '-' when there is none, and
    the Bromley-style extras a cobrand may add (title, email_alerts_requested).
    """
    first, last = fms_split_name(name)
    return {
        "updated_datetime": fms_w3cdtf(confirmed),
        "service_request_id": service_request_id,
        "status": status,
        "description": text,
        "last_name": last or "-",
        "first_name": first,
        "email": email,
        "update_id": str(comment_id),
        "title": "Mr",
        "email_alerts_requested": "FALSE",
    }


def fms_w3cdtf(moment: datetime) -> str:
    """DateTime::Format::W3CDTF->format_datetime of a UTC DateTime without nanoseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_W3CDTF = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d)(?:\.(\d+))?)?(Z|[+-]\d\d:\d\d)$")


def fms_check_date(updated_datetime: str | None, start: str, end: str) -> bool:
    """UpdatesBase.pm, check_date: the update's time must parse as W3CDTF and, formatted in UTC, lie
    within [start, end] compared as strings.
    """
    match = _W3CDTF.match(updated_datetime or "")
    if not match:
        return False
    moment = datetime.fromisoformat(updated_datetime or "")
    updated = fms_w3cdtf(moment)
    return not (updated < start or updated > end)


def fms_map_state(status: str, *, extended: bool) -> str:
    """Open311.pm, map_state."""
    incoming = status.lower().replace("_", " ")
    state_map = {
        "fixed": "fixed - council",
        "not councils responsibility": "not responsible",
        "no further action": "unable to fix",
        "open": "confirmed",
        "closed": "closed" if extended else "fixed - council",
    }
    return state_map.get(incoming, incoming)


def fms_errors(content: bytes) -> list[str]:
    """Open311.pm, _process_error: "code: description" per error."""
    obj = fms_parse(content)
    return [f"{e.get('code') or '???'}: {e.get('description') or 'unknown error'}" for e in obj["error"]]


# --- georeport (xmltodict) -----------------------------------------------------------------------------


def xmltodict_parse(content: bytes) -> dict[str, Any]:
    """What `xmltodict.parse` gives for our answers (no XML attributes): the root kept, a repeated element
    a list, a single one a dict (not forced to a list), text-only elements text, empty ones None.
    """
    root = ET.fromstring(content)
    return {root.tag: _xmltodict(root)}


def _xmltodict(element: ET.Element) -> Any:
    children = list(element)
    if not children:
        return element.text or None
    result: dict[str, Any] = {}
    for child in children:
        value = _xmltodict(child)
        if child.tag in result:
            existing = result[child.tag]
            result[child.tag] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            result[child.tag] = value
    return result


# --- GeoReporter for Android ---------------------------------------------------------------------------

GEOREPORTER_MEDIA_PART = "media"  # Open311.MEDIA
GEOREPORTER_MEDIA_FILENAME = "media.png"  # Media.UPLOAD_FILENAME; compressed as PNG


def georeporter_pairs(
    *, service_code: str, jurisdiction: str, api_key: str, post_data: dict[str, Any], multipart: bool
) -> list[tuple[str, str]]:
    """Open311.java, prepareUrlEncodedEntity / prepareMultipartEntity: service_code first; jurisdiction_id
    only when non-empty for a form, but whenever not null for multipart; then post_data, a multi-value
    list as repeated `key[]`, doubles as Double.toString.
    """
    pairs = [("service_code", service_code)]
    if jurisdiction or multipart:
        pairs.append(("jurisdiction_id", jurisdiction))
    if api_key:
        pairs.append(("api_key", api_key))
    for key, value in post_data.items():
        if key == GEOREPORTER_MEDIA_PART and multipart:
            continue  # sent as the binary part instead
        if isinstance(value, list):
            pairs.extend((f"{key}[]", str(item)) for item in value)
        elif isinstance(value, float):
            pairs.append((key, repr(value)))
        else:
            pairs.append((key, str(value)))
    return pairs
