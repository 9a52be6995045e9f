"""The events Caseway's services exchange: one pydantic model per event, named for what happened.

Every event is a frozen model whose JSON body carries its own `event_type`, so a topic that holds several
kinds (cases.v1, notifications.v1) can be parsed with one discriminated union. The same type also travels
in the message headers (see `caseway_shared.headers`) so that operators can filter without parsing.

Residents' contact details never appear here: intake keeps them, and everything downstream refers to the
report by its id.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID, uuid5

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter


class Channel(StrEnum):
    """How the resident reached the council."""

    PHONE = "phone"
    WEB = "web"
    EMAIL = "email"
    APP = "app"
    WALK_IN = "walk-in"
    OPEN311 = "open311"


class CaseStatus(StrEnum):
    """Where a case stands. Open: nobody has taken it up yet (the notifier escalates it when it is late);
    acknowledged: a department has taken it up; closed: finished, with a resolution."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"


class Priority(StrEnum):
    """How fast a case must be dealt with: a category's own, or urgent when its report says so."""

    LOW = "low"
    NORMAL = "normal"
    URGENT = "urgent"


class NotificationKind(StrEnum):
    """What an alert to a team is about (the last part of its notification key)."""

    NEW_CASE = "new-case"
    JOINING_UP = "joining-up"
    REPORT_LINKED = "report-linked"
    ESCALATION = "escalation"
    REPORTS_DIGEST = "reports-digest"
    NEW_CASES_DIGEST = "new-cases-digest"


class GeoPoint(BaseModel):
    """A WGS84 point."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    lat: float = Field(ge=-90, le=90, description="Latitude in decimal degrees (WGS84).")
    lon: float = Field(ge=-180, le=180, description="Longitude in decimal degrees (WGS84).")


class Place(BaseModel):
    """Where the problem is, as far as the resident could say."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    point: GeoPoint | None = None
    accuracy_m: float | None = Field(
        default=None,
        gt=0,
        description="How far off the point may be, in metres (68% confidence radius), where the sender knew.",
    )
    address: str | None = Field(default=None, max_length=500)
    postcode: str | None = Field(default=None, max_length=10)
    uprn: str | None = Field(default=None, max_length=12, description="Unique Property Reference Number.")
    usrn: str | None = Field(default=None, max_length=8, description="Unique Street Reference Number.")
    asset_id: str | None = Field(
        default=None,
        max_length=64,
        description="The street asset the problem is at (a street light, gully or bin), by the id the"
        " council's asset register gives it.",
    )
    ward_code: str | None = Field(
        default=None, max_length=9, description="ONS ward code, if the caller knew."
    )
    land_type: str | None = Field(
        default=None,
        max_length=32,
        description="What the land is, where known: public, housing, carriageway, park, private.",
    )


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    occurred_at: AwareDatetime


class ReportReceived(_Event):
    """A resident's report that intake validated and accepted (intake -> router)."""

    event_type: Literal["ReportReceived"] = "ReportReceived"
    report_id: UUID = Field(description="Stable id: the same source system and source id give the same id.")
    source_system: str
    source_id: str
    channel: Channel
    received_at: AwareDatetime
    category: str = Field(description="A configured category code, or 'triage' for unmapped free text.")
    category_text: str | None = Field(default=None, description="The free text the category came from.")
    place: Place
    description: str = Field(max_length=4000)
    attachments: tuple[str, ...] = ()
    attributes: dict[str, str | tuple[str, ...]] = Field(
        default_factory=dict,
        description="Answers to the category's further questions (attribute code -> value or values).",
    )


# Report ids are derived from (source system, source id), so the same upstream report always has the same
# id, whichever replica of intake sees it and however often; tools that replay or check reports use it too.
REPORT_ID_NAMESPACE = UUID("6f1d0c55-4a4e-4c1b-9a43-6b0c3a5e2f10")


def report_id_for(source_system: str, source_id: str) -> UUID:
    """The report id of the upstream report `source_id` of `source_system` (a version-5 UUID)."""
    return uuid5(REPORT_ID_NAMESPACE, f"{source_system}\x1f{source_id}")


class CaseFlag(BaseModel):
    """Why a person should look at a case: near a boundary, possible duplicate, needs triage, ..."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    flag: str
    reason: str


class CaseOpened(_Event):
    """A new case, opened for a report that is not another report of an open problem. It says everything
    the opening decided: its departments (lead first) and its flags; `CaseAssigned` and `CaseFlagged`
    follow only for later changes (since contract 1.1: before it, one of each followed every opening)."""

    event_type: Literal["CaseOpened"] = "CaseOpened"
    case_id: UUID
    reference: str = Field(description="The reference staff and the resident quote, e.g. LV-2026-000123.")
    report_id: UUID
    category: str
    priority: Priority
    neighbourhood: str | None
    ward_code: str | None
    lead_department: str
    departments: tuple[str, ...] = Field(
        description="Every department that owns part of the case, lead first."
    )
    due_at: datetime | None
    point: GeoPoint | None
    summary: str = Field(max_length=200, description="Short, plain text: never turned into links.")
    flags: tuple[CaseFlag, ...] = Field(
        default=(), description="What a person should look at, decided at opening (contract 1.1)."
    )


class ReportLinked(_Event):
    """Another report of a problem that already has an open case joined that case."""

    event_type: Literal["ReportLinked"] = "ReportLinked"
    case_id: UUID
    reference: str
    report_id: UUID
    reports_count: int = Field(ge=2, description="How many residents' reports the case now holds.")
    score: float
    from_case_id: UUID | None = Field(
        default=None, description="The case the report was moved from, when staff linked it by hand."
    )
    actor: str | None = Field(
        default=None, description="The staff member who did it (their sign-on id); none when Caseway did."
    )


class CaseAssigned(_Event):
    """A department was given a part of a case after it opened (a reassignment, a merge): the departments
    of the opening are in `CaseOpened.departments`."""

    event_type: Literal["CaseAssigned"] = "CaseAssigned"
    case_id: UUID
    reference: str
    department: str
    role: Literal["lead", "contributor"]
    neighbourhood: str | None
    replaces: str | None = Field(
        default=None, description="The department this one takes the part over from (a reassignment)."
    )
    actor: str | None = Field(
        default=None, description="The staff member who did it (their sign-on id); none when Caseway did."
    )


class CaseFlagged(_Event):
    """A case needs a person to look at it, found after it opened: the flags of the opening are in
    `CaseOpened.flags`."""

    event_type: Literal["CaseFlagged"] = "CaseFlagged"
    case_id: UUID
    reference: str
    flag: str
    reason: str


class CaseStatusChanged(_Event):
    """A case moved between statuses (open, acknowledged, closed)."""

    event_type: Literal["CaseStatusChanged"] = "CaseStatusChanged"
    case_id: UUID
    reference: str
    status: CaseStatus
    note: str | None = None
    department: str | None = Field(
        default=None, description="The department whose part changed (an acknowledgement), if one."
    )
    actor: str | None = Field(
        default=None, description="The staff member who did it (their sign-on id); none when Caseway did."
    )


CaseResolution = Literal[
    "fixed", "not-councils-responsibility", "no-further-action", "internal-referral", "duplicate"
]


class CaseClosed(_Event):
    """A case was closed."""

    event_type: Literal["CaseClosed"] = "CaseClosed"
    case_id: UUID
    reference: str
    note: str | None = None
    resolution: CaseResolution | None = Field(
        default=None,
        description="Why it was closed, where staff said: what residents' front ends show (FIXED, "
        "NOT_COUNCILS_RESPONSIBILITY, ...); none is a plain close.",
    )
    duplicate_of: str | None = Field(
        default=None, description="The reference of the case this one duplicates (resolution duplicate)."
    )
    actor: str | None = Field(
        default=None, description="The staff member who did it (their sign-on id); none when Caseway did."
    )


class CaseUnassigned(_Event):
    """A department's part of a case was taken away (reassigned to another department)."""

    event_type: Literal["CaseUnassigned"] = "CaseUnassigned"
    case_id: UUID
    reference: str
    department: str
    neighbourhood: str | None
    replaced_by: str | None = None
    actor: str | None = Field(
        default=None, description="The staff member who did it (their sign-on id); none when Caseway did."
    )


class CaseNoteAdded(_Event):
    """Staff added a note to a case: internal (its text stays in the router) or public (for the resident:
    its text travels, with anything like a phone number or email address masked)."""

    event_type: Literal["CaseNoteAdded"] = "CaseNoteAdded"
    case_id: UUID
    reference: str
    note_id: int
    visibility: Literal["internal", "public"]
    text: str | None = Field(default=None, max_length=4000, description="Public notes only, masked.")
    actor: str | None = Field(
        default=None, description="The staff member who did it (their sign-on id); none when Caseway did."
    )


class DuplicateReviewed(_Event):
    """Staff decided whether a case flagged as a possible duplicate repeats the other case: when it does,
    its reports move to the other case (ReportLinked there) and it closes as a duplicate (CaseClosed)."""

    event_type: Literal["DuplicateReviewed"] = "DuplicateReviewed"
    case_id: UUID
    reference: str
    other_reference: str
    same_problem: bool
    actor: str | None = Field(
        default=None, description="The staff member who did it (their sign-on id); none when Caseway did."
    )


class ReportUnlinked(_Event):
    """A report was taken out of a case by staff: moved to another case, or given a case of its own."""

    event_type: Literal["ReportUnlinked"] = "ReportUnlinked"
    case_id: UUID
    reference: str
    report_id: UUID
    reports_count: int = Field(ge=0, description="How many reports the case still holds.")
    moved_to_case_id: UUID
    moved_to_reference: str
    actor: str | None = Field(
        default=None, description="The staff member who did it (their sign-on id); none when Caseway did."
    )


CaseEvent = Annotated[
    CaseOpened
    | ReportLinked
    | CaseAssigned
    | CaseFlagged
    | CaseStatusChanged
    | CaseClosed
    | CaseUnassigned
    | CaseNoteAdded
    | ReportUnlinked
    | DuplicateReviewed,
    Field(discriminator="event_type"),
]
CASE_EVENT: TypeAdapter[CaseEvent] = TypeAdapter(CaseEvent)


class ResidentUpdateReceived(_Event):
    """A resident commented on their report through an Open311 front end (intake -> router): a public note
    on the report's case, or a request to reopen it. Who wrote it stays with intake.
    """

    event_type: Literal["ResidentUpdateReceived"] = "ResidentUpdateReceived"
    update_id: str = Field(
        max_length=64, description="Intake's id of the update, as the front end quotes it."
    )
    report_id: UUID
    case_id: UUID | None = Field(description="The report's case, if intake has heard of it yet.")
    action: Literal["note", "reopen"]
    client_status: str | None = Field(
        default=None, max_length=40, description="The status the front end sent, e.g. FIXED or REOPEN."
    )
    description: str = Field(max_length=4000, description="The resident's words: public on the case.")
    media_urls: tuple[str, ...] = ()


class NotificationSent(_Event):
    """A team was alerted about a case."""

    event_type: Literal["NotificationSent"] = "NotificationSent"
    notification_key: str = Field(description="case:team:channel:kind; unique, so nothing is sent twice.")
    case_id: UUID
    team: str
    channel: str
    kind: NotificationKind
    attempts: int = 1


class NotificationFailed(_Event):
    """An alert could not be delivered after its retries."""

    event_type: Literal["NotificationFailed"] = "NotificationFailed"
    notification_key: str
    case_id: UUID
    team: str
    channel: str
    kind: NotificationKind
    attempts: int
    error: str


class NotificationSuppressed(_Event):
    """An alert was not sent because the same one was already sent (or is folded into a digest)."""

    event_type: Literal["NotificationSuppressed"] = "NotificationSuppressed"
    notification_key: str
    case_id: UUID
    team: str
    channel: str
    kind: NotificationKind
    reason: str


NotificationEvent = Annotated[
    NotificationSent | NotificationFailed | NotificationSuppressed,
    Field(discriminator="event_type"),
]
NOTIFICATION_EVENT: TypeAdapter[NotificationEvent] = TypeAdapter(NotificationEvent)

AnyEvent = ReportReceived | CaseEvent | NotificationEvent


class RejectionSource(BaseModel):
    """Where a rejected message came from."""

    model_config = ConfigDict(frozen=True, extra="allow")

    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    source_system: str | None = None
    channel: str | None = Field(default=None, description="kafka or open311.")


class OriginalBytes(BaseModel):
    """The rejected input exactly as it arrived: UTF-8 text, or base64 when it was not text."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    encoding: Literal["utf-8", "base64"]
    data: str


class ReportRejected(BaseModel):
    """What reports.rejected.v1 carries: every reason, where it came from, and the original input."""

    model_config = ConfigDict(frozen=True, extra="allow")

    reasons: tuple[str, ...]
    source: RejectionSource
    original: OriginalBytes


class Heartbeat(BaseModel):
    """What ops.heartbeat.v1 carries: one running instance's identity and progress."""

    model_config = ConfigDict(frozen=True, extra="allow")

    service: str
    instance: str
    version: str
    host: str
    pid: int
    started_at: AwareDatetime
    at: AwareDatetime
    assigned: tuple[dict[str, Any], ...] = Field(description="The partitions this instance consumes.")
    progress: dict[str, int] = Field(
        description="Running totals: processed per topic, dead-lettered, rejected."
    )
    outbox_published: int
