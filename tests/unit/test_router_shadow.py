"""Shadow mode (issue 17 item 6): another detector configuration decides beside the live one over the same
candidates, its decision is recorded with the report's routing, and nothing it decides changes a case.
Through `RouterService` on routing's in-memory repository (the same service code as production), and the
settings that name a shadow. tests/integration/router/test_shadow_decisions.py proves the records on
PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from caseway_router.adapters.memory import MemoryRoutingStore
from caseway_router.domain.casework import Verdict
from caseway_router.domain.duplicates import DuplicateRules, RuleChanges, Shadow
from caseway_router.domain.places import PlaceFinder
from caseway_router.service import RouterService
from caseway_router.settings import RouterSettings
from caseway_shared.council import load_council
from caseway_shared.events import CASE_EVENT
from caseway_shared.unit_of_work import InMemoryUnitOfWork
from factories import BOLD_STREET, METRE, as_record, report_received

COUNCIL = load_council()
PLACES = PlaceFinder(COUNCIL)
NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)
T0 = NOW - timedelta(hours=36)
EAGER = Shadow("eager", RuleChanges(link_threshold=0.01))


class Router:
    def __init__(self, shadow: Shadow | None = None) -> None:
        self.store = MemoryRoutingStore()
        self.uow = InMemoryUnitOfWork(self.store)
        self.service = RouterService(
            unit_of_work=self.uow,
            council=COUNCIL,
            places=PLACES,
            topic=lambda topic: topic.value,
            clock=lambda: NOW,
            shadow=shadow,
        )

    async def route(self, *reports):
        await self.service.handle_reports_batch([as_record(r, offset=i) for i, r in enumerate(reports)])

    def events(self):
        return [CASE_EVENT.validate_json(message.payload) for message in self.uow.published]


def _reports():
    """A fly-tip reported three times (5 m and 3 m apart), then litter 35 m away 36 h later: a case the
    live rules flag as a possible duplicate (score about 0.013, under the link threshold of 0.03)."""
    fly_tip = [report_received(received_at=T0, lat=BOLD_STREET[0] + m * METRE) for m in (0, 5, -3)]
    litter = report_received(
        received_at=NOW,
        category="litter",
        lat=BOLD_STREET[0] + 35 * METRE,
        description="Broken glass all over",
    )
    return [*fly_tip, litter]


async def test_a_shadow_records_what_it_would_have_decided_beside_the_live_decision_and_changes_nothing():
    reports = _reports()
    live_only, shadowed = Router(), Router(EAGER)
    for router in (live_only, shadowed):
        await router.route(*reports[:2])  # two in one batch: the shadow sees the batch's own new case too
        await router.route(*reports[2:])
    # The same cases, reports and events as without a shadow.
    assert [(c.row.reports_count, c.row.flags) for c in shadowed.store.cases.values()] == [
        (c.row.reports_count, c.row.flags) for c in live_only.store.cases.values()
    ]
    assert [type(e).__name__ for e in shadowed.events()] == [type(e).__name__ for e in live_only.events()]
    assert [(r.decision.outcome if r.decision else None) for r in shadowed.store.reports.values()] == [
        "new",
        "link",
        "link",
        "review",
    ]
    first = shadowed.store.reports[reports[0].report_id].case_id
    recorded = {d.report_id: d for d in shadowed.store.shadow_decisions}
    assert set(recorded) == {r.report_id for r in reports}
    assert {d.shadow for d in recorded.values()} == {"eager"}
    assert recorded[reports[0].report_id].verdict.outcome == "new"
    assert recorded[reports[1].report_id].verdict == shadowed.store.reports[reports[1].report_id].decision
    live = shadowed.store.reports[reports[3].report_id].decision
    assert live is not None
    assert (live.outcome, live.case_id) == ("review", first)
    # Where the live rules flagged the litter, the eager shadow would have linked it to the fly-tip's case.
    eager = recorded[reports[3].report_id]
    assert (eager.verdict.outcome, eager.verdict.case_id, eager.category) == ("link", first, "litter")
    assert eager.verdict.score == pytest.approx(live.score)
    assert live_only.store.shadow_decisions == []


async def test_without_a_shadow_each_report_still_keeps_its_live_decision_only():
    router = Router()
    await router.route(*_reports())
    assert router.store.shadow_decisions == []
    assert all(isinstance(r.decision, Verdict) for r in router.store.reports.values())


def test_a_shadows_changes_apply_to_each_categorys_live_rules():
    live = DuplicateRules(radius_m=60, window_hours=168, link_threshold=0.03, location_sigma_m=15)
    changes = RuleChanges(review_threshold=0.01, half_life_share=0.25, radius_scale=0.5)
    shadow = changes.applied_to(live)
    assert (shadow.radius_m, shadow.review_threshold, shadow.half_life_share) == (30, 0.01, 0.25)
    assert (shadow.link_threshold, shadow.location_sigma_m, shadow.window_hours) == (0.03, 15, 168)
    assert changes.describe() == "review_threshold=0.01,half_life_share=0.25,radius_scale=0.5"
    assert RuleChanges().applied_to(live) == live


def test_the_router_setting_names_a_shadow_and_refuses_one_that_would_need_a_search_of_its_own(monkeypatch):
    assert RouterSettings().duplicate_shadow is None
    monkeypatch.setenv("CASEWAY_ROUTER_DUPLICATE_SHADOW", '{"link_threshold": 0.02, "radius_scale": 0.8}')
    settings = RouterSettings()
    assert settings.duplicate_shadow is not None
    shadow = settings.duplicate_shadow.shadow()
    assert shadow == Shadow(
        "link_threshold=0.02,radius_scale=0.8", RuleChanges(link_threshold=0.02, radius_scale=0.8)
    )
    monkeypatch.setenv("CASEWAY_ROUTER_DUPLICATE_SHADOW", '{"name": "trial-1", "half_life_share": 0.3}')
    assert RouterSettings().duplicate_shadow.shadow().name == "trial-1"
    # A wider radius than the live one would need candidates the live search does not find.
    monkeypatch.setenv("CASEWAY_ROUTER_DUPLICATE_SHADOW", '{"radius_scale": 1.5}')
    with pytest.raises(ValidationError, match="radius_scale"):
        RouterSettings()
