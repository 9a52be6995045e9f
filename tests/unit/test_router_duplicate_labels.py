"""Staff decisions about duplicates become labels for the detector (issue 17 item 5), through the staff
desk's unit of work on in-memory case files: the same `StaffDesk` code as the staff pages and API run.
tests/integration/router/test_duplicate_labels.py proves them against PostgreSQL, with linking and
unlinking by hand."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from caseway_router.adapters.case_files import HistoryEntry
from caseway_router.adapters.memory import MemoryCaseFiles
from caseway_router.domain.access import StaffMember, TeamScope
from caseway_router.domain.casefile import Label, detector_verdict, label
from caseway_router.domain.casework import Verdict
from caseway_router.staff import Conflict, StaffDesk
from caseway_shared.council import load_council
from caseway_shared.events import CaseStatus
from caseway_shared.unit_of_work import InMemoryUnitOfWork
from factories import case_row

NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)
HOOD = "N01"
STREETSCENE = StaffMember(
    "s1", "Sam", teams=(TeamScope("streetscene-n01", "Streetscene N01", "streetscene", frozenset({HOOD})),)
)


class Desk:
    """Two cases: `first`, and `second`, opened by a report routing flagged as possibly `first`'s problem."""

    def __init__(self) -> None:
        self.files = MemoryCaseFiles()
        self.first, self.second = case_row("LV-2026-000001", at=NOW), case_row("LV-2026-000002", at=NOW)
        self.second = replace(self.second, flags=("possible-duplicate",))
        for case in (self.first, self.second):
            self.files.add(case, departments=("streetscene",))
        self.first_report, self.flagged_report = uuid.uuid4(), uuid.uuid4()
        self.files.add_report(self.first.case_id, self.first_report, decision=Verdict("new", None, 0.0))
        self.flagged = Verdict("review", self.first.case_id, 0.012)
        self.files.add_report(self.second.case_id, self.flagged_report, decision=self.flagged)
        self.files.entries[self.second.case_id] = [
            HistoryEntry(NOW, "caseway-router", "opened", {"report_id": str(self.flagged_report)}),
            HistoryEntry(
                NOW,
                "caseway-router",
                "flagged",
                {
                    "flag": "possible-duplicate",
                    "reason": f"may be the same problem as {self.first.reference} (score 0.012)",
                },
            ),
        ]
        self.metrics = CollectorRegistry()
        self.uow = InMemoryUnitOfWork(self.files)
        self.desk = StaffDesk(
            unit_of_work=self.uow,
            council=load_council(),
            topic=lambda topic: topic.value,
            clock=lambda: NOW,
            metrics=self.metrics,
        )

    def judged(self, family: str, verdict: str) -> float | None:
        return self.metrics.get_sample_value(f"caseway_router_{family}_judged_total", {"verdict": verdict})

    def labels(self) -> list[Label]:
        return [label for _, _, label in self.files.labels]


async def test_rejecting_a_possible_duplicate_labels_the_flagged_report_and_case_apart_with_the_flags_score():
    d = Desk()
    assert (d.judged("flags", "different"), d.judged("links", "undone")) == (0.0, 0.0)  # exported from 0
    await d.desk.review_duplicate(STREETSCENE, d.second.reference, other=d.first.reference, same=False)
    assert d.files.labels == [
        (
            NOW,
            "s1",
            Label(
                report_id=d.flagged_report,
                case_id=d.first.case_id,
                report_case_id=d.second.case_id,
                same_problem=False,
                decision="duplicate-rejected",
                detector="flagged",
                score=0.012,
            ),
        )
    ]
    assert d.files.cases[d.second.reference].flags == ()
    assert (d.judged("flags", "different"), d.judged("flags", "same")) == (1.0, 0.0)
    # Reviewed once: a second answer is refused, labels nothing and counts nothing.
    with pytest.raises(Conflict):
        await d.desk.review_duplicate(STREETSCENE, d.second.reference, other=d.first.reference, same=False)
    assert len(d.files.labels) == 1
    assert d.judged("flags", "different") == 1.0


async def test_closing_a_case_keeps_the_routers_links_to_it_once_and_counts_them_kept():
    d = Desk()
    linked, by_hand = uuid.uuid4(), uuid.uuid4()
    d.files.add_report(d.first.case_id, linked, decision=Verdict("link", d.first.case_id, 0.41, None))
    # Routed into another case, then moved here by staff: not the router's link.
    d.files.add_report(d.first.case_id, by_hand, decision=Verdict("new", None, 0.0))
    await d.desk.close(STREETSCENE, d.first.reference, resolution="fixed")
    assert d.labels() == [
        Label(
            report_id=linked,
            case_id=d.first.case_id,
            report_case_id=d.first.case_id,
            same_problem=True,
            decision="case-closed",
            detector="linked",
            score=0.41,
        )
    ]
    assert (d.judged("links", "kept"), d.judged("links", "undone")) == (1.0, 0.0)
    # Reopened and closed again: the link was judged already.
    await d.files.set_status(d.first.case_id, CaseStatus.OPEN, at=NOW)
    await d.desk.close(STREETSCENE, d.first.reference, resolution="fixed")
    assert len(d.labels()) == 1
    assert d.judged("links", "kept") == 1.0


def test_a_label_says_what_the_detector_had_decided_about_its_pair():
    case, other = uuid.uuid4(), uuid.uuid4()
    assert detector_verdict(Verdict("link", case, 0.2, "uprn"), case) == ("linked", 0.2, "uprn")
    assert detector_verdict(Verdict("link", other, 0.2), case) == ("apart", None, None)
    assert detector_verdict(Verdict("review", case, 0.01), case) == ("flagged", 0.01, None)
    assert detector_verdict(Verdict("new", None, 0.001), case) == ("apart", None, None)
    assert detector_verdict(None, case) == ("unknown", None, None)  # routed before decisions were kept
    made = label(
        uuid.uuid4(), case, same=False, decision="report-unlinked", verdict=None, report_case_id=case
    )
    assert (made.detector, made.score, made.same_problem) == ("unknown", None, False)
