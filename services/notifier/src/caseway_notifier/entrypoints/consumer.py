"""The consumer of cases.v1: records parsed (a record that cannot be is malformed: dead-lettered at once
by the batch consumer) and handed to the service layer with their correlation ids."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import ValidationError

from caseway_shared import headers as h
from caseway_shared.consuming import MalformedMessage
from caseway_shared.events import CASE_EVENT
from caseway_shared.topics import Topic

if TYPE_CHECKING:
    from collections.abc import Sequence

    from caseway_notifier.service.case_events import CaseEvents
    from caseway_shared.events import CaseEvent
    from caseway_shared.kafka import Record
    from caseway_shared.runtime import ServiceRuntime


def parse(record: Record) -> CaseEvent:
    try:
        return CASE_EVENT.validate_json(record.value)
    except ValidationError as error:
        raise MalformedMessage.from_validation_error(error) from error


def subscribe(runtime: ServiceRuntime, case_events: CaseEvents) -> None:
    async def handle_case_events_batch(records: Sequence[Record]) -> None:
        await case_events.handle([(parse(r), r.headers.get(h.CORRELATION_ID, "")) for r in records])

    runtime.subscribe(
        Topic.CASES,
        handle_case_events_batch,
        title="notify_teams",
        description="Keeps each case's state and plans the alerts and digest entries its events call for; "
        "a sender delivers them once.",
    )
