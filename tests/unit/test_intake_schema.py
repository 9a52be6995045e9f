"""The published JSON Schema of contact-centre.reports.v1 is the one the code enforces, and its example
is a valid report."""

import json

from caseway_intake.domain.validation import parse_contact_centre_event
from caseway_intake.entrypoints.schemas import CONTACT_CENTRE_FILE, SCHEMAS_DIR, contact_centre_schema, render
from caseway_shared.contact_centre import ContactCentreReport


def test_the_stored_schema_matches_the_model():
    stored = (SCHEMAS_DIR / CONTACT_CENTRE_FILE).read_text()
    assert stored == render(), "stale: run `uv run python -m caseway_intake.entrypoints.schemas`"


def test_the_schema_documents_every_field_and_its_examples_are_valid():
    schema = contact_centre_schema()
    assert schema["title"] == "Contact-centre report (v1)"
    for name, field in schema["properties"].items():
        assert field.get("description"), f"{name} has no description"
    for example in schema["examples"]:
        assert isinstance(parse_contact_centre_event(json.dumps(example).encode()), ContactCentreReport)
