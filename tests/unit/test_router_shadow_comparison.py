"""The shadow comparison (research.shadow, issue 17 item 6), pure: agreement between the live detector and a
shadow on the recorded decisions, by outcome and category, and each judged against staff's labels."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from caseway_router.adapters.detector_records import ShadowRecord
from caseway_router.domain.casefile import Label
from caseway_router.domain.casework import Verdict
from caseway_router.research.labels import Judged
from caseway_router.research.shadow import compare, report_lines

AT = datetime(2026, 11, 23, 10, tzinfo=UTC)
CASE, OTHER = uuid.uuid4(), uuid.uuid4()


def _record(n: int, live: Verdict, shadow: Verdict, *, category: str = "fly-tipping", name: str = "eager"):
    return ShadowRecord(
        shadow=name,
        report_id=uuid.UUID(int=n),
        routed_at=AT + timedelta(minutes=n),
        category=category,
        live=live,
        verdict=shadow,
    )


def _label(n: int, case: uuid.UUID, *, same: bool) -> Label:
    return Label(
        report_id=uuid.UUID(int=n),
        case_id=case,
        report_case_id=None,
        same_problem=same,
        decision="duplicate-confirmed",
        detector="flagged",
    )


def test_agreement_counts_the_same_outcome_about_the_same_case_and_labels_judge_each_side():
    records = [
        _record(1, Verdict("new", None, 0.0), Verdict("new", None, 0.0)),
        _record(2, Verdict("link", CASE, 0.4), Verdict("link", CASE, 0.4)),
        # The live rules flagged it; the shadow would have linked it.
        _record(3, Verdict("review", CASE, 0.013), Verdict("link", CASE, 0.013), category="litter"),
        # Both link, to different cases.
        _record(4, Verdict("link", CASE, 0.2), Verdict("link", OTHER, 0.25)),
        _record(5, Verdict("link", CASE, 0.2), Verdict("new", None, 0.2), name="strict"),
    ]
    labels = [_label(3, CASE, same=True), _label(4, CASE, same=False), _label(9, CASE, same=True)]
    eager, strict = compare(records, labels)
    assert (eager.shadow, eager.reports, eager.agreed, eager.agreement) == ("eager", 4, 2, 0.5)
    assert eager.outcomes[("review", "link")] == 1
    assert eager.outcomes[("link", "link")] == 2
    assert eager.other_case == 1
    assert eager.by_category == {"fly-tipping": Judged(2, 1), "litter": Judged(0, 1)}
    # Report 3 (the same problem as CASE): live flagged it, the shadow linked it, rightly. Report 4 (not
    # CASE's problem): live linked it wrongly, the shadow linked it elsewhere, so kept it apart from CASE.
    assert eager.labelled == 2
    assert eager.live_on_labels == {"flagged": Judged(1, 0), "linked": Judged(0, 1)}
    assert eager.shadow_on_labels == {"linked": Judged(1, 0), "apart": Judged(0, 1)}
    assert (strict.reports, strict.agreed, strict.labelled) == (1, 0, 0)


def test_the_comparison_prints_agreement_the_outcome_table_and_the_labels():
    records = [
        _record(1, Verdict("new", None, 0.0), Verdict("new", None, 0.0)),
        _record(3, Verdict("review", CASE, 0.013), Verdict("link", CASE, 0.013)),
    ]
    (comparison,) = compare(records, [_label(3, CASE, same=True)])
    lines = report_lines(comparison)
    assert lines[0].startswith('shadow "eager": 2 reports routed 2026-11-23 10:01')
    assert "agreement: 1 of 2 (0.500)" in lines[1]
    table = {line.split("|")[0].strip(): line.split("|")[1].split() for line in lines[2:6]}
    assert table["review"] == ["1", "0", "0"]  # live review, shadow link
    assert table["new"] == ["0", "0", "1"]
    assert lines[-1] == "  precision of links on these pairs: live -, shadow 1.000"
