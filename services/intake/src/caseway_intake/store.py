"""intake's tables: accepted reports (unique per source system + source id) and contacts kept apart."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from uuid import UUID

    from caseway_intake.normalise import AcceptedReport
    from caseway_shared.db import DbConnection


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
            (report_id, source_system, source_id, client_key, channel, category, received_at, event)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                             $7::timestamptz[], $8::jsonb[])
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
    )
    new = {row["report_id"] for row in rows}
    contacts = [r for r in reports if r.contact is not None and r.event.report_id in new]
    if contacts:
        await connection.executemany(
            "INSERT INTO intake.reporter_contacts (report_id, name, email, phone) VALUES ($1, $2, $3, $4)",
            [
                (r.event.report_id, r.contact.name, r.contact.email, r.contact.phone)
                for r in contacts
                if r.contact
            ],
        )
    return new
