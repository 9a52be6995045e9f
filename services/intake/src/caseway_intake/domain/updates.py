"""The service-request-updates extension, the pure part: which update each case event makes for the
reports of its case, in the extended status vocabulary FixMyStreet's Open311 client reads, and what a
resident's posted update asks for.

Each update's id is derived from its report and what caused it, so a replayed case event adds nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from caseway_shared.events import (
    CaseClosed,
    CaseNoteAdded,
    CaseOpened,
    CaseStatus,
    CaseStatusChanged,
    ReportLinked,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from caseway_shared.events import CaseEvent

UPDATE_NAMESPACE = uuid.UUID("0b7e7f39-2a51-4a43-8a55-5d2f7f0e1c11")
# The extended statuses of the service-request-updates extension, as FixMyStreet's client maps them
# (perllib/Open311.pm, map_state: lower-cased, underscores to spaces).
STATUSES = (
    "OPEN",
    "INVESTIGATING",
    "IN_PROGRESS",
    "ACTION_SCHEDULED",
    "FIXED",
    "DUPLICATE",
    "NOT_COUNCILS_RESPONSIBILITY",
    "NO_FURTHER_ACTION",
    "INTERNAL_REFERRAL",
    "CLOSED",
)
# Statuses a front end may post with a resident's update (FixMyStreet's _populate_service_request_update_
# params sends these and FOR_TRIAGE, CANCELLED and REOPEN).
POSTED_STATUSES = frozenset({*STATUSES, "FOR_TRIAGE", "CANCELLED", "REOPEN"})
# What a case's status change says to residents (a close says it with its resolution, below).
_CASE_STATUS: dict[CaseStatus, str] = {CaseStatus.OPEN: "OPEN", CaseStatus.ACKNOWLEDGED: "INVESTIGATING"}
_RESOLUTION = {
    "fixed": "FIXED",
    "not-councils-responsibility": "NOT_COUNCILS_RESPONSIBILITY",
    "no-further-action": "NO_FURTHER_ACTION",
    "internal-referral": "INTERNAL_REFERRAL",
    "duplicate": "DUPLICATE",
}
_WORDING = {
    "OPEN": "The council has reopened this report.",
    "INVESTIGATING": "The council is looking into this report.",
    "IN_PROGRESS": "Work on this report is in progress.",
    "ACTION_SCHEDULED": "Work on this report has been scheduled.",
    "FIXED": "The council has fixed this problem.",
    "DUPLICATE": "This problem had already been reported.",
    "NOT_COUNCILS_RESPONSIBILITY": "This is not the council's responsibility.",
    "NO_FURTHER_ACTION": "The council will take no further action on this report.",
    "INTERNAL_REFERRAL": "The council has passed this report to another team.",
    "CLOSED": "The council has closed this report.",
}


# What a resident's own words come back as from the router (`resident:<source system>`): already in the feed
# under the front end's own update id, so not listed again.
RESIDENT_ACTOR_PREFIX = "resident:"


@dataclass(frozen=True, slots=True)
class CaseUpdate:
    """The update one case event makes: for one report of the case (`report_id`), or for all of them.
    `status` None: unchanged (each report keeps the status its last update showed)."""

    key: str
    status: str | None
    description: str
    external_status_code: str
    at: datetime
    report_id: uuid.UUID | None = None


def update_id(report_id: uuid.UUID, key: str) -> str:
    """The update's id: the same report and cause always give the same id."""
    return str(uuid.uuid5(UPDATE_NAMESPACE, f"{report_id}|{key}"))


def case_update(event: CaseEvent, *, agency: str | None = None) -> CaseUpdate | None:
    """The update `event` makes for the reports of its case, if residents see one."""
    at = event.occurred_at
    match event:
        case CaseOpened():
            lead = f" {agency} is dealing with it." if agency else ""
            return CaseUpdate(
                key=f"opened:{event.case_id}",
                status="OPEN",
                description=f"Logged by the council as case {event.reference}.{lead}",
                external_status_code="opened",
                at=at,
                report_id=event.report_id,
            )
        case ReportLinked():
            # The report joined a case opened for an earlier report of the same problem: shown as a
            # duplicate that points at the case that carries on, whose updates follow on this report too.
            return CaseUpdate(
                key=f"linked:{event.case_id}",
                status="DUPLICATE",
                description=(
                    f"This problem had already been reported: this report has joined case "
                    f"{event.reference} ({event.reports_count} reports), which the council is dealing "
                    "with. Its updates will be shown here too."
                ),
                external_status_code="linked",
                at=at,
                report_id=event.report_id,
            )
        case CaseStatusChanged() if event.status != CaseStatus.CLOSED:
            status = _CASE_STATUS[event.status]
            return CaseUpdate(
                key=f"status:{event.status}:{at.isoformat()}",
                status=status,
                description=event.note or _WORDING[status],
                external_status_code=event.status,
                at=at,
            )
        case CaseNoteAdded() if is_public_note(event):
            # Staff wrote to the residents: the note (masked by the router) with the status unchanged.
            return CaseUpdate(
                key=f"note:{event.note_id}",
                status=None,
                description=event.text or "",
                external_status_code="note",
                at=at,
            )
        case CaseClosed():
            # A close comes as CaseStatusChanged(closed) and CaseClosed: the latter says why, so it alone
            # makes the update.
            status = _RESOLUTION.get(event.resolution or "", "CLOSED")
            return CaseUpdate(
                key=f"closed:{at.isoformat()}",
                status=status,
                description=event.note or _WORDING[status],
                external_status_code=event.resolution or "closed",
                at=at,
            )
        case _:
            return None


def in_rounds(events: Sequence[CaseEvent]) -> list[list[CaseEvent]]:
    """`events` (in the order they came) split into rounds that can each be applied set-based: no case and
    no report appears twice in a round, and each event comes in a later round than every earlier event of
    its case or its report. Applying the rounds in turn, each in any order within, is applying the events
    one by one: events of different cases touch different rows, except through a report, kept apart too.
    """
    rounds: list[list[CaseEvent]] = []
    last_round: dict[uuid.UUID, int] = {}  # case or report id -> the last round it appears in
    for event in events:
        keys = [event.case_id]
        if isinstance(event, CaseOpened | ReportLinked):
            keys.append(event.report_id)
        if isinstance(event, ReportLinked) and event.from_case_id is not None:
            keys.append(event.from_case_id)  # the report leaves that case: its events stay on their side
        index = max((last_round.get(key, -1) for key in keys), default=-1) + 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(event)
        for key in keys:
            last_round[key] = index
    return rounds


def is_public_note(event: CaseNoteAdded) -> bool:
    """A note residents see: public, with text, and not a resident's own words coming back."""
    return (
        event.visibility == "public"
        and bool(event.text and event.text.strip())
        and not (event.actor or "").startswith(RESIDENT_ACTOR_PREFIX)
    )


def resident_action(posted_status: str | None, request_status: str | None) -> Literal["note", "reopen"]:
    """What a resident's posted update asks of the case: REOPEN reopens; so does OPEN on a closed request
    (FixMyStreet without extended statuses sends a reopening as OPEN); anything else is a public note.
    """
    if posted_status == "REOPEN" or (posted_status == "OPEN" and request_status == "closed"):
        return "reopen"
    return "note"
