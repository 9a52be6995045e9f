"""The fault suite's scenarios are what they say: the load mixes reports given by address alone with
reports given with coordinates."""

from __future__ import annotations

import json

from caseway_ops.loadtest.generator import GeneratedReport, LoadGenerator
from caseway_shared.council import load_council


def _location(report: GeneratedReport) -> dict[str, object]:
    return json.loads(report.value)["location"]


def _address(report: GeneratedReport) -> str:
    if report.path == "kafka":
        return str(_location(report)["address"])
    return report.fields["address_string"]


def test_the_load_mixes_address_only_reports_with_coordinate_reports_of_the_same_problems() -> None:
    generator = LoadGenerator(load_council(), seed=3, http_share=0.2, address_only_share=0.3)
    reports = [generator.next() for _ in range(3000)]
    valid = [r for r in reports if r.valid]
    address_only = [r for r in valid if r.address_only]
    assert 0.2 < len(address_only) / len(valid) < 0.45
    for report in address_only:
        if report.path == "kafka":
            assert "lat" not in _location(report)
            assert _location(report)["address"]
        else:
            assert "lat" not in report.fields
            assert report.fields["address_string"]
    kafka_only = [r for r in address_only if r.path == "kafka"]
    assert any("ward_code" in _location(r) for r in kafka_only)
    assert any("ward_code" not in _location(r) for r in kafka_only)

    # The same problem (its address) reported both ways.
    told: dict[str, set[bool]] = {}
    for report in valid:
        told.setdefault(_address(report), set()).add(report.address_only)
    assert sum(1 for ways in told.values() if ways == {True, False}) > 50


def test_without_address_only_reports_the_load_is_what_it_always_was() -> None:
    council = load_council()
    plain = LoadGenerator(council, seed=5)
    explicit = LoadGenerator(council, seed=5, address_only_share=0.0)
    for _ in range(500):
        a, b = plain.next(), explicit.next()
        assert (a.fields, a.address_only, b.address_only) == (b.fields, False, False)
        if a.valid and a.path == "kafka":
            assert {**json.loads(a.value), "received_at": ""} == {**json.loads(b.value), "received_at": ""}
            assert {"lat", "lon"} <= _location(a).keys()
