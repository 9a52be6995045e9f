"""A council described by configuration: its departments and categories (`council.toml`), wards
(GeoJSON) and neighbourhoods (JSON). Liverpool's is shipped as the default; `CASEWAY_COUNCIL_DIR` points at
another folder with the same files.
"""

from __future__ import annotations

import json
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from caseway_shared.events import Priority

LIVERPOOL_DIR = Path(__file__).parent / "councils" / "liverpool"
TRIAGE = "triage"


class Target(BaseModel):
    """A response target: working days, or hours (which run around the clock)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    working_days: int | None = Field(default=None, ge=1)
    hours: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_unit(self) -> Target:
        if (self.working_days is None) == (self.hours is None):
            raise ValueError("a target has exactly one of working_days or hours")
        return self


class AlsoRule(BaseModel):
    """A department also involved in a category, always or only in a context."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    department: str
    when_land_type: tuple[str, ...] = ()
    when_keywords: tuple[str, ...] = ()


class ServiceAttribute(BaseModel):
    """A further question a category asks the reporter (an Open311 service definition attribute)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str = Field(pattern=r"^[a-z0-9_-]{1,64}$")
    description: str = Field(min_length=1, max_length=500, description="The question, as shown to people.")
    datatype: Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"] = "string"
    required: bool = False
    datatype_description: str | None = None
    values: dict[str, str] = Field(
        default_factory=dict, description="key -> name: the choices of a singlevaluelist or multivaluelist."
    )

    @model_validator(mode="after")
    def _lists_have_values(self) -> ServiceAttribute:
        if self.datatype.endswith("valuelist") != bool(self.values):
            raise ValueError(f"attribute {self.code!r}: values are given exactly for the list datatypes")
        return self


class Category(BaseModel):
    """What a kind of problem is, who owns it, how fast, and how its duplicates are found."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    name: str
    description: str
    family: str
    keywords: tuple[str, ...] = ()
    lead: str
    also: tuple[AlsoRule, ...] = ()
    priority: Priority = Priority.NORMAL
    target: Target | None = None
    urgent_when: tuple[str, ...] = ()
    urgent_target: Target | None = None
    duplicate_radius_m: float = Field(ge=0)
    duplicate_window_hours: float = Field(ge=0)
    attributes: tuple[ServiceAttribute, ...] = Field(
        default=(), description="Further questions asked when the category is reported (Open311)."
    )
    public: bool = Field(
        default=True,
        description="Whether its reports are shown by the public Open311 GET requests (false for reports "
        "about people or homes: anti-social behaviour, noise, housing).",
    )


class Council(BaseModel):
    """Everything that describes one council, loaded from its configuration folder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    reference_prefix: str = Field(pattern=r"^[A-Z]{2,4}$")
    timezone: str = "Europe/London"
    holidays_country: str = "GB"
    holidays_subdivision: str | None = "ENG"
    boundary_flag_metres: float = 25
    # Duplicate detection (see caseway_router.domain.duplicates): a report joins the best case scoring at
    # least the link threshold; between the review and link thresholds its new case is flagged for a person.
    duplicate_link_threshold: float = Field(default=0.03, gt=0, le=1)
    duplicate_review_threshold: float = Field(default=0.005, ge=0, le=1)
    duplicate_location_sigma_m: float = Field(
        default=15, gt=0, description="Expected location error of a reported point, metres per axis."
    )
    duplicate_closed_window_hours: float = Field(
        default=72, ge=0, description="How long after closing a case may still take new reports."
    )
    departments: dict[str, str]
    categories: dict[str, Category]
    neighbourhoods: dict[str, tuple[str, ...]] = Field(description="neighbourhood -> ward names")
    wards_geojson: dict[str, Any] = Field(repr=False)
    ward_code_property: str = Field(
        default="WD23CD",
        description="The boundaries' property holding a ward's code (ONS names it by year: WD23CD...).",
    )
    ward_name_property: str = Field(
        default="WD23NM", description="The boundaries' property holding its name."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Council:
        problems: list[str] = []
        if TRIAGE not in self.categories:
            problems.append("a 'triage' category is required for reports that match no category")
        problems.extend(
            f"category {category.code!r} names unknown department {department!r}"
            for category in self.categories.values()
            for department in (category.lead, *(rule.department for rule in category.also))
            if department not in self.departments
        )
        missing = [
            f"ward boundary {index} has no {prop!r} property (set ward_code_property / ward_name_property)"
            for index, feature in enumerate(self.wards_geojson["features"])
            for prop in (self.ward_code_property, self.ward_name_property)
            if prop not in feature.get("properties", {})
        ]
        if missing:
            raise ValueError("; ".join(missing[:5]))
        ward_names = {self.ward_name_of(feature) for feature in self.wards_geojson["features"]}
        grouped = [ward for wards in self.neighbourhoods.values() for ward in wards]
        problems.extend(
            f"neighbourhood ward {ward!r} is not in the boundaries"
            for ward in grouped
            if ward not in ward_names
        )
        problems.extend(f"ward {ward!r} is in no neighbourhood" for ward in sorted(ward_names - set(grouped)))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def ward_code_of(self, feature: dict[str, Any]) -> str:
        """A boundary feature's ward code."""
        return str(feature["properties"][self.ward_code_property])

    def ward_name_of(self, feature: dict[str, Any]) -> str:
        """A boundary feature's ward name."""
        return str(feature["properties"][self.ward_name_property])

    @cached_property
    def neighbourhood_of_ward(self) -> dict[str, str]:
        """Ward name -> neighbourhood name."""
        return {ward: hood for hood, wards in self.neighbourhoods.items() for ward in wards}


def load_council(directory: Path = LIVERPOOL_DIR) -> Council:
    """Read and validate a council's configuration folder; errors name every problem at once."""
    with (directory / "council.toml").open("rb") as file:
        raw = tomllib.load(file)
    raw["categories"] = {code: {"code": code, **body} for code, body in raw.get("categories", {}).items()}
    raw["neighbourhoods"] = json.loads(_one(directory, "neighbourhoods*.json").read_text())
    raw["wards_geojson"] = json.loads(_one(directory, "wards*.geojson").read_text())
    return Council.model_validate(raw)


def _one(directory: Path, pattern: str) -> Path:
    matches = sorted(directory.glob(pattern))
    if len(matches) != 1:
        raise ValueError(f"{directory} must hold exactly one {pattern} file, found {len(matches)}")
    return matches[0]
