"""Open311 GeoReport v2, the pure part: reading a POSTed service request into an accepted report with every
reason it fails, and shaping services, service definitions, requests and errors as the spec prints them.

No I/O here: the HTTP layer (`api`) hands in the request's fields as text and prints what comes back.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from caseway_intake.domain.formats import clean_text
from caseway_intake.domain.normalise import AcceptedReport
from caseway_intake.domain.privacy import coarse
from caseway_intake.domain.updates import POSTED_STATUSES
from caseway_intake.domain.validation import Invalid, describe_errors, text_problems
from caseway_shared.contact_centre import ReporterContact
from caseway_shared.events import Channel, GeoPoint, Place, ReportReceived, report_id_for

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from uuid import UUID

    from caseway_shared.council import Category, Council, ServiceAttribute

SOURCE_SYSTEM = "open311"
MAX_FIELDS = 100
MAX_VALUES_PER_FIELD = 50
MAX_STRING = 500
MAX_TEXT = 4000
MAX_NUMBER_CHARS = 32
_ATTRIBUTE = re.compile(r"^attribute\[([^\[\]]{1,64})\](\[\])?$")
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_PHONE = r"^\+?[0-9 ()-]{6,31}$"
# Fields of the spec's POST requests that the server reads; anything else a client sends (e.g. extensions
# other servers understand) is ignored rather than refused, so that clients written for them still work.
SINGLE_FIELDS = (
    "api_key",
    "jurisdiction_id",
    "service_code",
    "lat",
    "long",
    "address_string",
    "address_id",
    "email",
    "device_id",
    "account_id",
    "first_name",
    "last_name",
    "phone",
    "description",
)
# media_url may come more than once: FixMyStreet sends one per photo when a body takes several.
MAX_MEDIA_URLS = 10
MAX_URL = 2000
_MEDIA_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$", re.IGNORECASE)
_UPRN = re.compile(r"^[0-9]{1,12}$")
_USRN = re.compile(r"^[0-9]{1,8}$")
# A UK postcode, as FixMyStreet sends address_string when the resident gave one instead of a pin.
_POSTCODE = re.compile(r"^\s*([A-Z]{1,2}[0-9][A-Z0-9]?)\s*([0-9][A-Z]{2})\s*$", re.IGNORECASE)
# Attribute codes that name the place rather than answer a question of the category (FixMyStreet sends
# attribute[uprn] whenever it knows the property, and Bristol's server asks for attribute[usrn]): read into
# the event's place.
PLACE_ATTRIBUTES = frozenset({"uprn", "usrn"})
# The attributes FixMyStreet's cobrands fill with the asset a resident picked on the map (an asset layer's
# `attributes` become the report's extra fields, which perllib/Open311.pm sends as attribute[name]), in the
# order read: central_asset_id (Confirm back ends, e.g. Shropshire, Hounslow, Lincolnshire; Gloucestershire
# looks up the nearest asset within 200 m when none was picked), feature_id (Oxfordshire; Bromley keeps its
# own out of the attributes and writes it into the title) and asset_id (Bristol's server). Not
# asset_resource_id: Buckinghamshire and Dumfries fill it with the nearest road when no asset was picked,
# and two potholes on one road are two problems. The first one that looks like an id is the report's
# asset; any other is kept as sent. See docs/fixmystreet.md.
ASSET_ATTRIBUTES = ("central_asset_id", "feature_id", "asset_id")
_ASSET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")


class ServiceRequestForm(BaseModel):
    """The spec's POST requests fields, each constrained. Contact fields are personal data."""

    model_config = ConfigDict(frozen=True, extra="ignore", title="Open311 service request")

    service_code: str = Field(min_length=1, max_length=64, description="A code from GET services.")
    lat: float | None = Field(default=None, ge=-90, le=90, description="WGS84 latitude.")
    long: float | None = Field(default=None, ge=-180, le=180, description="WGS84 longitude.")
    address_string: str | None = Field(default=None, min_length=1, max_length=500)
    address_id: str | None = Field(
        default=None, max_length=128, description="The UPRN where it is one; any other id is kept as sent."
    )
    email: str | None = Field(default=None, max_length=254, pattern=_EMAIL)
    device_id: str | None = Field(default=None, max_length=128)
    account_id: str | None = Field(default=None, max_length=128)
    first_name: str | None = Field(default=None, max_length=99)
    last_name: str | None = Field(default=None, max_length=99)
    phone: str | None = Field(default=None, max_length=32, pattern=_PHONE)
    description: str | None = Field(default=None, max_length=4000)


@dataclass(frozen=True, slots=True)
class ServiceRequest:
    """A valid POST requests: the form, the category it names, its attribute answers, the media URLs as
    given, and what the event does not carry (undeclared attributes, an address id that is no UPRN).
    """

    form: ServiceRequestForm
    category: Category
    attributes: dict[str, str | tuple[str, ...]] = field(default_factory=dict)
    media_urls: tuple[str, ...] = ()
    uprn: str | None = None
    usrn: str | None = None
    asset_id: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def contact(self) -> ReporterContact | None:
        name = " ".join(filter(None, (self.form.first_name, self.form.last_name))) or None
        if not (name or self.form.email or self.form.phone):
            return None
        return ReporterContact(name=name, email=self.form.email, phone=self.form.phone)


def parse_service_request(fields: Mapping[str, Sequence[str]], council: Council) -> ServiceRequest | Invalid:
    """The service request in `fields` (name -> values, as a form carries them), or every reason it is not.

    Empty values count as absent, as HTML forms send them. Reasons name the field, never echo its value.
    Text is kept as sent except for characters no XML answer could carry (see `clean_text`).
    """
    if len(fields) > MAX_FIELDS:
        return Invalid((f"body: more than {MAX_FIELDS} fields",))
    single, answers, multi, reasons = _split_fields(fields)
    form: ServiceRequestForm | None = None
    try:
        form = ServiceRequestForm.model_validate(single)
    except ValidationError as error:
        reasons.extend(describe_errors(error))
    code = single.get("service_code")
    category = council.categories.get(code) if code else None
    if code and category is None:
        reasons.append("service_code: not a service of this server (see GET services)")
    media_urls = _media_urls(multi.get("media_url", []), reasons)
    attributes: dict[str, str | tuple[str, ...]] = {}
    extras: dict[str, Any] = {}
    asset_id, asset_attribute = _asset_id(answers)
    if category:
        read = PLACE_ATTRIBUTES | {asset_attribute} if asset_attribute else PLACE_ATTRIBUTES
        attributes, unknown = _attribute_answers(category, answers, reasons, read=read)
        if unknown:
            extras["attributes"] = unknown
    uprn, usrn = _place_ids(single, answers, extras)
    # Judged on what was sent, so these reasons come with the others even when a value is invalid.
    if ("lat" in single) != ("long" in single):
        reasons.append("lat, long: give both or neither")
    elif not any(name in single for name in ("lat", "address_string", "address_id")):
        reasons.append("location: give lat and long, address_string or address_id")
    if reasons or form is None or category is None:
        return Invalid(tuple(reasons))
    return ServiceRequest(
        form=form,
        category=category,
        attributes=attributes,
        media_urls=media_urls,
        uprn=uprn,
        usrn=usrn,
        asset_id=asset_id,
        extras=extras,
    )


def _split_fields(
    fields: Mapping[str, Sequence[str]],
) -> tuple[dict[str, str], dict[str, list[str]], dict[str, list[str]], list[str]]:
    """The single-valued fields, the attribute answers, the repeatable fields, and what is wrong with the
    fields as text. Values are cleaned (`clean_text`) once they are known to be storable text.
    """
    reasons: list[str] = []
    single: dict[str, str] = {}
    answers: dict[str, list[str]] = {}
    multi: dict[str, list[str]] = {}
    for name, values in fields.items():
        problems = text_problems(name, [name, *values])
        reasons.extend(problems)
        if problems:
            continue
        present = [clean_text(value) for value in values if value != ""]
        if len(values) > MAX_VALUES_PER_FIELD:
            reasons.append(f"{name}: more than {MAX_VALUES_PER_FIELD} values")
        elif match := _ATTRIBUTE.match(name):
            answers.setdefault(match.group(1), []).extend(present)
        elif name in {"media_url", "media_url[]"}:
            multi.setdefault("media_url", []).extend(present)
        elif name in SINGLE_FIELDS:
            if len(present) > 1:
                reasons.append(f"{name}: given more than once")
            if present:
                single[name] = present[0]
    return single, answers, multi, reasons


def _media_urls(values: Sequence[str], reasons: list[str]) -> tuple[str, ...]:
    """The media URLs exactly as given (never fetched here), each an http(s) URL."""
    if len(values) > MAX_MEDIA_URLS:
        reasons.append(f"media_url: at most {MAX_MEDIA_URLS}")
        return ()
    if any(len(value) > MAX_URL or not _MEDIA_URL.match(value) for value in values):
        reasons.append(f"media_url: an http or https URL of at most {MAX_URL} characters")
        return ()
    return tuple(values)


def _place_ids(
    single: Mapping[str, str], answers: Mapping[str, list[str]], extras: dict[str, Any]
) -> tuple[str | None, str | None]:
    """The UPRN and USRN the request names: attribute[uprn] (as FixMyStreet sends it), else an address_id
    that is a UPRN; an address_id that is not one is kept in `extras` as sent.
    """
    uprn = next((v for v in answers.get("uprn", []) if _UPRN.match(v)), None)
    usrn = next((v for v in answers.get("usrn", []) if _USRN.match(v)), None)
    address_id = single.get("address_id")
    if address_id is not None and len(address_id) <= MAX_STRING:
        if _UPRN.match(address_id):
            uprn = uprn or address_id
        else:
            extras["address_id"] = address_id
    return uprn, usrn


def _asset_id(answers: Mapping[str, list[str]]) -> tuple[str | None, str | None]:
    """The asset the request names (see ASSET_ATTRIBUTES) and the attribute it came from."""
    for name in ASSET_ATTRIBUTES:
        values = answers.get(name, [])
        if len(values) == 1 and _ASSET_ID.match(values[0].strip()):
            return values[0].strip(), name
    return None, None


def _attribute_answers(
    category: Category, answers: Mapping[str, list[str]], reasons: list[str], *, read: frozenset[str]
) -> tuple[dict[str, str | tuple[str, ...]], dict[str, str | list[str]]]:
    """The declared attributes' answers, validated; and the undeclared ones, kept as sent (a client such
    as FixMyStreet sends its own questions too: refusing them would refuse every report it sends), except
    those `read` into the report's place.
    """
    known = {attribute.code: attribute for attribute in category.attributes}
    unknown: dict[str, str | list[str]] = {
        code: values[0] if len(values) == 1 else list(values)
        for code, values in answers.items()
        if code not in known and code not in read and values
    }
    for code, values in unknown.items():
        if any(len(value) > MAX_TEXT for value in ([values] if isinstance(values, str) else values)):
            reasons.append(f"attribute[{code}]: at most {MAX_TEXT} characters")
    result: dict[str, str | tuple[str, ...]] = {}
    for code, attribute in known.items():
        values = answers.get(code, [])
        if not values:
            if attribute.required:
                reasons.append(f"attribute[{code}]: required")
            continue
        problem = _attribute_problem(attribute, values)
        if problem:
            reasons.append(f"attribute[{code}]: {problem}")
        else:
            result[code] = tuple(values) if attribute.datatype == "multivaluelist" else values[0]
    return result, unknown


def _attribute_problem(attribute: ServiceAttribute, values: Sequence[str]) -> str | None:  # noqa: PLR0911 - one answer per datatype
    if attribute.datatype != "multivaluelist" and len(values) > 1:
        return "one value expected"
    value = values[0]
    match attribute.datatype:
        case "number":
            try:
                number = float(value)
            except ValueError:
                return "must be a number"
            return (
                None
                if math.isfinite(number) and len(value) <= MAX_NUMBER_CHARS
                else "must be a finite number"
            )
        case "datetime":
            try:
                datetime.fromisoformat(value)
            except ValueError:
                return "must be an ISO 8601 date and time"
            return None
        case "singlevaluelist" | "multivaluelist":
            return None if all(v in attribute.values for v in values) else "not one of the listed values"
        case "text":
            return None if len(value) <= MAX_TEXT else f"at most {MAX_TEXT} characters"
        case _:
            return None if len(value) <= MAX_STRING else f"at most {MAX_STRING} characters"


def postcode_of(address: str | None) -> str | None:
    """The UK postcode `address` is, normalised ("L1 4DQ"), or None: FixMyStreet sends a postcode as
    address_string when the resident gave no pin.
    """
    if not address or not (match := _POSTCODE.match(address)):
        return None
    return f"{match.group(1)} {match.group(2)}".upper()


def accept_service_request(
    request: ServiceRequest,
    *,
    key_name: str,
    request_key: str,
    client_key: str | None,
    token: str,
    now: datetime,
    media_refs: Sequence[str] = (),
    report_id: UUID | None = None,
    request_digest: bytes | None = None,
) -> AcceptedReport:
    """The accepted report for a valid POST. The same key name and client key give the same report id, so
    a client that posts again with its idempotency key gets the first answer back. `media_refs` name the
    photos sent with the request (stored by intake). `report_id` is the id the caller made for the source
    id (keyed: `PublicIds.request_id`); `request_digest` the body's fingerprint, to refuse a reused key.
    """
    form = request.form
    source_id = f"{key_name}/{client_key or request_key}"
    event = ReportReceived(
        occurred_at=now,
        report_id=report_id or report_id_for(SOURCE_SYSTEM, source_id),
        source_system=SOURCE_SYSTEM,
        source_id=f"{key_name}/{client_key or request_key}",
        channel=Channel.OPEN311,
        received_at=now,
        category=request.category.code,
        place=Place(
            point=GeoPoint(lat=form.lat, lon=form.long)
            if form.lat is not None and form.long is not None
            else None,
            address=form.address_string,
            postcode=postcode_of(form.address_string),
            uprn=request.uprn,
            usrn=request.usrn,
            asset_id=request.asset_id,
        ),
        description=form.description or "",
        attachments=(*request.media_urls, *media_refs),
        attributes=request.attributes,
    )
    return AcceptedReport(
        event=event,
        contact=request.contact,
        client_key=event.source_id if client_key else None,
        token=token,
        extras=request.extras or None,
        request_digest=request_digest,
    )


# --- what the spec prints -------------------------------------------------------------------------------


def service_list(council: Council) -> list[dict[str, Any]]:
    """GET services: one entry per configured category."""
    return [
        {
            "service_code": category.code,
            "service_name": category.name,
            "description": category.description,
            "metadata": bool(category.attributes),
            "type": "realtime",
            "keywords": ",".join(category.keywords),
            "group": category.family,
        }
        for category in council.categories.values()
    ]


def service_definition(category: Category) -> dict[str, Any]:
    """GET services/{code}: the category's attributes, in the spec's shape."""
    return {
        "service_code": category.code,
        "attributes": [
            {
                "variable": True,
                "code": attribute.code,
                "datatype": attribute.datatype,
                "required": attribute.required,
                "datatype_description": attribute.datatype_description,
                "order": order,
                "description": attribute.description,
                **(
                    {"values": [{"key": key, "name": name} for key, name in attribute.values.items()]}
                    if attribute.values
                    else {}
                ),
            }
            for order, attribute in enumerate(category.attributes, start=1)
        ],
    }


@dataclass(frozen=True, slots=True)
class RequestView:
    """One report as GET requests shows it (its event, and what the cases said about it)."""

    report_id: UUID
    event: dict[str, Any]
    accepted_at: datetime
    status: str | None = None
    status_notes: str | None = None
    reference: str | None = None
    agency_responsible: str | None = None
    expected_at: datetime | None = None
    updated_at: datetime | None = None


# Land that is someone's home or property: its reports show only a coarse location (docs/data-protection.md).
PRIVATE_LAND = frozenset({"private", "housing"})


def is_private_place(place: Mapping[str, Any]) -> bool:
    """Whether a report's place is private property: private or housing land, or a property's UPRN."""
    return bool(place.get("uprn")) or str(place.get("land_type") or "").lower() in PRIVATE_LAND


def request_entry(view: RequestView, council: Council, *, public_id: str | None = None) -> dict[str, Any]:
    """A service request in the spec's field order. No contact details: the resident's stay with intake.
    A report on private property shows its location rounded to about 100 m, no address, no property id
    and only the postcode's outward part. `public_id` is its public service_request_id."""
    event = view.event
    place = event.get("place") or {}
    point = place.get("point") or {}
    category = council.categories.get(event["category"])
    attachments = event.get("attachments") or []
    lat, lon = point.get("lat"), point.get("lon")
    address, address_id, zipcode = place.get("address"), place.get("uprn"), place.get("postcode")
    if is_private_place(place):
        lat, lon = coarse(lat), coarse(lon)
        address, address_id = None, None
        zipcode = zipcode.split()[0] if zipcode else None
    return {
        "service_request_id": public_id or str(view.report_id),
        "status": view.status or "open",
        "status_notes": view.status_notes,
        "service_name": category.name if category else event["category"],
        "service_code": event["category"],
        "description": event.get("description") or None,
        "agency_responsible": view.agency_responsible,
        "service_notice": f"Case {view.reference}" if view.reference else None,
        "requested_datetime": _w3c(datetime.fromisoformat(event["received_at"])),
        "updated_datetime": _w3c(view.updated_at or view.accepted_at),
        "expected_datetime": _w3c(view.expected_at) if view.expected_at else None,
        "address": address,
        "address_id": address_id,
        "zipcode": zipcode,
        "lat": lat,
        "long": lon,
        "media_url": attachments[0] if attachments else None,
    }


def _w3c(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


# --- the service-request-updates extension ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UpdateView:
    """One update as the feed shows it."""

    update_id: str
    report_id: UUID
    status: str
    description: str
    external_status_code: str | None
    media_url: str | None
    updated_at: datetime
    source_system: str = SOURCE_SYSTEM


def update_entry(view: UpdateView, *, public_id: str | None = None) -> dict[str, Any]:
    """A request_update with the fields FixMyStreet's client reads (Open311/UpdatesBase.pm)."""
    return {
        "update_id": view.update_id,
        "service_request_id": public_id or str(view.report_id),
        "status": view.status,
        "updated_datetime": _w3c(view.updated_at),
        "description": view.description,
        "media_url": view.media_url,
        "external_status_code": view.external_status_code,
    }


class UpdateForm(BaseModel):
    """A resident's update as a front end POSTs it. Contact fields are personal data."""

    model_config = ConfigDict(frozen=True, extra="ignore", title="Open311 service request update")

    service_request_id: str = Field(min_length=1, max_length=64)
    update_id: str | None = Field(default=None, max_length=64, description="The front end's own id.")
    status: str | None = Field(default=None, max_length=40)
    description: str = Field(default="", max_length=4000)
    updated_datetime: datetime | None = None
    email: str | None = Field(default=None, max_length=254, pattern=_EMAIL)
    first_name: str | None = Field(default=None, max_length=99)
    last_name: str | None = Field(default=None, max_length=99)
    phone: str | None = Field(default=None, max_length=32, pattern=_PHONE)

    @property
    def contact(self) -> ReporterContact | None:
        # FixMyStreet sends last_name "-" when it knows only one name.
        last = None if self.last_name == "-" else self.last_name
        name = " ".join(filter(None, (self.first_name, last))) or None
        if not (name or self.email or self.phone):
            return None
        return ReporterContact(name=name, email=self.email, phone=self.phone)


@dataclass(frozen=True, slots=True)
class PostedUpdate:
    form: UpdateForm
    media_urls: tuple[str, ...]

    @property
    def status(self) -> str | None:
        return self.form.status.upper() if self.form.status else None


_UPDATE_FIELDS = frozenset(
    {"service_request_id", "update_id", "status", "description", "updated_datetime", "email"}
    | {"first_name", "last_name", "phone", "api_key", "jurisdiction_id"}
)


def parse_update(fields: Mapping[str, Sequence[str]]) -> PostedUpdate | Invalid:
    """The update in `fields`, or every reason it is not one."""
    if len(fields) > MAX_FIELDS:
        return Invalid((f"body: more than {MAX_FIELDS} fields",))
    single, media, reasons = _split_update_fields(fields)
    form: UpdateForm | None = None
    try:
        form = UpdateForm.model_validate(single)
    except ValidationError as error:
        reasons.extend(describe_errors(error))
    status = single.get("status", "").upper()
    if status and status not in POSTED_STATUSES:
        reasons.append("status: not a status of the service-request-updates extension")
    media_urls = _media_urls(media, reasons)
    if reasons or form is None:
        return Invalid(tuple(reasons))
    return PostedUpdate(form=form, media_urls=media_urls)


def _split_update_fields(fields: Mapping[str, Sequence[str]]) -> tuple[dict[str, str], list[str], list[str]]:
    reasons: list[str] = []
    single: dict[str, str] = {}
    media: list[str] = []
    for name, values in fields.items():
        if problems := text_problems(name, [name, *values]):
            reasons.extend(problems)
            continue
        present = [clean_text(value) for value in values if value != ""]
        if name in {"media_url", "media_url[]"}:
            media.extend(present)
        elif name in _UPDATE_FIELDS:
            if len(present) > 1:
                reasons.append(f"{name}: given more than once")
            elif present:
                single[name] = present[0]
    return single, media, reasons


@dataclass(frozen=True, slots=True)
class ResidentUpdate:
    """A resident's update as intake records it in the feed."""

    update_id: str
    report_id: UUID
    case_id: UUID | None
    status: str
    description: str
    external_status_code: str | None
    media_url: str | None
    at: datetime
    client_key: str | None


def errors(code: int, reasons: Sequence[str]) -> list[dict[str, Any]]:
    """The spec's error list: one {code, description} per reason."""
    return [{"code": code, "description": reason} for reason in reasons]
