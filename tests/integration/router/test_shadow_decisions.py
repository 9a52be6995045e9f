"""Shadow mode against the real PostgreSQL (issue 17 item 6): the router's own service routes reports with
a shadow configuration, on a database of its own as the router's role; router.shadow_decisions holds what
the shadow would have decided beside each report's live decision (router.reports.decision), the cases are
the live rules' alone, and the comparison command reads both with staff's labels."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from caseway_router.domain.duplicates import RuleChanges, Shadow
from caseway_router.research import shadow
from tests.integration.router.test_duplicate_labels import MANAGER, T0, _reference, _report, router_database

pytestmark = pytest.mark.infra
EAGER = Shadow("eager", RuleChanges(link_threshold=0.01))


async def test_the_shadows_decisions_are_recorded_beside_the_live_ones_and_the_cases_are_the_live_rules(
    infra,
):
    del infra  # the stack must be up; the database is this test's own
    async with router_database("caseway_shadow", shadow=EAGER) as (router, db):
        a, b, d = _report(0), _report(5), _report(-3)
        x = _report(35, at=T0 + timedelta(hours=36), category="litter", description="Broken glass all over")
        await router.route(a, b)
        await router.route(d)
        await router.route(x)
        first = await db.fetchval("SELECT case_id FROM router.reports WHERE report_id = $1", a.report_id)
        rows = {
            row["report_id"]: row
            for row in await db.fetch(
                "SELECT s.report_id, s.shadow, s.category, s.decision, s.case_id, s.score,"
                " r.decision AS live, r.decision_case_id AS live_case_id, r.decision_score AS live_score"
                " FROM router.shadow_decisions s JOIN router.reports r USING (report_id)"
            )
        }
        assert set(rows) == {a.report_id, b.report_id, d.report_id, x.report_id}
        assert {row["shadow"] for row in rows.values()} == {"eager"}
        assert [(rows[r.report_id]["live"], rows[r.report_id]["decision"]) for r in (a, b, d, x)] == [
            ("new", "new"),
            ("link", "link"),
            ("link", "link"),
            ("review", "link"),
        ]
        litter = rows[x.report_id]
        assert (litter["case_id"], litter["live_case_id"], litter["category"]) == (first, first, "litter")
        assert litter["score"] == pytest.approx(litter["live_score"])
        # The live rules decided: the litter has a case of its own, flagged; the fly-tip's case has three.
        assert await _reference(db, x.report_id) != await _reference(db, a.report_id)
        cases = await db.fetch("SELECT reports_count, flags FROM router.cases ORDER BY reference")
        assert [(c["reports_count"], list(c["flags"])) for c in cases] == [
            (3, []),
            (1, ["possible-duplicate"]),
        ]


async def test_the_comparison_gives_the_agreement_and_judges_both_on_staffs_labels(infra, capsys):
    del infra
    async with router_database("caseway_shadow", shadow=EAGER) as (router, db):
        a, b, d = _report(0), _report(5), _report(-3)
        x = _report(35, at=T0 + timedelta(hours=36), category="litter", description="Broken glass all over")
        for report in (a, b, d, x):
            await router.route(report)
        # Staff say the litter was the fly-tip's problem: the live rules only flagged it, the shadow linked.
        await router.desk.review_duplicate(
            MANAGER, await _reference(db, x.report_id), other=await _reference(db, a.report_id), same=True
        )
        capsys.readouterr()  # the routing's logs
        # The command as an operator runs it (its own event loop, so in a thread of its own here).
        await asyncio.to_thread(shadow.main, ["--database-url", router.url, "--shadow", "eager"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith('shadow "eager": 4 reports routed ')
    assert "agreement: 3 of 4 (0.750)" in lines[1]
    table = {line.split("|")[0].strip(): line.split("|")[1].split() for line in lines[2:6]}
    assert table["review"] == ["1", "0", "0"]
    assert "fly-tipping 3 of 3, litter 0 of 1" in lines[6]
    assert lines[7] == "  on staff's labels: 1 judged pairs of these reports"
    judged = {line.split("|")[0].strip(): line.split("|")[1:] for line in lines[8:12]}
    assert judged["flagged"][0].split() == ["1", "0"]  # live: flagged, and it was the same problem
    assert judged["linked"][1].split() == ["1", "0"]  # shadow: linked, rightly
    assert lines[-1] == "  precision of links on these pairs: live -, shadow 1.000"
