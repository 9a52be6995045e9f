"""The detector measured on staff's labels (research.labels, issue 17 item 5), pure: the latest judgement
of each pair counts, the precision of automatic links and flags, and what other link thresholds would have
done to the pairs the detector scored."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from caseway_router.adapters.detector_records import StoredLabel
from caseway_router.domain.casefile import Label
from caseway_router.research.labels import Judged, by_detector, by_threshold, latest, report_lines

AT = datetime(2026, 11, 23, 10, tzinfo=UTC)
CASE = uuid.uuid4()


def _stored(minutes: int, *, same: bool, detector: str, score: float | None = None, report=None, key=None):
    return StoredLabel(
        at=AT + timedelta(minutes=minutes),
        actor="s1",
        label=Label(
            report_id=report or uuid.uuid4(),
            case_id=CASE,
            report_case_id=CASE,
            same_problem=same,
            decision="report-unlinked" if not same else "case-closed",
            detector=detector,
            score=score,
            key=key,
        ),
    )


def test_the_latest_judgement_of_a_pair_counts_and_unknown_verdicts_are_apart():
    changed_mind = uuid.uuid4()
    stored = [
        _stored(0, same=False, detector="linked", score=0.5, report=changed_mind),
        _stored(5, same=True, detector="linked", score=0.5, report=changed_mind),
        _stored(6, same=False, detector="linked", score=0.04),
        _stored(7, same=True, detector="flagged", score=0.02),
        _stored(8, same=False, detector="flagged", score=0.006),
        _stored(9, same=True, detector="apart"),
        _stored(10, same=True, detector="unknown"),
    ]
    labels = latest(stored)
    assert len(labels) == 6
    counts = by_detector(labels)
    assert counts["linked"] == Judged(same=1, different=1)
    assert counts["linked"].share(same=True) == 0.5  # the precision of automatic links
    assert counts["flagged"] == Judged(same=1, different=1)
    assert counts["apart"] == Judged(same=1, different=0)  # a miss
    assert counts["unknown"].total == 1
    rows = {row.threshold: row for row in by_threshold(labels, (0.005, 0.03, 0.1))}
    assert (rows[0.03].linked, rows[0.03].precision) == (Judged(1, 1), 0.5)
    assert rows[0.1].linked == Judged(1, 0)
    assert rows[0.005].linked == Judged(2, 2)
    # Three pairs were the same problem (unknown left out); the one kept apart is missed at any threshold.
    assert rows[0.005].recall == 2 / 3


def test_a_certain_link_stays_linked_at_every_threshold():
    certain = _stored(0, same=True, detector="linked", score=0.02, key="uprn")
    (row,) = by_threshold(latest([certain]), (0.5,))
    assert row.linked == Judged(1, 0)


def test_the_table_names_what_it_shows():
    lines = report_lines([_stored(0, same=True, detector="linked", score=0.2)])
    assert lines[0].startswith("staff labels: 1 judgements of 1 pairs")
    assert any("precision of automatic links" in line and "1.000" in line for line in lines)
    assert any(line.split("|")[0].strip() == "0.03" for line in lines)
