"""Staff status changes (acknowledge, close) through the staff desk's unit of work on in-memory case files:
the same `StaffDesk` code as the staff pages and API run, milliseconds. tests/integration/router/
test_staff_actions.py proves them against PostgreSQL and Kafka."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from caseway_router.adapters.memory import MemoryCaseFiles
from caseway_router.domain.access import StaffMember, TeamScope
from caseway_router.staff import Conflict, Forbidden, NotFound, StaffDesk
from caseway_shared.council import load_council
from caseway_shared.events import CASE_EVENT, CaseClosed, CaseStatus, CaseStatusChanged
from caseway_shared.unit_of_work import InMemoryUnitOfWork
from factories import case_row

NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)
HOOD = "N01"
STREETSCENE = StaffMember(
    "s1", "Sam", teams=(TeamScope("streetscene-n01", "Streetscene N01", "streetscene", frozenset({HOOD})),)
)
ENV_CRIME = StaffMember("e1", "Eve", teams=(TeamScope("env-crime-city", "Env crime", "env-crime"),))
ELSEWHERE = StaffMember(
    "o1", "Olu", teams=(TeamScope("streetscene-n02", "Streetscene N02", "streetscene", frozenset({"N02"})),)
)


class Desk:
    def __init__(self) -> None:
        self.files = MemoryCaseFiles()
        self.case = case_row(at=NOW)
        self.files.add(self.case, departments=("streetscene", "env-crime"))
        self.uow = InMemoryUnitOfWork(self.files)
        self.desk = StaffDesk(
            unit_of_work=self.uow, council=load_council(), topic=lambda topic: topic.value, clock=lambda: NOW
        )

    def stored(self):
        return self.files.cases[self.case.reference]

    def events(self) -> list:
        return [CASE_EVENT.validate_json(message.payload) for message in self.uow.published]


async def test_the_first_acknowledgement_makes_the_case_acknowledged_and_says_so_once():
    d = Desk()
    await d.desk.acknowledge(STREETSCENE, d.case.reference)
    assert d.stored().status == CaseStatus.ACKNOWLEDGED
    parts = {a.department: a.state for a in d.files.parts[d.case.case_id]}
    assert parts == {"streetscene": "acknowledged", "env-crime": "assigned"}
    (event,) = d.events()
    assert isinstance(event, CaseStatusChanged)
    assert (event.status, event.department, event.actor) == (CaseStatus.ACKNOWLEDGED, "streetscene", "s1")
    # The other department's acknowledgement: its part changes, the case's status stays as it is.
    await d.desk.acknowledge(ENV_CRIME, d.case.reference)
    assert d.stored().status == CaseStatus.ACKNOWLEDGED
    assert all(a.state == "acknowledged" for a in d.files.parts[d.case.case_id])
    assert [e.action for e in d.files.entries[d.case.case_id]] == ["acknowledged", "acknowledged"]


async def test_closing_stamps_the_resolution_and_publishes_status_changed_and_closed_in_one_unit():
    d = Desk()
    await d.desk.close(STREETSCENE, d.case.reference, resolution="fixed", note="Cleared today")
    stored = d.stored()
    assert (stored.status, stored.closed_at, stored.resolution) == (CaseStatus.CLOSED, NOW, "fixed")
    changed, closed = d.events()
    assert isinstance(changed, CaseStatusChanged)
    assert changed.status == CaseStatus.CLOSED
    assert isinstance(closed, CaseClosed)
    assert (closed.resolution, closed.note) == ("fixed", "Cleared today")
    assert d.uow.committed == 1


async def test_a_closed_case_is_neither_closed_again_nor_acknowledged_and_nothing_is_published():
    d = Desk()
    await d.desk.close(STREETSCENE, d.case.reference, resolution="no-further-action")
    published = len(d.uow.published)
    with pytest.raises(Conflict):
        await d.desk.close(STREETSCENE, d.case.reference, resolution="fixed")
    with pytest.raises(Conflict):
        await d.desk.acknowledge(STREETSCENE, d.case.reference)
    assert len(d.uow.published) == published
    assert d.uow.rolled_back == 2
    assert d.stored().resolution == "no-further-action"


async def test_staff_of_another_neighbourhood_may_not_change_the_case_and_an_unknown_reference_is_not_found():
    d = Desk()
    with pytest.raises(Forbidden):
        await d.desk.acknowledge(ELSEWHERE, d.case.reference)
    with pytest.raises(Forbidden):
        await d.desk.close(ELSEWHERE, d.case.reference, resolution="fixed")
    with pytest.raises(NotFound):
        await d.desk.close(STREETSCENE, "LV-2026-999999", resolution="fixed")
    assert d.stored().status == CaseStatus.OPEN
    assert d.uow.published == []
