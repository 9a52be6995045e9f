"""Caseway's AsyncAPI 3.0 document, generated from the code: the topic catalogue, the pydantic event
models and the standard headers. `caseway asyncapi --write` stores it as shared/asyncapi.json; a test
fails when the stored document and the code disagree; every service serves it at /asyncapi.json.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic.json_schema import models_json_schema

from caseway_shared import headers as h
from caseway_shared.contact_centre import ContactCentreReport
from caseway_shared.events import (
    CaseAssigned,
    CaseClosed,
    CaseFlagged,
    CaseNoteAdded,
    CaseOpened,
    CaseStatusChanged,
    CaseUnassigned,
    DuplicateReviewed,
    Heartbeat,
    NotificationFailed,
    NotificationSent,
    NotificationSuppressed,
    ReportLinked,
    ReportReceived,
    ReportRejected,
    ReportUnlinked,
    ResidentUpdateReceived,
)
from caseway_shared.topics import CATALOGUE, Topic
from caseway_shared.version import caseway_version

if TYPE_CHECKING:
    from pydantic import BaseModel

# None stands for "the original message, whatever it was" (dead letters keep the bytes they were given).
MESSAGES: dict[Topic, tuple[type[BaseModel] | None, ...]] = {
    Topic.CONTACT_CENTRE_REPORTS: (ContactCentreReport,),
    Topic.REPORTS_RECEIVED: (ReportReceived,),
    Topic.REPORTS_REJECTED: (ReportRejected,),
    Topic.REPORT_UPDATES: (ResidentUpdateReceived,),
    Topic.CASES: (
        CaseOpened,
        ReportLinked,
        CaseAssigned,
        CaseFlagged,
        CaseStatusChanged,
        CaseClosed,
        CaseUnassigned,
        CaseNoteAdded,
        ReportUnlinked,
        DuplicateReviewed,
    ),
    Topic.NOTIFICATIONS: (NotificationSent, NotificationFailed, NotificationSuppressed),
    Topic.DEADLETTER: (None,),
    Topic.HEARTBEAT: (Heartbeat,),
}

_STANDARD_HEADERS = {
    h.EVENT_ID: "Unique id of this message.",
    h.EVENT_TYPE: "The event's type, e.g. CaseOpened (also in the body as event_type).",
    h.SCHEMA_VERSION: "Version of the event's schema.",
    h.CORRELATION_ID: "The original report's id, kept across all three services.",
    h.PRODUCER: "The service that produced the message.",
}
_DEAD_LETTER_HEADERS = {
    h.ORIGINAL_TOPIC: "Topic the message was consumed from.",
    h.ORIGINAL_PARTITION: "Its partition.",
    h.ORIGINAL_OFFSET: "Its offset.",
    h.ERROR: "The last error, as type: message.",
    h.ATTEMPTS: "How many times it was tried.",
}


def _headers_schema(topic: Topic) -> dict[str, Any]:
    names = dict(_STANDARD_HEADERS)
    if topic is Topic.DEADLETTER:
        names.update(_DEAD_LETTER_HEADERS)
    if topic is Topic.REPORTS_REJECTED:
        names[h.ERROR] = "Every reason, joined by '; '."
    return {
        "type": "object",
        "properties": {name: {"type": "string", "description": text} for name, text in names.items()},
    }


def build_asyncapi() -> dict[str, Any]:
    """The whole document as a JSON-ready dict (stable ordering, so it diffs cleanly)."""
    models = sorted(
        {model for entries in MESSAGES.values() for model in entries if model is not None},
        key=lambda model: model.__name__,
    )
    _, definitions = models_json_schema(
        [(model, "serialization") for model in models], ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Any] = dict(sorted(definitions.get("$defs", {}).items()))
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for spec in CATALOGUE:
        channel_id = spec.topic.value.replace(".", "_")
        names = []
        for model in MESSAGES[spec.topic]:
            name = model.__name__ if model is not None else "DeadLetter"
            message_id = f"{channel_id}__{name}"
            messages[message_id] = {
                "name": name,
                "title": name,
                "contentType": "application/json" if model is not None else "application/octet-stream",
                "summary": (model.__doc__ or "").strip().splitlines()[0]
                if model is not None
                else "The original message's bytes, unchanged; provenance in the headers.",
                "headers": _headers_schema(spec.topic),
                "payload": {"$ref": f"#/components/schemas/{name}"} if model is not None else {},
                "bindings": {"kafka": {"key": {"type": "string", "description": spec.key}}},
            }
            names.append((name, message_id))
        channels[channel_id] = {
            "address": spec.topic.value,
            "description": spec.description,
            "messages": {name: {"$ref": f"#/components/messages/{mid}"} for name, mid in names},
            "bindings": {"kafka": {"topic": spec.topic.value, "partitions": spec.partitions, "replicas": 1}},
        }
        for action, who in (("send", spec.producer), ("receive", spec.consumer)):
            operations[f"{action}_{channel_id}"] = {
                "action": action,
                "title": f"{who} {action}s {spec.topic.value}",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "messages": [{"$ref": f"#/channels/{channel_id}/messages/{name}"} for name, _ in names],
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Caseway",
            "version": caseway_version(),
            "description": "Cross-department case routing for councils that work by neighbourhoods. Topic "
            "names may carry a deployment prefix (CASEWAY_TOPIC_PREFIX).",
            # The contract's own version (the topics' .v1 changes only for an incompatible change): what a
            # reader may rely on, and since when.
            "x-contract-version": CONTRACT_VERSION,
            "x-contract-changes": list(CONTRACT_CHANGES),
        },
        "defaultContentType": "application/json",
        "servers": {"local": {"host": "127.0.0.1:9092", "protocol": "kafka", "description": "Local stack"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


CONTRACT_VERSION = "1.1"
CONTRACT_CHANGES = (
    "1.0: the events of topics .v1.",
    (
        "1.1: CaseStatus, Priority and NotificationKind are enums (values unchanged); CaseOpened carries its "
        "flags, and an opening is that one event: CaseAssigned and CaseFlagged follow only later changes."
    ),
)


def render_asyncapi() -> str:
    return json.dumps(build_asyncapi(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    # `uv run python -m caseway_shared.asyncapi > shared/asyncapi.json` regenerates the stored document.
    print(render_asyncapi(), end="")  # noqa: T201
