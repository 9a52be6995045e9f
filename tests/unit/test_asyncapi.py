"""The AsyncAPI document in the repository is the one the code generates, and it covers every topic and
every event the code defines."""

import inspect
import json
from pathlib import Path

from pydantic import BaseModel

from caseway_shared import events
from caseway_shared.asyncapi import build_asyncapi, render_asyncapi
from caseway_shared.topics import CATALOGUE

STORED = Path(__file__).resolve().parents[2] / "shared" / "asyncapi.json"


def test_the_stored_document_matches_the_code():
    assert STORED.read_text() == render_asyncapi(), (
        "shared/asyncapi.json is stale: run `uv run python -m caseway_shared.asyncapi > shared/asyncapi.json`"
    )


def test_every_topic_of_the_catalogue_is_a_channel_with_its_partitions():
    document = build_asyncapi()
    channels = {channel["address"]: channel for channel in document["channels"].values()}
    for spec in CATALOGUE:
        assert spec.topic.value in channels
        assert channels[spec.topic.value]["bindings"]["kafka"]["partitions"] == spec.partitions


def test_every_event_model_is_documented_with_the_standard_headers():
    document = build_asyncapi()
    documented = {message["name"] for message in document["components"]["messages"].values()}
    event_models = {
        name
        for name, model in inspect.getmembers(events, inspect.isclass)
        if issubclass(model, BaseModel) and "event_type" in model.model_fields
    }
    assert event_models <= documented
    for message in document["components"]["messages"].values():
        assert {"event-id", "event-type", "correlation-id", "producer"} <= set(
            message["headers"]["properties"]
        )
    json.dumps(document)  # serialisable as it stands
