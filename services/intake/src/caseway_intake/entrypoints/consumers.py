"""intake's Kafka consumers: contact-centre reports in, case events (for Open311 statuses and updates)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from caseway_shared.events import report_id_for
from caseway_shared.topics import Topic

if TYPE_CHECKING:
    from caseway_intake.service import IntakeService
    from caseway_shared.kafka import Record
    from caseway_shared.runtime import ServiceRuntime


def subscribe_consumers(runtime: ServiceRuntime, service: IntakeService) -> None:
    runtime.subscribe(
        Topic.CONTACT_CENTRE_REPORTS,
        service.handle_contact_centre_batch,
        title="accept_contact_centre_reports",
        description="Validates contact-centre reports; publishes ReportReceived or a rejection with reasons.",
        correlate=correlation_of,
    )
    runtime.subscribe(
        Topic.CASES,
        service.handle_case_events,
        title="follow_case_status",
        description="Keeps each report's Open311 status, status notes and updates in step with its case.",
    )


def correlation_of(record: Record) -> str | None:
    """The correlation id a contact-centre record will have (its report id), for tracing; None when the
    record is not readable enough to say."""
    try:
        document = json.loads(record.value)
        return str(report_id_for(str(document["source_system"]), str(document["source_id"])))
    except (ValueError, TypeError, KeyError):
        return None
