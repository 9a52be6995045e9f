"""Residents' data, the pure part (issue 13 item 6): sealing contact details, keyed public ids, body
fingerprints, coarse locations on private property, the council's private categories, the dead-letter
hook and the production profile's refusal of the development keys."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from caseway_intake.domain.open311 import RequestView, request_entry
from caseway_intake.domain.privacy import (
    DEVELOPMENT_CONTACT_KEY,
    DEVELOPMENT_PUBLIC_ID_KEY,
    SEALED_PREFIX,
    PublicIds,
    Sealer,
    UnsealError,
)
from caseway_intake.service import Rejection
from caseway_intake.settings import IntakeSettings
from caseway_shared.consuming import DeadLetters
from caseway_shared.council import load_council
from caseway_shared.events import report_id_for
from caseway_shared.kafka import Record

COUNCIL = load_council()
REPORTER = {"name": "Ann Resident", "email": "ann@example.net", "phone": "0151 123 4567"}
EVENT = {
    "source_system": "liverpool-direct",
    "source_id": "LD-1",
    "description": "Bins",
    "reporter": REPORTER,
}


def test_the_reporter_is_sealed_the_rest_stays_readable_and_unsealing_gives_it_back():
    sealer = Sealer([Fernet.generate_key().decode()])
    value = json.dumps(EVENT).encode()
    sealed = sealer.seal(value)
    for secret in ("Ann Resident", "ann@example.net", "0151 123 4567"):
        assert secret.encode() not in sealed
    document = json.loads(sealed)
    assert document["source_id"] == "LD-1"
    assert set(document["reporter"]) == {"sealed"}
    assert json.loads(sealer.unseal(sealed)) == EVENT
    assert sealer.seal(sealed) == sealed  # sealed once only
    assert sealer.unseal(value) == value  # a record sent as it came is left alone


def test_a_value_that_is_not_a_json_object_is_sealed_whole():
    sealer = Sealer([Fernet.generate_key().decode()])
    garbage = b"name=Ann Resident; not json"
    sealed = sealer.seal(garbage)
    assert sealed.startswith(SEALED_PREFIX)
    assert b"Ann" not in sealed
    assert sealer.unseal(sealed) == garbage


def test_only_a_holder_of_the_key_unseals_and_keys_rotate():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed = Sealer([old]).seal(json.dumps(EVENT).encode())
    with pytest.raises(UnsealError):
        Sealer([new]).unseal(sealed)
    assert json.loads(Sealer([new, old]).unseal(sealed)) == EVENT


def test_a_rejection_carries_what_it_was_given_sealed():
    sealer = Sealer([DEVELOPMENT_CONTACT_KEY])
    rejection = Rejection(
        reasons=("location: bad",),
        original=sealer.seal(json.dumps(EVENT).encode()),
        source={},
        key="LD-1",
        kind="invalid",
    )
    assert b"ann@example.net" not in rejection.payload()


def test_public_ids_are_keyed_and_turn_back_into_report_ids():
    ids, other = PublicIds("k" * 40), PublicIds("o" * 40)
    report_id = report_id_for("liverpool-direct", "LD-2026-000123")
    public = ids.public_id(report_id, "liverpool-direct")
    assert public != str(report_id)
    assert public != other.public_id(report_id, "liverpool-direct")
    assert report_id in ids.candidates(public)
    assert ids.candidates("not-a-uuid") == []
    # An Open311 request's own id is random or keyed: shown as it is.
    request_id = ids.request_id("open311", "seed/client-key-1")
    assert request_id == ids.request_id("open311", "seed/client-key-1")
    assert request_id != other.request_id("open311", "seed/client-key-1")
    assert request_id != report_id_for("open311", "seed/client-key-1")
    assert ids.public_id(request_id, "open311") == str(request_id)


def test_the_body_digest_tells_bodies_apart_and_ignores_the_api_key():
    ids = PublicIds("k" * 40)
    body = {"service_code": ["graffiti"], "email": ["ann@example.net"], "api_key": ["one"]}
    assert ids.body_digest(body) == ids.body_digest({**body, "api_key": ["two"]})
    assert ids.body_digest(body) != ids.body_digest({**body, "email": ["bob@example.net"]})
    assert ids.body_digest(body, [b"photo"]) != ids.body_digest(body, [b"other photo"])
    assert b"ann" not in ids.body_digest(body)


def _view(place: dict[str, object]) -> RequestView:
    return RequestView(
        report_id=uuid.uuid4(),
        event={
            "source_system": "open311",
            "category": "fly-tipping",
            "received_at": "2026-11-23T09:00:00+00:00",
            "description": "Bags",
            "place": place,
        },
        accepted_at=datetime(2026, 11, 23, tzinfo=UTC),
    )


def test_a_report_on_private_property_shows_a_coarse_location_only():
    street = {"point": {"lat": 53.40123, "lon": -2.97456}, "address": "Bold St", "postcode": "L1 4DN"}
    assert request_entry(_view(street), COUNCIL)["lat"] == 53.40123
    for private in (
        {**street, "land_type": "private"},
        {**street, "land_type": "housing"},
        {**street, "uprn": "1"},
    ):
        entry = request_entry(_view(private), COUNCIL, public_id="p")
        assert (entry["lat"], entry["long"]) == (53.401, -2.975)
        assert (entry["address"], entry["address_id"], entry["zipcode"]) == (None, None, "L1")
        assert entry["service_request_id"] == "p"


def test_liverpool_keeps_reports_about_people_and_homes_out_of_the_public_list():
    hidden = {code for code, category in COUNCIL.categories.items() if not category.public}
    assert hidden == {"asb", "noise", "private-housing", "social-housing"}
    assert COUNCIL.categories["pothole"].public


async def test_dead_letters_publish_what_the_hook_makes_of_the_value():
    sent: list[bytes] = []

    class Broker:
        async def publish(self, message: bytes, topic: str, *, key: bytes | None, headers: dict[str, str]):
            sent.append(message)

    sealer = Sealer([DEVELOPMENT_CONTACT_KEY])
    dead = DeadLetters(broker=Broker(), topic="ops.deadletter.v1", service="intake")
    dead.value_of = lambda record: sealer.seal(record.value)
    value = json.dumps(EVENT).encode()
    await dead.publish(Record("t", 0, 1, b"LD-1", value, {}, 0), error=ValueError("x"), attempts=3)
    assert b"ann@example.net" not in sent[0]
    assert sealer.unseal(sent[0]) == json.dumps(EVENT).encode()
    # Without the hook, as every other service: the value as it came.
    await DeadLetters(broker=Broker(), topic="d", service="router").publish(
        Record("t", 0, 1, None, value, {}, 0), error=ValueError("x"), attempts=1
    )
    assert sent[1] == value


def test_production_refuses_the_development_keys(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("CASEWAY_", "KAFKA_", "DATABASE_")):
            monkeypatch.delenv(name)
    settings = IntakeSettings()
    assert settings.public_id_key.get_secret_value() == DEVELOPMENT_PUBLIC_ID_KEY
    assert len(settings.service_production_problems()) == 2
    monkeypatch.setenv("CASEWAY_ENV", "production")
    with pytest.raises(ValidationError) as caught:
        IntakeSettings()
    assert "development contact key" in str(caught.value)
    assert "development public id key" in str(caught.value)
    assert DEVELOPMENT_CONTACT_KEY not in str(caught.value)
    monkeypatch.setenv("CASEWAY_INTAKE_CONTACT_KEYS", Fernet.generate_key().decode())
    monkeypatch.setenv("CASEWAY_INTAKE_PUBLIC_ID_KEY", "s" * 40)
    with pytest.raises(ValidationError) as caught:
        IntakeSettings()
    assert "development" not in str(caught.value)  # the other refusals (plaintext Kafka, ...) remain


def test_a_record_nested_too_deep_to_parse_is_sealed_whole_and_opens_again():
    from cryptography.fernet import Fernet  # noqa: PLC0415

    from caseway_intake.domain.privacy import Sealer  # noqa: PLC0415

    sealer = Sealer([Fernet.generate_key().decode()])
    deep = b"[" * 20_000 + b"]" * 20_000
    sealed = sealer.seal(deep)
    assert deep not in sealed
    assert sealer.unseal(sealed) == deep
