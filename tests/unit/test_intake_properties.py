"""Properties of intake's validation (hypothesis): whatever arrives, the answer is a report or reasons,
never an exception; reasons never echo what was sent; valid input is always accepted.
"""

import json
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caseway_intake.domain.open311 import ServiceRequest, parse_service_request
from caseway_intake.domain.validation import Invalid, parse_contact_centre_event
from caseway_shared.contact_centre import ContactCentreReport
from caseway_shared.council import load_council

COUNCIL = load_council()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=8,
)
# The machine running the suite is shared: generation speed is not what these tests are about.
RELAXED = settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
FIELDS = ["source_system", "source_id", "channel", "received_at", "category", "location", "description"]


@RELAXED
@given(st.binary(max_size=2000))
def test_any_bytes_give_a_report_or_reasons(value):
    result = parse_contact_centre_event(value)
    assert isinstance(result, ContactCentreReport | Invalid)
    if isinstance(result, Invalid):
        assert result.reasons


@RELAXED
@given(
    st.dictionaries(st.sampled_from([*FIELDS, "reporter", "attachments", "extra"]), json_values, max_size=9)
)
def test_any_json_object_gives_a_report_or_reasons_naming_fields(document):
    result = parse_contact_centre_event(json.dumps(document).encode())
    assert isinstance(result, ContactCentreReport | Invalid)
    if isinstance(result, Invalid):
        assert all(":" in reason for reason in result.reasons)


MARKER = "QZXJ"


@given(
    lat=st.floats(min_value=-90, max_value=90, allow_nan=False),
    lon=st.floats(min_value=-180, max_value=180, allow_nan=False),
    description=st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        min_size=1,
        max_size=4000,
    ),
    source_id=st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=128),
    code=st.sampled_from(sorted(COUNCIL.categories)),
)
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_valid_reports_are_always_accepted(lat, lon, description, source_id, code):
    document = {
        "source_system": "cc",
        "source_id": source_id,
        "channel": "web",
        "received_at": "2026-11-23T09:00:00Z",
        "category": code,
        "location": {"lat": lat, "lon": lon},
        "description": description,
    }
    assert isinstance(parse_contact_centre_event(json.dumps(document).encode()), ContactCentreReport)


@RELAXED
@given(st.dictionaries(st.text(max_size=20), st.lists(st.text(max_size=50), max_size=3), max_size=12))
def test_any_form_gives_a_request_or_reasons(fields):
    result = parse_service_request(fields, COUNCIL)
    assert isinstance(result, ServiceRequest | Invalid)


@given(
    field=st.sampled_from(["lat", "long", "email", "phone", "description", "address_id", "media_url"]),
    junk=st.text(min_size=1, max_size=30),
)
def test_reasons_never_echo_the_value_sent(field, junk):
    value = f"{MARKER}{junk}" if field != "description" else MARKER * 1001
    fields = {"service_code": ["pothole"], "lat": ["53.4"], "long": ["-2.9"], field: [value]}
    result = parse_service_request(fields, COUNCIL)
    if isinstance(result, Invalid):
        assert not any(MARKER in reason for reason in result.reasons)


@given(st.floats(allow_nan=True, allow_infinity=True) | st.floats(min_value=90.0001, max_value=1e9))
def test_out_of_range_latitudes_are_refused(lat):
    if -90 <= lat <= 90:
        return
    result = parse_service_request({"service_code": ["pothole"], "lat": [repr(lat)], "long": ["0"]}, COUNCIL)
    assert isinstance(result, Invalid)
