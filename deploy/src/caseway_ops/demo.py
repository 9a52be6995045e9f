"""`caseway demo`: a handful of residents' reports into the running services, and what became of them.

It publishes sample contact-centre events (one a repeat delivery, one malformed), waits until the
services have routed and notified them, and prints the cases, their departments and the notifications
from PostgreSQL, and the rejection from reports.rejected.v1.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import SecretStr
from rich.table import Table

from caseway_shared.events import report_id_for
from caseway_shared.settings import ServiceSettings
from caseway_shared.topics import Topic, topic_name

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

    from caseway_ops.stack_config import StackConfig

SOURCE = "demo-contact-centre"

# Places in Liverpool, with what residents said about them.
SAMPLES: tuple[dict[str, Any], ...] = (
    {
        "category_text": "Someone has fly-tipped a mattress and bags",
        "lat": 53.4046,
        "lon": -2.9814,
        "description": "Mattress and six black bags dumped in the back entry behind the shops.",
    },
    {
        "category": "pothole",
        "lat": 53.4306,
        "lon": -2.9608,
        "description": "Deep pothole on the bend, a cyclist nearly came off. Dangerous.",
    },
    {
        "category_text": "litter everywhere on the estate",
        "lat": 53.4419,
        "lon": -2.9719,
        "land_type": "housing",
        "description": "Litter blowing around the flats, bins overflowing.",
    },
    {
        "category_text": "rats in the alley",
        "lat": 53.3841,
        "lon": -2.9157,
        "description": "Rats seen every night near the bins.",
    },
    {
        "category": "street-lighting",
        "lat": 53.4112,
        "lon": -2.8787,
        "description": "Street light outside number 12 has been out for a week.",
    },
    {
        "category_text": "loud music every night, threatening when asked to stop (asb)",
        "lat": 53.3977,
        "lon": -2.9310,
        "description": "Loud music until 3am, anti-social and threatening.",
    },
    {
        "category_text": "a phone call about graffiti",
        "address": "Lodge Lane, Liverpool",
        "description": "Graffiti on the side of the community centre (no coordinates given).",
    },
)


def _events(run: str) -> list[tuple[str, bytes]]:
    events = []
    for number, sample in enumerate(SAMPLES, start=1):
        location = {k: sample[k] for k in ("lat", "lon", "address", "land_type") if k in sample}
        body = {
            "source_system": SOURCE,
            "source_id": f"{run}-{number}",
            "channel": "phone",
            "received_at": datetime.now(UTC).isoformat(),
            "location": location,
            "description": sample["description"],
            "reporter": {"name": "Demo Resident", "phone": "0151 000 0000"},
        }
        body.update({k: sample[k] for k in ("category", "category_text") if k in sample})
        events.append((body["source_id"], json.dumps(body).encode()))
    events.append(events[0])  # the same upstream event delivered twice: one report, one case
    malformed = {
        "source_system": SOURCE,
        "source_id": f"{run}-bad",
        "channel": "fax",
        "location": {"lat": 95},
    }
    events.append((f"{run}-bad", json.dumps(malformed).encode()))
    return events


async def run_demo(console: Console, config: StackConfig, *, timeout: float = 60) -> None:
    """Send the samples to the stack ``config`` describes (its broker and database, the topic prefix
    from the environment) and show what became of them."""
    settings = ServiceSettings(
        kafka_bootstrap_servers=config.bootstrap_servers, database_url=SecretStr(config.database_url)
    )
    run = f"demo-{uuid.uuid4().hex[:6]}"
    events = _events(run)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        topic = topic_name(Topic.CONTACT_CENTRE_REPORTS, settings.topic_prefix)
        for key, value in events:
            await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()
    console.print(
        f"Published {len(events)} events to [bold]{topic}[/] ({len(SAMPLES)} reports, 1 repeat, 1 malformed)"
    )

    report_ids = [report_id_for(SOURCE, f"{run}-{n}") for n in range(1, len(SAMPLES) + 1)]
    connection = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        deadline = time.monotonic() + timeout
        with console.status("Waiting for the services to route and notify..."):
            while time.monotonic() < deadline:
                # Waiting: reports not routed yet, cases the notifier has not heard of yet (every sample
                # case alerts its teams), and alerts due but not sent.
                pending = await connection.fetchval(
                    """
                    SELECT count(*) FILTER (WHERE r.report_id IS NULL)
                         + count(*) FILTER (WHERE r.report_id IS NOT NULL AND NOT EXISTS (
                               SELECT 1 FROM notifier.notifications n WHERE n.case_id = r.case_id))
                         + (SELECT count(*) FROM notifier.notifications n
                            JOIN router.reports rr USING (case_id)
                            WHERE rr.report_id = ANY($1::uuid[]) AND n.status IN ('pending', 'sending')
                              AND n.not_before <= now())
                    FROM unnest($1::uuid[]) AS ids(id) LEFT JOIN router.reports r ON r.report_id = ids.id
                    """,
                    report_ids,
                )
                if pending == 0:
                    break
                await asyncio.sleep(0.5)
        await _show(console, connection, report_ids, mail_dir=config.state_dir / "mail")
    finally:
        await connection.close()
    await _show_rejections(console, settings, run)


async def _show(
    console: Console, connection: asyncpg.Connection, report_ids: list[uuid.UUID], *, mail_dir: Path
) -> None:
    cases = await connection.fetch(
        """
        SELECT c.case_id, c.reference, c.category, c.priority, c.neighbourhood, c.due_at, c.flags,
               c.reports_count,
               string_agg(a.department || CASE WHEN a.role = 'lead' THEN '*' ELSE '' END, ', '
                          ORDER BY a.role DESC, a.department) AS departments
        FROM router.cases c JOIN router.assignments a USING (case_id)
        WHERE c.case_id IN (SELECT case_id FROM router.reports WHERE report_id = ANY($1::uuid[]))
        GROUP BY c.case_id ORDER BY c.reference
        """,
        report_ids,
    )
    table = Table(title=f"Cases ({len(cases)}) - * marks the lead department")
    for column in (
        "reference",
        "category",
        "priority",
        "neighbourhood",
        "departments",
        "due",
        "flags",
        "reports",
    ):
        table.add_column(column)
    for case in cases:
        table.add_row(
            case["reference"],
            case["category"],
            case["priority"],
            case["neighbourhood"] or "-",
            case["departments"],
            case["due_at"].strftime("%a %d %b %H:%M") if case["due_at"] else "-",
            ", ".join(case["flags"]) or "-",
            str(case["reports_count"]),
        )
    console.print(table)
    notifications = await connection.fetch(
        """
        SELECT c.reference, n.team, n.channel, n.address, n.kind, n.status, n.attempts, n.not_before
        FROM notifier.notifications n JOIN router.cases c USING (case_id)
        WHERE c.case_id = ANY($1::uuid[]) ORDER BY c.reference, n.team
        """,
        [case["case_id"] for case in cases],
    )
    table = Table(title=f"Notifications ({len(notifications)}) - emails are in {mail_dir}")
    for column in ("case", "team", "channel", "to", "kind", "status", "attempts", "not before"):
        table.add_column(column)
    for row in notifications:
        table.add_row(
            row["reference"],
            row["team"],
            row["channel"],
            row["address"],
            row["kind"],
            row["status"],
            str(row["attempts"]),
            "-" if row["status"] != "pending" else row["not_before"].strftime("%a %H:%M"),
        )
    console.print(table)


async def _show_rejections(console: Console, settings: ServiceSettings, run: str) -> None:
    consumer = AIOKafkaConsumer(
        topic_name(Topic.REPORTS_REJECTED, settings.topic_prefix),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"demo-reader-{run}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[Any] = []
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not found:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found.extend(r for r in records if r.key == f"{run}-bad".encode())
    finally:
        await consumer.stop()
    for record in found[-1:]:
        rejection = json.loads(record.value)
        console.print(f"[bold]Rejected[/] (reports.rejected.v1, offset {record.offset}):")
        for reason in rejection["reasons"]:
            console.print(f"  - {reason}")
