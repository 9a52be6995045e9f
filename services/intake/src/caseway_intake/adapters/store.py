"""intake's tables: accepted reports (unique per source system + source id), contacts kept apart, Open311
API keys (hashed), tokens, and the status of each request as the cases report it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from caseway_intake.domain.open311 import RequestView, ResidentUpdate, UpdateView
from caseway_intake.domain.updates import case_update, in_rounds, is_public_note, update_id
from caseway_shared.events import (
    CaseAssigned,
    CaseClosed,
    CaseNoteAdded,
    CaseOpened,
    CaseStatusChanged,
    ReportLinked,
    ReportReceived,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime
    from uuid import UUID

    from caseway_intake.domain.normalise import AcceptedReport
    from caseway_intake.domain.updates import CaseUpdate
    from caseway_shared.contact_centre import ReporterContact
    from caseway_shared.council import Council
    from caseway_shared.db import DbConnection
    from caseway_shared.events import CaseEvent


class Standing(NamedTuple):
    """What a stored report answers a re-post with: its token, and the body digest it was accepted with."""

    token: str | None
    request_digest: bytes | None


async def insert_new_reports(connection: DbConnection, reports: Sequence[AcceptedReport]) -> set[UUID]:
    """Insert `reports`, skipping any already accepted; returns the ids that are new.

    A report is the same when its (source system, source id) or its client key was seen before, so a
    redelivered or re-posted report is accepted once and published once.
    """
    if not reports:
        return set()
    rows = await connection.fetch(
        """
        INSERT INTO intake.reports
            (report_id, source_system, source_id, client_key, channel, category, received_at, event, extras,
             request_digest)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                             $7::timestamptz[], $8::jsonb[], $9::jsonb[], $10::bytea[])
        ON CONFLICT DO NOTHING
        RETURNING report_id
        """,
        [r.event.report_id for r in reports],
        [r.event.source_system for r in reports],
        [r.event.source_id for r in reports],
        [r.client_key for r in reports],
        [r.event.channel.value for r in reports],
        [r.event.category for r in reports],
        [r.event.received_at for r in reports],
        [r.event.model_dump(mode="json") for r in reports],
        [dict(r.extras) if r.extras else None for r in reports],
        [r.request_digest for r in reports],
    )
    new = {row["report_id"] for row in rows}
    photos = [(r.event.report_id, photo) for r in reports if r.event.report_id in new for photo in r.photos]
    if photos:
        await connection.execute(
            """
            INSERT INTO intake.media (media_id, report_id, part_name, filename, content_type, size, data)
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::int[],
                                 $7::bytea[])
            """,
            [photo.media_id for _, photo in photos],
            [report_id for report_id, _ in photos],
            [photo.part_name for _, photo in photos],
            [photo.filename for _, photo in photos],
            [photo.content_type for _, photo in photos],
            [len(photo.data) for _, photo in photos],
            [photo.data for _, photo in photos],
        )
    contacts = [(r.event.report_id, r.contact) for r in reports if r.contact and r.event.report_id in new]
    if contacts:
        await connection.execute(
            """
            INSERT INTO intake.reporter_contacts (report_id, name, email, phone)
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])
            """,
            [report_id for report_id, _ in contacts],
            [contact.name for _, contact in contacts],
            [contact.email for _, contact in contacts],
            [contact.phone for _, contact in contacts],
        )
    tokens = [(r.token, r.event.report_id) for r in reports if r.token and r.event.report_id in new]
    if tokens:
        await connection.execute(
            "INSERT INTO intake.tokens (token, report_id) SELECT * FROM unnest($1::text[], $2::uuid[])",
            [token for token, _ in tokens],
            [report_id for _, report_id in tokens],
        )
    return new


async def standing_of(connection: DbConnection, report_ids: Sequence[UUID]) -> dict[UUID, Standing]:
    """For each of these reports that exists, the token issued for it and the body digest it was accepted
    with (None: not an Open311 POST, or older), in one round trip."""
    rows = await connection.fetch(
        """
        SELECT r.report_id, t.token, r.request_digest
        FROM intake.reports AS r LEFT JOIN intake.tokens AS t ON t.report_id = r.report_id
        WHERE r.report_id = ANY($1::uuid[])
        """,
        list(report_ids),
    )
    return {row["report_id"]: Standing(row["token"], row["request_digest"]) for row in rows}


async def received_events(connection: DbConnection, report_ids: Sequence[UUID]) -> list[ReportReceived]:
    """The ReportReceived event each of these reports was accepted with (those that exist)."""
    rows = await connection.fetch(
        "SELECT event FROM intake.reports WHERE report_id = ANY($1::uuid[])", list(report_ids)
    )
    return [ReportReceived.model_validate(row["event"]) for row in rows]


async def sources_of(connection: DbConnection, report_ids: Sequence[UUID]) -> dict[UUID, str]:
    """The source system of each of these reports that exists (report id -> source system)."""
    rows = await connection.fetch(
        "SELECT report_id, source_system FROM intake.reports WHERE report_id = ANY($1::uuid[])",
        list(report_ids),
    )
    return {row["report_id"]: row["source_system"] for row in rows}


async def purge_personal_data(connection: DbConnection, *, before: datetime) -> dict[str, int]:
    """Purge what residents told us about themselves and in their own words from reports accepted before
    `before`: contact details deleted, texts emptied, photos and extras dropped. Idempotent; returns how
    many rows of each kind it changed.
    """
    reports = await connection.fetch(
        """
        UPDATE intake.reports
        SET event = event || jsonb_build_object('description', '', 'category_text', NULL,
                                                'attachments', '[]'::jsonb, 'attributes', '{}'::jsonb),
            extras = NULL, purged_at = now()
        WHERE purged_at IS NULL AND accepted_at < $1
        RETURNING report_id
        """,
        before,
    )
    report_ids = [row["report_id"] for row in reports]
    contacts = await connection.execute(
        "DELETE FROM intake.reporter_contacts c USING intake.reports r"
        " WHERE c.report_id = r.report_id AND r.accepted_at < $1",
        before,
    )
    photos = await connection.execute(
        "DELETE FROM intake.media m USING intake.reports r WHERE m.report_id = r.report_id"
        " AND r.accepted_at < $1",
        before,
    )
    update_contacts = await connection.execute(
        "DELETE FROM intake.update_contacts c USING intake.request_updates u"
        " WHERE c.update_id = u.update_id AND u.updated_at < $1",
        before,
    )
    updates = await connection.execute(
        "UPDATE intake.request_updates SET description = '', media_url = NULL"
        " WHERE origin = 'resident' AND updated_at < $1 AND (description <> '' OR media_url IS NOT NULL)",
        before,
    )
    return {
        "reports": len(report_ids),
        "contacts": _count(contacts),
        "photos": _count(photos),
        "update_contacts": _count(update_contacts),
        "updates": _count(updates),
    }


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1]) if status and status.rsplit(" ", 1)[-1].isdigit() else 0


async def report_of_token(connection: DbConnection, token: str) -> UUID | None:
    report_id: UUID | None = await connection.fetchval(
        "SELECT report_id FROM intake.tokens WHERE token = $1", token
    )
    return report_id


async def insert_api_key(connection: DbConnection, *, name: str, key_hash: bytes) -> bool:
    """Register a key by its digest; False when the name or the key is already registered."""
    row = await connection.fetchval(
        "INSERT INTO intake.api_keys (key_hash, name) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING name",
        key_hash,
        name,
    )
    return row is not None


async def replace_api_key(connection: DbConnection, *, name: str, key_hash: bytes) -> None:
    """Make `key_hash` the live key of `name`, whatever `name` held before (rotation)."""
    await connection.execute(
        "INSERT INTO intake.api_keys (key_hash, name) VALUES ($1, $2)"
        " ON CONFLICT (name) DO UPDATE"
        " SET key_hash = excluded.key_hash, created_at = now(), revoked_at = NULL",
        key_hash,
        name,
    )


async def api_key_name(connection: DbConnection, key_hash: bytes) -> str | None:
    """The name of the live key with this digest, if any."""
    name: str | None = await connection.fetchval(
        "SELECT name FROM intake.api_keys WHERE key_hash = $1 AND revoked_at IS NULL", key_hash
    )
    return name


async def revoke_api_key(connection: DbConnection, name: str) -> bool:
    status = await connection.execute(
        "UPDATE intake.api_keys SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL", name
    )
    return status.endswith(" 1")


async def find_requests(
    connection: DbConnection,
    *,
    report_ids: Sequence[UUID] | None,
    service_codes: Sequence[str] | None,
    start: datetime | None,
    end: datetime | None,
    statuses: Sequence[str] | None,
    limit: int,
    offset: int = 0,
    hidden_categories: Sequence[str] = (),
) -> list[RequestView]:
    """Reports with what the cases said about them, newest first; a None filter does not filter. Reports
    of `hidden_categories` are never returned."""
    rows = await connection.fetch(
        """
        SELECT r.report_id, r.event, r.accepted_at, s.status, s.status_notes, s.reference,
               s.agency_responsible, s.expected_at, s.updated_at
        FROM intake.reports r LEFT JOIN intake.request_status s USING (report_id)
        WHERE ($1::uuid[] IS NULL OR r.report_id = ANY($1))
          AND ($2::text[] IS NULL OR r.category = ANY($2))
          AND ($3::timestamptz IS NULL OR r.received_at >= $3)
          AND ($4::timestamptz IS NULL OR r.received_at <= $4)
          AND ($5::text[] IS NULL OR coalesce(s.status, 'open') = ANY($5))
          AND r.category <> ALL($8::text[])
        ORDER BY r.received_at DESC, r.report_id
        LIMIT $6 OFFSET $7
        """,
        report_ids,
        service_codes,
        start,
        end,
        statuses,
        limit,
        offset,
        list(hidden_categories),
    )
    return [RequestView(**dict(row)) for row in rows]


async def apply_case_events(connection: DbConnection, events: Sequence[CaseEvent], council: Council) -> None:
    """Keep each report's Open311 status in step with its case. Replays change nothing: a row only moves
    forward in time (events of one case arrive in order, keyed by case id).

    Set-based: the events are applied in rounds (`in_rounds`), each a few statements whatever its size, so
    a batch of 2,000 events after a backlog takes a few dozen round trips, not several thousand.
    """
    for round_events in in_rounds(events):
        await _apply_round(connection, round_events, council)


async def _apply_round(connection: DbConnection, events: Sequence[CaseEvent], council: Council) -> None:
    """One round: no case or report twice, so each kind is one statement and their order does not matter."""
    opened = [event for event in events if isinstance(event, CaseOpened)]
    linked = [event for event in events if isinstance(event, ReportLinked)]
    changed = [event for event in events if isinstance(event, CaseStatusChanged | CaseClosed)]
    noted = [event for event in events if isinstance(event, CaseNoteAdded) and is_public_note(event)]
    led = [event for event in events if isinstance(event, CaseAssigned) and event.role == "lead"]
    if opened:
        await connection.execute(
            """
            INSERT INTO intake.request_status (report_id, case_id, reference, status,
                agency_responsible, expected_at, updated_at, joined_at)
            SELECT u.report_id, u.case_id, u.reference, 'open', u.agency, u.expected_at, u.updated_at,
                   u.updated_at
            FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[])
                AS u (report_id, case_id, reference, agency, expected_at, updated_at)
            ON CONFLICT (report_id) DO UPDATE SET case_id = excluded.case_id,
                reference = excluded.reference, agency_responsible = excluded.agency_responsible,
                expected_at = excluded.expected_at, updated_at = excluded.updated_at,
                joined_at = excluded.joined_at
            WHERE intake.request_status.updated_at <= excluded.updated_at
            """,
            [event.report_id for event in opened],
            [event.case_id for event in opened],
            [event.reference for event in opened],
            [_agency(event.lead_department, council) for event in opened],
            [event.due_at for event in opened],
            [event.occurred_at for event in opened],
        )
    if linked:
        # A linked report takes the case's current standing from any other report of the case; a report
        # moving from another case takes all of it (it kept its old case's department and due time before).
        await connection.execute(
            """
            INSERT INTO intake.request_status (report_id, case_id, reference, status, case_status,
                status_notes, agency_responsible, expected_at, updated_at, joined_at)
            SELECT u.report_id, u.case_id, u.reference, coalesce(other.status, 'open'), other.case_status,
                   other.status_notes, other.agency_responsible, other.expected_at, u.updated_at,
                   u.updated_at
            FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[])
                AS u (report_id, case_id, reference, updated_at)
            LEFT JOIN LATERAL (
                SELECT * FROM intake.request_status AS r
                WHERE r.case_id = u.case_id AND r.report_id <> u.report_id LIMIT 1
            ) AS other ON true
            ON CONFLICT (report_id) DO UPDATE SET case_id = excluded.case_id,
                reference = excluded.reference, status = excluded.status,
                case_status = excluded.case_status, status_notes = excluded.status_notes,
                agency_responsible = coalesce(excluded.agency_responsible,
                                              intake.request_status.agency_responsible),
                expected_at = excluded.expected_at, updated_at = excluded.updated_at,
                joined_at = excluded.joined_at
            WHERE intake.request_status.updated_at <= excluded.updated_at
            """,
            [event.report_id for event in linked],
            [event.case_id for event in linked],
            [event.reference for event in linked],
            [event.occurred_at for event in linked],
        )
    if changed:
        await connection.execute(
            """
            UPDATE intake.request_status AS r
            SET status = CASE WHEN u.case_status = 'closed' THEN 'closed' ELSE 'open' END,
                case_status = u.case_status, status_notes = coalesce(u.note, r.status_notes),
                updated_at = u.updated_at
            FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[])
                AS u (case_id, case_status, note, updated_at)
            WHERE r.case_id = u.case_id AND r.updated_at <= u.updated_at
            """,
            [event.case_id for event in changed],
            [event.status if isinstance(event, CaseStatusChanged) else "closed" for event in changed],
            [event.note for event in changed],
            [event.occurred_at for event in changed],
        )
    if noted:
        # A public note is the request's status_notes from now on; its status stays as it is.
        await connection.execute(
            """
            UPDATE intake.request_status AS r SET status_notes = u.text, updated_at = u.updated_at
            FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS u (case_id, text, updated_at)
            WHERE r.case_id = u.case_id AND r.updated_at <= u.updated_at
            """,
            [event.case_id for event in noted],
            [event.text for event in noted],
            [event.occurred_at for event in noted],
        )
    if led:
        await connection.execute(
            """
            UPDATE intake.request_status AS r SET agency_responsible = u.agency
            FROM unnest($1::uuid[], $2::text[]) AS u (case_id, agency) WHERE r.case_id = u.case_id
            """,
            [event.case_id for event in led],
            [_agency(event.department, council) for event in led],
        )
    updates = [
        (event.case_id, update)
        for event in events
        if (
            update := case_update(
                event,
                agency=_agency(event.lead_department, council) if isinstance(event, CaseOpened) else None,
            )
        )
        is not None
    ]
    if updates:
        await _insert_case_updates(connection, updates)


def _agency(department: str, council: Council) -> str:
    """The name residents see for a department (its code when the council names it not)."""
    return council.departments.get(department, department)


async def _insert_case_updates(connection: DbConnection, updates: Sequence[tuple[UUID, CaseUpdate]]) -> None:
    """Each update for its one report, or for every report of its case; a replay inserts nothing."""
    whole_cases = [(case_id, update.at) for case_id, update in updates if update.report_id is None]
    reports_of: dict[UUID, list[UUID]] = {}
    if whole_cases:
        # The reports in the case when the event happened: a report that joined later (a replay reads
        # today's members) gets none of the case's earlier updates.
        rows = await connection.fetch(
            """
            SELECT r.case_id, r.report_id
            FROM unnest($1::uuid[], $2::timestamptz[]) AS u (case_id, at)
            JOIN intake.request_status AS r
              ON r.case_id = u.case_id AND coalesce(r.joined_at, '-infinity') <= u.at
            """,
            [case_id for case_id, _ in whole_cases],
            [at for _, at in whole_cases],
        )
        for row in rows:
            reports_of.setdefault(row["case_id"], []).append(row["report_id"])
    rows_to_insert = [
        (update_id(report_id, update.key), report_id, case_id, update)
        for case_id, update in updates
        for report_id in ([update.report_id] if update.report_id is not None else reports_of.get(case_id, []))
    ]
    if not rows_to_insert:
        return
    await connection.execute(
        """
        INSERT INTO intake.request_updates (update_id, report_id, case_id, origin, status, description,
            external_status_code, updated_at)
        SELECT u.update_id, u.report_id, u.case_id, 'case',
            -- No status of its own (a note): the status the report's last update showed.
            coalesce(u.status, (SELECT p.status FROM intake.request_updates AS p
                                WHERE p.report_id = u.report_id
                                ORDER BY p.updated_at DESC, p.origin = 'case' DESC LIMIT 1), 'OPEN'),
            u.description, u.external_status_code, date_trunc('second', u.updated_at)
        FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                    $7::timestamptz[])
            AS u (update_id, report_id, case_id, status, description, external_status_code, updated_at)
        ON CONFLICT DO NOTHING
        """,
        [row[0] for row in rows_to_insert],
        [row[1] for row in rows_to_insert],
        [row[2] for row in rows_to_insert],
        [row[3].status for row in rows_to_insert],
        [row[3].description for row in rows_to_insert],
        [row[3].external_status_code for row in rows_to_insert],
        [row[3].at for row in rows_to_insert],
    )


async def find_updates(
    connection: DbConnection,
    *,
    start: datetime | None,
    end: datetime | None,
    report_ids: Sequence[UUID] | None,
    limit: int,
    offset: int,
) -> list[UpdateView]:
    """Updates in [start, end] (both inclusive, to the second), oldest first, as the feed shows them."""
    rows = await connection.fetch(
        """
        SELECT u.update_id, u.report_id, u.status, u.description, u.external_status_code, u.media_url,
               u.updated_at, r.source_system
        FROM intake.request_updates u JOIN intake.reports r USING (report_id)
        WHERE ($1::timestamptz IS NULL OR u.updated_at >= $1)
          AND ($2::timestamptz IS NULL OR u.updated_at <= $2)
          AND ($3::uuid[] IS NULL OR u.report_id = ANY($3))
        ORDER BY u.updated_at, u.update_id
        LIMIT $4 OFFSET $5
        """,
        start,
        end,
        report_ids,
        limit,
        offset,
    )
    return [UpdateView(**dict(row)) for row in rows]


async def request_standing(connection: DbConnection, report_id: UUID) -> tuple[UUID | None, str] | None:
    """(case id, open or closed) of an accepted report; None when there is no such report."""
    row = await connection.fetchrow(
        """
        SELECT s.case_id, coalesce(s.status, 'open') AS status
        FROM intake.reports r LEFT JOIN intake.request_status s USING (report_id)
        WHERE r.report_id = $1
        """,
        report_id,
    )
    return None if row is None else (row["case_id"], row["status"])


async def insert_resident_update(
    connection: DbConnection, update: ResidentUpdate, contact: ReporterContact | None
) -> str | None:
    """Record a resident's update; returns None when its client key was recorded before (a retry)."""
    inserted: str | None = await connection.fetchval(
        """
        INSERT INTO intake.request_updates (update_id, report_id, case_id, origin, status, description,
            external_status_code, media_url, updated_at, client_key)
        VALUES ($1, $2, $3, 'resident', $4, $5, $6, $7, date_trunc('second', $8::timestamptz), $9)
        ON CONFLICT DO NOTHING
        RETURNING update_id
        """,
        update.update_id,
        update.report_id,
        update.case_id,
        update.status,
        update.description,
        update.external_status_code,
        update.media_url,
        update.at,
        update.client_key,
    )
    if inserted is not None and contact is not None:
        await connection.execute(
            "INSERT INTO intake.update_contacts (update_id, name, email, phone) VALUES ($1, $2, $3, $4)",
            inserted,
            contact.name,
            contact.email,
            contact.phone,
        )
    return inserted


async def update_of_client_key(connection: DbConnection, client_key: str) -> str | None:
    found: str | None = await connection.fetchval(
        "SELECT update_id FROM intake.request_updates WHERE client_key = $1", client_key
    )
    return found


async def find_photo(connection: DbConnection, media_id: UUID) -> tuple[str, bytes] | None:
    """(content type, bytes) of a stored photo."""
    row = await connection.fetchrow(
        "SELECT content_type, data FROM intake.media WHERE media_id = $1", media_id
    )
    return None if row is None else (row["content_type"], bytes(row["data"]))


async def take_purge_lock(connection: DbConnection) -> bool:
    """Whether this transaction is the one replica purging now (the lock is held until it ends)."""
    taken: bool = await connection.fetchval("SELECT pg_try_advisory_xact_lock(hashtext('intake.purge'))")
    return taken


class IntakeStore:
    """intake's repository on one unit of work's connection (what `IntakeService` takes through its unit of
    work): the functions above, bound to that connection."""

    def __init__(self, connection: DbConnection) -> None:
        self.connection = connection

    async def insert_new_reports(self, reports: Sequence[AcceptedReport]) -> set[UUID]:
        return await insert_new_reports(self.connection, reports)

    async def standing_of(self, report_ids: Sequence[UUID]) -> dict[UUID, Standing]:
        return await standing_of(self.connection, report_ids)

    async def received_events(self, report_ids: Sequence[UUID]) -> list[ReportReceived]:
        return await received_events(self.connection, report_ids)

    async def sources_of(self, report_ids: Sequence[UUID]) -> dict[UUID, str]:
        return await sources_of(self.connection, report_ids)

    async def take_purge_lock(self) -> bool:
        return await take_purge_lock(self.connection)

    async def purge_personal_data(self, *, before: datetime) -> dict[str, int]:
        return await purge_personal_data(self.connection, before=before)

    async def report_of_token(self, token: str) -> UUID | None:
        return await report_of_token(self.connection, token)

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
        hidden_categories: Sequence[str] = (),
    ) -> list[RequestView]:
        return await find_requests(
            self.connection,
            report_ids=report_ids,
            service_codes=service_codes,
            start=start,
            end=end,
            statuses=statuses,
            limit=limit,
            offset=offset,
            hidden_categories=hidden_categories,
        )

    async def apply_case_events(self, events: Sequence[CaseEvent], council: Council) -> None:
        await apply_case_events(self.connection, events, council)

    async def find_updates(
        self,
        *,
        start: datetime | None,
        end: datetime | None,
        report_ids: Sequence[UUID] | None,
        limit: int,
        offset: int,
    ) -> list[UpdateView]:
        return await find_updates(
            self.connection, start=start, end=end, report_ids=report_ids, limit=limit, offset=offset
        )

    async def request_standing(self, report_id: UUID) -> tuple[UUID | None, str] | None:
        return await request_standing(self.connection, report_id)

    async def insert_resident_update(
        self, update: ResidentUpdate, contact: ReporterContact | None
    ) -> str | None:
        return await insert_resident_update(self.connection, update, contact)

    async def update_of_client_key(self, client_key: str) -> str | None:
        return await update_of_client_key(self.connection, client_key)

    async def find_photo(self, media_id: UUID) -> tuple[str, bytes] | None:
        return await find_photo(self.connection, media_id)
