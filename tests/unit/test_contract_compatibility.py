"""The contract grows by optional fields only, and readers tolerate fields they do not know (issue 11,
item 10).

- Every event model ignores unknown fields: an upstream system (or a router deployed before the notifier)
  that adds an optional field must not get every message rejected or dead-lettered.
- The event models' JSON schemas are compared with the snapshot committed in
  shared/schemas/contract.snapshot.json: removing a field, changing its type or making a field required
  fails here. Adding optional fields passes; record them in the snapshot with

      uv run python tests/unit/test_contract_compatibility.py --write
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from pydantic import BaseModel

from caseway_shared import contact_centre, events
from caseway_shared.asyncapi import build_asyncapi

SNAPSHOT = Path(__file__).resolve().parents[2] / "shared" / "schemas" / "contract.snapshot.json"
# What describes a field without being its type: wording and examples may change freely.
_WORDING = frozenset({"description", "title", "examples", "default"})


def current_schemas() -> dict[str, Any]:
    """Every message model's JSON schema (and the models they hold), by model name."""
    return dict(build_asyncapi()["components"]["schemas"])


def _shape(schema: Any) -> Any:
    """A schema without its wording: what a reader relies on."""
    if isinstance(schema, dict):
        return {key: _shape(value) for key, value in schema.items() if key not in _WORDING}
    if isinstance(schema, list):
        return [_shape(item) for item in schema]
    return schema


def incompatibilities(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What a reader built against `old` would trip over in `new` (or a writer built against `old`
    would fail to send): models or fields removed, fields retyped, fields newly required."""
    found = []
    for name, old_schema in sorted(old.items()):
        new_schema = new.get(name)
        if new_schema is None:
            found.append(f"{name}: removed")
            continue
        old_props = old_schema.get("properties", {})
        new_props = new_schema.get("properties", {})
        for field, old_field in sorted(old_props.items()):
            if field not in new_props:
                found.append(f"{name}.{field}: removed")
            elif _shape(old_field) != _shape(new_props[field]):
                found.append(f"{name}.{field}: type changed")
        newly_required = set(new_schema.get("required", ())) - set(old_schema.get("required", ()))
        found.extend(f"{name}.{field}: now required" for field in sorted(newly_required))
        found.extend(
            f"{name}: {key} changed"
            for key in ("type", "enum", "const")
            if _shape(old_schema.get(key)) != _shape(new_schema.get(key))
        )
    return found


def test_the_event_models_are_compatible_with_the_committed_snapshot() -> None:
    snapshot = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert incompatibilities(snapshot, current_schemas()) == [], (
        "an incompatible change to the wire contract: add a new topic version instead (.v2)"
    )


def test_the_snapshot_records_every_field_the_models_have() -> None:
    snapshot = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    # The other way round: what is in the code but not in the snapshot (an added optional field).
    added = incompatibilities(current_schemas(), snapshot)
    assert added == [], (
        "fields added to the contract are not in shared/schemas/contract.snapshot.json: run "
        "`uv run python tests/unit/test_contract_compatibility.py --write`"
    )


def test_removing_or_retyping_a_field_or_requiring_a_new_one_is_caught() -> None:
    old = {"Thing": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}}
    removed = {"Thing": {"type": "object", "properties": {"a": {"type": "string"}}}}
    retyped = {
        "Thing": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}
    }
    required = {
        "Thing": {
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "integer"}, "c": {"type": "string"}},
            "required": ["c"],
        }
    }
    grown = {
        "Thing": {
            "type": "object",
            "properties": {
                "a": {"type": "string", "description": "reworded"},
                "b": {"type": "integer"},
                "c": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            },
        }
    }
    assert incompatibilities(old, removed) == ["Thing.b: removed"]
    assert incompatibilities(old, retyped) == ["Thing.a: type changed"]
    assert incompatibilities(old, required) == ["Thing.c: now required"]
    assert incompatibilities(old, grown) == []
    assert incompatibilities(old, {}) == ["Thing: removed"]


def _models() -> list[type[BaseModel]]:
    return [
        value
        for module in (events, contact_centre)
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == module.__name__
    ]


@pytest.mark.parametrize("model", _models(), ids=lambda model: model.__name__)
def test_no_event_model_rejects_fields_it_does_not_know(model: type[BaseModel]) -> None:
    assert model.model_config.get("extra") != "forbid"


def test_a_contact_centre_report_with_a_new_optional_field_is_read() -> None:
    schema_extra: Any = contact_centre.ContactCentreReport.model_config["json_schema_extra"]
    example: dict[str, Any] = schema_extra["examples"][0]
    document = {**example, "priority_hint": "high", "location": {**example["location"], "what3words": "x"}}
    report = contact_centre.ContactCentreReport.model_validate(document)
    assert report.source_id == example["source_id"]


def test_a_case_event_with_a_new_optional_field_is_read() -> None:
    event = events.CaseFlagged(
        occurred_at=datetime(2026, 11, 23, 9, 14, tzinfo=UTC),
        case_id=uuid4(),
        reference="LV-2026-000001",
        flag="near-boundary",
        reason="12 m from a ward boundary",
    )
    document = {**event.model_dump(mode="json"), "added_later": {"anything": True}}
    document["place"] = {"lat": 53.4, "lon": -2.9, "new_hint": 1}
    assert events.CASE_EVENT.validate_python(document).event_type == "CaseFlagged"
    assert events.GeoPoint.model_validate({"lat": 53.4, "lon": -2.9, "accuracy_m": 5}).lat == 53.4


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit(__doc__)
    SNAPSHOT.write_text(json.dumps(current_schemas(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    sys.stdout.write(f"wrote {SNAPSHOT}\n")
