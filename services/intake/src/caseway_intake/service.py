"""intake's work for a batch of contact-centre events: accept, reject with reasons, publish once."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from caseway_intake.normalise import AcceptedReport, normalise
from caseway_intake.store import insert_new_reports
from caseway_intake.validation import Invalid, parse_contact_centre_event
from caseway_shared import headers as h
from caseway_shared.outbox import OutboxMessage, enqueue
from caseway_shared.topics import Topic

if TYPE_CHECKING:
    from collections.abc import Sequence

    from caseway_shared.council import Council
    from caseway_shared.kafka import Record
    from caseway_shared.runtime import ServiceRuntime

log = structlog.get_logger(__name__)
SERVICE = "intake"


@dataclass(frozen=True, slots=True)
class Rejection:
    """What reports.rejected.v1 carries: the original bytes, every reason, and where it came from."""

    reasons: tuple[str, ...]
    original: bytes
    source: dict[str, Any]
    key: str | None

    def payload(self) -> bytes:
        try:
            original: dict[str, str] = {"encoding": "utf-8", "data": self.original.decode("utf-8")}
        except UnicodeDecodeError:
            original = {"encoding": "base64", "data": base64.b64encode(self.original).decode()}
        return json.dumps(
            {"reasons": list(self.reasons), "source": self.source, "original": original}
        ).encode()


class IntakeService:
    """Accepts reports, once each; everything it cannot accept is rejected with its reasons."""

    def __init__(self, *, runtime: ServiceRuntime, council: Council) -> None:
        self._runtime = runtime
        self._council = council

    async def accept(self, reports: Sequence[AcceptedReport]) -> set[Any]:
        """Store new reports and queue their ReportReceived events in one transaction; returns new ids."""
        unique = list({report.event.report_id: report for report in reports}.values())
        received_topic = self._runtime.topic(Topic.REPORTS_RECEIVED)
        async with self._runtime.pool.acquire() as connection, connection.transaction():
            new = await insert_new_reports(connection, unique)
            await enqueue(
                connection,
                "intake",
                [
                    OutboxMessage.for_event(
                        topic=received_topic,
                        key=str(report.event.report_id),
                        event=report.event,
                        correlation_id=str(report.event.report_id),
                        producer=SERVICE,
                    )
                    for report in unique
                    if report.event.report_id in new
                ],
            )
        if new:
            self._runtime.relay.wake()
        for report in unique:
            log.info(
                "report_accepted" if report.event.report_id in new else "report_already_accepted",
                report_id=str(report.event.report_id),
                correlation_id=str(report.event.report_id),
                category=report.event.category,
                channel=report.event.channel.value,
            )
        return new

    async def reject(self, rejections: Sequence[Rejection]) -> None:
        topic = self._runtime.topic(Topic.REPORTS_REJECTED)
        for rejection in rejections:
            headers = {
                h.EVENT_TYPE: "ReportRejected",
                h.SCHEMA_VERSION: h.SCHEMA_VERSION_1,
                h.PRODUCER: SERVICE,
                h.ERROR: "; ".join(rejection.reasons)[:2000],
                **{f"original-{name}": str(value) for name, value in rejection.source.items()},
            }
            await self._runtime.broker.publish(
                rejection.payload(),
                topic,
                key=rejection.key.encode() if rejection.key else None,
                headers=headers,
            )
            log.warning("report_rejected", reasons=list(rejection.reasons), **rejection.source)

    async def handle_contact_centre_batch(self, records: Sequence[Record]) -> None:
        """The handler of contact-centre.reports.v1: validate each record, then accept or reject it."""
        now = datetime.now(UTC)
        accepted: list[AcceptedReport] = []
        rejected: list[Rejection] = []
        for record in records:
            parsed = parse_contact_centre_event(record.value)
            if isinstance(parsed, Invalid):
                source = {**record.provenance(), "source_system": parsed.source_system}
                rejected.append(
                    Rejection(
                        reasons=parsed.reasons, original=record.value, source=source, key=parsed.source_id
                    )
                )
            else:
                accepted.append(normalise(parsed, self._council, now=now))
        await self.accept(accepted)
        await self.reject(rejected)
