"""intake's work for a batch of contact-centre events: accept, reject with reasons, publish once."""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from pydantic import ValidationError

from caseway_intake.domain.categories import CategoryMatcher
from caseway_intake.domain.normalise import AcceptedReport, normalise
from caseway_intake.domain.open311 import ResidentUpdate
from caseway_intake.domain.privacy import (
    DEVELOPMENT_CONTACT_KEY,
    DEVELOPMENT_PUBLIC_ID_KEY,
    IdempotencyConflict,
    PublicIds,
    Sealer,
    UnsealError,
)
from caseway_intake.domain.updates import resident_action
from caseway_intake.domain.validation import (
    Invalid,
    RejectionKind,
    describe_errors,
    parse_contact_centre_event,
)
from caseway_shared import headers as h
from caseway_shared.consuming import MalformedMessage
from caseway_shared.events import CASE_EVENT, CaseEvent, ReportReceived, ResidentUpdateReceived
from caseway_shared.outbox import OutboxMessage
from caseway_shared.topics import Topic

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Sequence
    from uuid import UUID

    from caseway_intake.adapters.api_keys import ApiKeys
    from caseway_intake.adapters.store import IntakeStore
    from caseway_intake.domain.open311 import PostedUpdate, RequestView, UpdateView
    from caseway_shared.council import Council
    from caseway_shared.kafka import Record
    from caseway_shared.metrics import ServiceMetrics
    from caseway_shared.unit_of_work import UnitOfWork, Work

log = structlog.get_logger(__name__)
SERVICE = "intake"
MAX_GROUP_COMMIT = 500


def parse_case_event(record: Record) -> CaseEvent:
    """The case event in `record`; `MalformedMessage` (with every reason, no values) when it is none."""
    try:
        return CASE_EVENT.validate_json(record.value)
    except ValidationError as error:
        raise MalformedMessage(describe_errors(error)) from error


class SendRejection(Protocol):
    """Publishes one rejection without waiting for the broker; awaiting what it returns waits. Rejections
    go straight to their topic (no table change accompanies them, so no outbox)."""

    def __call__(
        self, body: bytes, topic: str, key: bytes | None, headers: dict[str, str]
    ) -> Awaitable[Awaitable[Any]]: ...


@dataclass(frozen=True, slots=True)
class Rejection:
    """What reports.rejected.v1 carries: the original bytes (contact details sealed: `Sealer`), every
    reason, and where it came from; and the kind of reason, which it is counted by."""

    reasons: tuple[str, ...]
    original: bytes
    source: dict[str, Any]
    key: str | None
    kind: RejectionKind

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

    def __init__(
        self,
        *,
        unit_of_work: UnitOfWork[IntakeStore],
        council: Council,
        topic: Callable[[Topic], str],
        send_rejection: SendRejection,
        api_keys: ApiKeys | None = None,
        figures: ServiceMetrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sealer: Sealer | None = None,
        public_ids: PublicIds | None = None,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._council = council
        self._topic = topic
        self._send_rejection = send_rejection
        self._api_keys = api_keys
        self._figures = figures
        self._clock = clock
        self.sealer = sealer or Sealer([DEVELOPMENT_CONTACT_KEY])
        self.public_ids = public_ids or PublicIds(DEVELOPMENT_PUBLIC_ID_KEY)
        self._matcher = CategoryMatcher(council)
        self._waiting: list[tuple[AcceptedReport, asyncio.Future[str | None]]] = []
        self._committer: asyncio.Task[None] | None = None

    @property
    def council(self) -> Council:
        return self._council

    @property
    def api_keys(self) -> ApiKeys:
        if self._api_keys is None:
            raise RuntimeError("intake was built without its API keys (the Open311 API needs them)")
        return self._api_keys

    async def accept(self, reports: Sequence[AcceptedReport]) -> set[UUID]:
        """Store the new ones of a consumed batch's reports, then publish the ReportReceived event of every
        one of them and wait for the broker; returns the new ids.

        The events go from memory after the commit, not through the outbox (issue 16 item 7): this runs in
        a Kafka handler, redelivered if it raises, so a report found already stored has the event it was
        accepted with published again, unchanged (the router keeps one report per id): a crash between
        the commit and the broker's acknowledgement loses nothing."""
        async with self._unit_of_work() as work:
            new = await self._store(work, reports, after_commit=True)
        self._after_accept(reports, new)
        return new

    async def submit(self, report: AcceptedReport) -> str | None:
        """Accept one Open311 request; returns its token (the first one issued, if it was posted before).

        Requests that arrive while a commit is under way are committed together in the next transaction
        (group commit): each caller still returns only once its report is durable. Raises
        `IdempotencyConflict` when the report's Idempotency-Key was used before with another body.
        """
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((report, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_waiting())
        return await future

    async def _commit_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_GROUP_COMMIT], self._waiting[MAX_GROUP_COMMIT:]
            reports = [report for report, _ in batch]
            try:
                async with self._unit_of_work() as work:
                    new = await self._store(work, reports)
                    standing = await work.repositories.standing_of([r.event.report_id for r in reports])
            except Exception as error:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            self._after_accept(reports, new)
            for report, future in batch:
                if future.done():
                    continue
                stored = standing.get(report.event.report_id)
                if (
                    report.request_digest is not None
                    and stored is not None
                    and stored.request_digest is not None
                    and stored.request_digest != report.request_digest
                ):
                    future.set_exception(IdempotencyConflict())
                else:
                    future.set_result(stored.token if stored is not None else None)

    async def _store(
        self, work: Work[IntakeStore], reports: Sequence[AcceptedReport], *, after_commit: bool = False
    ) -> set[UUID]:
        """Insert the new ones of `reports`; their events go to the outbox, or, `after_commit`, are
        published once the unit commits, with the stored event of each repeat (see `accept`)."""
        unique = list({report.event.report_id: report for report in reports}.values())
        new = await work.repositories.insert_new_reports(unique)
        events = [report.event for report in unique if report.event.report_id in new]
        if not after_commit:
            work.publish(*self._received(events))
            return new
        repeats = [report.event.report_id for report in unique if report.event.report_id not in new]
        if repeats:  # one more round trip, only for a batch with repeats in it
            events += await work.repositories.received_events(repeats)
        work.publish_after_commit(*self._received(events))
        return new

    def _received(self, events: Iterable[ReportReceived]) -> list[OutboxMessage]:
        topic = self._topic(Topic.REPORTS_RECEIVED)
        return [
            OutboxMessage.for_event(
                topic=topic,
                key=str(event.report_id),
                event=event,
                correlation_id=str(event.report_id),
                producer=SERVICE,
            )
            for event in events
        ]

    def _after_accept(self, reports: Sequence[AcceptedReport], new: set[UUID]) -> None:
        if len(reports) == 1:
            report = reports[0]
            log.info(
                "report_accepted" if report.event.report_id in new else "report_already_accepted",
                report_id=str(report.event.report_id),
                correlation_id=str(report.event.report_id),
                category=report.event.category,
                channel=report.event.channel.value,
            )
        elif reports:
            # One line per batch: at thousands of reports a second a line each would cost more than the
            # validation. The report ids are in reports.received.v1 and intake.reports.
            log.info("reports_accepted", new=len(new), already_accepted=len(reports) - len(new))

    async def reject(self, rejections: Sequence[Rejection]) -> None:
        topic = self._topic(Topic.REPORTS_REJECTED)
        pending = []
        for rejection in rejections:
            headers = {
                h.EVENT_TYPE: "ReportRejected",
                h.SCHEMA_VERSION: h.SCHEMA_VERSION_1,
                h.PRODUCER: SERVICE,
                h.ERROR: "; ".join(rejection.reasons)[:2000],
                **{f"original-{name}": str(value) for name, value in rejection.source.items()},
            }
            # Sent together and awaited together: a batch of rejections costs one round trip.
            pending.append(
                await self._send_rejection(
                    rejection.payload(), topic, rejection.key.encode() if rejection.key else None, headers
                )
            )
            log.warning(
                "report_rejected", reasons=list(rejection.reasons), kind=rejection.kind, **rejection.source
            )
        await asyncio.gather(*pending)
        # Counted once the broker has them all: a batch whose rejections could not be sent is tried again
        # (and counted then), so each record rejected counts once.
        counts = Counter((str(rejection.source["topic"]), rejection.kind) for rejection in rejections)
        for (source_topic, kind), count in counts.items():
            if self._figures is not None:
                self._figures.rejected(source_topic, reason=kind, count=count)

    async def handle_contact_centre_batch(self, records: Sequence[Record]) -> None:
        """The handler of contact-centre.reports.v1: validate each record, then accept or reject it."""
        now = self._clock()
        accepted: list[AcceptedReport] = []
        rejected: list[Rejection] = []
        for record in records:
            try:
                # A replayed dead letter or rejection comes back with its contact details sealed.
                parsed = parse_contact_centre_event(self.sealer.unseal(record.value))
            except UnsealError as error:
                parsed = Invalid(reasons=(str(error),), kind="unsealable")
            if isinstance(parsed, Invalid):
                source = {**record.provenance(), "source_system": parsed.source_system}
                # Keyed by source id where it could be read, else by the record's own key, so that an
                # operator finds a rejection by what the upstream system calls it.
                key = parsed.source_id or (record.key.decode("utf-8", "replace") if record.key else None)
                original = self.sealer.seal(record.value)
                rejected.append(
                    Rejection(
                        reasons=parsed.reasons, original=original, source=source, key=key, kind=parsed.kind
                    )
                )
            else:
                accepted.append(normalise(parsed, self._matcher, now=now))
        await self.accept(accepted)
        await self.reject(rejected)

    async def handle_case_events(self, records: Sequence[Record]) -> None:
        """The handler of cases.v1: keep each report's Open311 status in step with its case.

        An event that cannot be read raises `MalformedMessage` before anything is applied: the batch
        consumer then handles the records one by one and dead-letters that one, once, however often the
        batch is retried (it is the router's output, so that is a bug to look at).
        """
        events = [parse_case_event(record) for record in records]
        async with self._unit_of_work() as work:
            await work.repositories.apply_case_events(events, self._council)

    # --- what the Open311 endpoints read and write (they never open connections themselves) -------------

    async def find_requests(
        self,
        *,
        report_ids: Sequence[UUID] | None,
        service_codes: Sequence[str] | None,
        start: datetime | None,
        end: datetime | None,
        statuses: Sequence[str] | None,
        limit: int,
        offset: int = 0,
    ) -> list[RequestView]:
        """Requests as the public may see them: never one of a category the council keeps private."""
        async with self._unit_of_work.reading() as store:
            return await store.find_requests(
                hidden_categories=self.hidden_categories,
                report_ids=report_ids,
                service_codes=service_codes,
                start=start,
                end=end,
                statuses=statuses,
                limit=limit,
                offset=offset,
            )

    @property
    def hidden_categories(self) -> list[str]:
        return sorted(code for code, category in self._council.categories.items() if not category.public)

    def public_id(self, report_id: UUID, source_system: str) -> str:
        return self.public_ids.public_id(report_id, source_system)

    async def report_ids_of(self, public_ids: Sequence[str]) -> list[UUID]:
        """The reports these public service_request_ids name (ids that name none are left out)."""
        wanted = {
            candidate: public for public in public_ids for candidate in self.public_ids.candidates(public)
        }
        if not wanted:
            return []
        async with self._unit_of_work.reading() as store:
            sources = await store.sources_of(list(wanted))
        return [
            report_id
            for report_id, source_system in sources.items()
            if self.public_id(report_id, source_system) == wanted[report_id]
        ]

    async def purge(self, *, retention_days: int, now: datetime | None = None) -> dict[str, int]:
        """Purge the personal data of reports older than `retention_days` (one replica at a time)."""
        before = (now or self._clock()) - timedelta(days=retention_days)
        async with self._unit_of_work() as work:
            if not await work.repositories.take_purge_lock():
                return {}
            purged = await work.repositories.purge_personal_data(before=before)
        log.info("personal_data_purged", retention_days=retention_days, **purged)
        return purged

    async def report_of_token(self, token: str) -> UUID | None:
        async with self._unit_of_work.reading() as store:
            return await store.report_of_token(token)

    async def find_updates(
        self,
        *,
        start: datetime | None,
        end: datetime | None,
        report_ids: Sequence[UUID] | None,
        limit: int,
        offset: int,
    ) -> list[UpdateView]:
        async with self._unit_of_work.reading() as store:
            return await store.find_updates(
                start=start, end=end, report_ids=report_ids, limit=limit, offset=offset
            )

    async def photo(self, media_id: UUID) -> tuple[str, bytes] | None:
        async with self._unit_of_work.reading() as store:
            return await store.find_photo(media_id)

    async def post_update(
        self, posted: PostedUpdate, *, report_id: UUID, update_id: str, client_key: str | None
    ) -> str | None:
        """Record a resident's update on `report_id` and queue ResidentUpdateReceived for the router, in one
        transaction. Returns the update's id (the first one, for a retried post), or None when there is no
        such report.
        """
        now = self._clock()
        async with self._unit_of_work() as work:
            store = work.repositories
            if client_key is not None and (seen := await store.update_of_client_key(client_key)):
                return seen
            standing = await store.request_standing(report_id)
            if standing is None:
                return None
            case_id, request_status = standing
            action = resident_action(posted.status, request_status)
            update = ResidentUpdate(
                update_id=update_id,
                report_id=report_id,
                case_id=case_id,
                # The feed shows the request's standing, not what the resident claimed (e.g. FIXED).
                status="OPEN" if action == "reopen" or request_status == "open" else "CLOSED",
                description=posted.form.description,
                external_status_code="resident-" + action,
                media_url=posted.media_urls[0] if posted.media_urls else None,
                at=posted.form.updated_datetime or now,
                client_key=client_key,
            )
            if await store.insert_resident_update(update, posted.form.contact) is None:
                return await store.update_of_client_key(client_key) if client_key else None
            event = ResidentUpdateReceived(
                occurred_at=now,
                update_id=update_id,
                report_id=report_id,
                case_id=case_id,
                action=action,
                client_status=posted.status,
                description=posted.form.description,
                media_urls=posted.media_urls,
            )
            work.publish(
                OutboxMessage.for_event(
                    topic=self._topic(Topic.REPORT_UPDATES),
                    key=str(report_id),
                    event=event,
                    correlation_id=str(report_id),
                    producer=SERVICE,
                )
            )
        log.info(
            "resident_update_accepted", report_id=str(report_id), correlation_id=str(report_id), action=action
        )
        return update_id
