"""The schema upstream contact-centre systems publish to contact-centre.reports.v1 (version 1).

This is a published contract: its JSON Schema is generated into the repository (schemas/) and changes
only by adding optional fields; anything else is a new version on a new topic.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, HttpUrl, model_validator

from caseway_shared.events import Channel

_TEXT = r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"


class ReporterContact(BaseModel):
    """How to reach the resident. Personal data: kept by intake, never passed downstream or logged."""

    model_config = ConfigDict(frozen=True, extra="ignore", title="Reporter contact")

    name: str | None = Field(
        default=None, max_length=200, description="The resident's name.", examples=["A Resident"]
    )
    email: str | None = Field(
        default=None,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="An email address to reach the resident.",
        examples=["resident@example.net"],
    )
    phone: str | None = Field(
        default=None,
        max_length=32,
        pattern=r"^\+?[0-9 ()-]{6,31}$",
        description="A phone number to reach the resident.",
        examples=["0151 000 0000"],
    )


class ReportLocation(BaseModel):
    """Where the problem is: coordinates, and/or whatever the caller could say about the place."""

    model_config = ConfigDict(frozen=True, extra="ignore", title="Report location")

    lat: float | None = Field(default=None, ge=-90, le=90, description="WGS84 latitude.")
    lon: float | None = Field(default=None, ge=-180, le=180, description="WGS84 longitude.")
    accuracy_m: float | None = Field(
        default=None,
        gt=0,
        le=10_000,
        description="How far off the coordinates may be, in metres: the radius of 68% confidence, as phones"
        " report it (Android's getAccuracy, the W3C Geolocation accuracy).",
        examples=[12.0],
    )
    address: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="The address or place as given.",
        examples=["Back entry behind 12 Bold Street"],
    )
    postcode: str | None = Field(
        default=None,
        max_length=10,
        pattern=r"^[A-Za-z]{1,2}[0-9][A-Za-z0-9]? ?[0-9][A-Za-z]{2}$",
        description="A UK postcode.",
        examples=["L1 4DQ"],
    )
    uprn: str | None = Field(
        default=None,
        pattern=r"^[0-9]{1,12}$",
        description="Unique Property Reference Number.",
        examples=["38049876"],
    )
    usrn: str | None = Field(
        default=None,
        pattern=r"^[0-9]{1,8}$",
        description="Unique Street Reference Number.",
        examples=["11400123"],
    )
    asset_id: str | None = Field(
        default=None,
        max_length=64,
        pattern=_TEXT,
        description="The street asset the problem is at (a street light, gully or bin), by the id the"
        " council's asset register gives it. Reports of one category naming one asset are one problem, and"
        " naming two different assets are two.",
        examples=["SL-00417"],
    )
    ward_code: str | None = Field(
        default=None, pattern=r"^E05[0-9]{6}$", description="ONS ward code, if known.", examples=["E05015277"]
    )
    land_type: Literal["public", "housing", "carriageway", "park", "private"] | None = Field(
        default=None, description="What the land is, where the caller knew."
    )

    @model_validator(mode="after")
    def _coordinates_in_pairs(self) -> ReportLocation:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon must be given together")
        if self.lat is None and not any((self.address, self.postcode, self.uprn, self.usrn, self.ward_code)):
            raise ValueError("a location needs coordinates, an address, a postcode, a UPRN/USRN or a ward")
        return self


class ContactCentreReport(BaseModel):
    """A resident's report as a contact-centre system publishes it."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        title="Contact-centre report (v1)",
        json_schema_extra={
            "examples": [
                {
                    "schema_version": 1,
                    "source_system": "liverpool-direct",
                    "source_id": "LD-2026-118273",
                    "channel": "phone",
                    "received_at": "2026-11-23T09:14:00+00:00",
                    "category": "fly-tipping",
                    "location": {"lat": 53.4084, "lon": -2.9916, "address": "Bold Street, Liverpool"},
                    "description": "Mattress and bin bags dumped by the back entry.",
                    "attachments": [],
                    "reporter": {"name": "A Resident", "phone": "0151 000 0000"},
                }
            ]
        },
    )

    schema_version: Literal[1] = Field(default=1, description="The version of this schema.")
    source_system: str = Field(
        min_length=1,
        max_length=64,
        pattern=_TEXT,
        description="Who published it.",
        examples=["liverpool-direct"],
    )
    source_id: str = Field(
        min_length=1,
        max_length=128,
        pattern=_TEXT,
        description="Its id in that system: the same (source_system, source_id) is accepted once.",
        examples=["LD-2026-118273"],
    )
    channel: Channel = Field(
        description="The channel the report came in by (see Channel).", examples=["phone"]
    )
    received_at: AwareDatetime = Field(description="When the council received it, with a UTC offset.")
    category: str | None = Field(
        default=None,
        max_length=64,
        description="A category code of the council's configuration (as GET /open311/v2/services lists), "
        "if known; otherwise intake maps category_text, or sends the report to triage.",
        examples=["fly-tipping"],
    )
    category_text: str | None = Field(
        default=None, max_length=200, description="The caller's words for the problem, mapped by intake."
    )
    location: ReportLocation = Field(description="Coordinates and/or what the caller said about the place.")
    description: str = Field(
        min_length=1, max_length=4000, description="The problem, in the resident's words."
    )
    attachments: list[HttpUrl] = Field(
        default_factory=list,
        max_length=10,
        description="Photos or documents, by URL.",
        examples=[["https://example.org/photo.jpg"]],
    )
    reporter: ReporterContact | None = Field(
        default=None,
        description="How to reach the resident: kept by intake alone, never passed on or logged.",
    )

    @model_validator(mode="after")
    def _some_category(self) -> ContactCentreReport:
        if not self.category and not self.category_text:
            raise ValueError("give a category code or the caller's words in category_text")
        return self
