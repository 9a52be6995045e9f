"""Canary test (issue 13 item 7): residents' contact details and a team's webhook URL, planted in reports
sent through every path, appear nowhere they must not.

Planted: a distinctive name, email address and phone number in the reporter fields (contact-centre
events) and the contact fields (Open311 requests and updates), and a webhook URL (with a distinctive
path) as the channel of two teams, one whose webhook answers 200 and one whose webhook answers 500.
Paths: accepted via Kafka, accepted via Open311 HTTP, an Open311 update, rejected via Kafka, refused via
HTTP, dead-lettered by intake (a database trigger of this test refuses that one report, as a database
would refuse a row it cannot store), notified to a webhook team, failed at a webhook team (and so
dead-lettered by the notifier).

Then read: every topic of this session's prefix except the upstream input (contact-centre.reports.v1,
which is where the details come from), every line the three service processes logged (at debug level),
every row of every table outside intake's schema, and the HTTP answers (Open311 GET requests, one
request, updates; the router's staff pages and JSON API; every service's /metrics and /readyz). The
only place a planted value may be is intake's own schema, and the notifier's record of where it
delivered (notifier.notifications.address) for the webhook URL.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiosmtpd.controller import Controller

from caseway_intake.domain.privacy import DEVELOPMENT_PUBLIC_ID_KEY, PublicIds
from caseway_shared.council import LIVERPOOL_DIR
from caseway_shared.events import report_id_for
from caseway_shared.topics import CATALOGUE, Topic

pytestmark = pytest.mark.infra

API_KEY = "canary-open311-key-0123456789abcdef0123456789"
# Where a planted value may legitimately be: intake keeps the contact details (its own schema), the
# upstream input carries them in, and the notifier records the address it delivered to.
ALLOWED_SCHEMAS = {"intake"}
INPUT_TOPIC = Topic.CONTACT_CENTRE_REPORTS.value
# Leaks the canary finds today, each inside a service or in a file this test's change could not touch.
# The test also fails when one of them stops happening, so that it is taken off the list. Issue 13 item 6
# removed the last two: intake's rejected and dead-lettered records now carry the reporter sealed.
KNOWN_LEAKS: dict[str, str] = {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Canaries:
    """The planted values, and every spelling of them a leak could take."""

    def __init__(self) -> None:
        token = uuid.uuid4().hex[:10]
        digits = "".join(str(int(c, 16) % 10) for c in token[:7])
        self.first, self.last = f"Canaryfirst{token}", f"Canarylast{token}"
        self.name = f"{self.first} {self.last}"
        self.email = f"canary.{token}@example.net"
        self.phone = f"0151 {digits[:3]} {digits[3:]}"
        self.hook_path = f"hook-canary-{token}"
        self.contact_needles = {
            "name": [self.first, self.last],
            "email": [self.email, f"canary.{token}", quote(self.email)],
            "phone": [self.phone, f"0151{digits}", f"151{digits}", f"{digits[:3]} {digits[3:]}"],
        }
        self.hook_needles = {"webhook URL": [self.hook_path]}

    def found(self, data: bytes | str, *, hooks: bool = True) -> list[str]:
        """Which planted values `data` holds (case-insensitively, in any of their spellings)."""
        text = (data.decode("utf-8", "replace") if isinstance(data, bytes) else data).lower()
        needles = {**self.contact_needles, **(self.hook_needles if hooks else {})}
        return sorted(
            what for what, spellings in needles.items() if any(s.lower() in text for s in spellings)
        )


class _Webhooks:
    """A loopback webhook receiver: .../ok answers 200, .../fail answers 500."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hooks.received.append((self.path, body))
                self.send_response(500 if self.path.endswith("/fail") else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


class _MailSink:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(envelope.content)
        return "250 OK"


def _council_with_webhooks(folder, hook_base: str):
    """A copy of the default council in which every streetscene team also has a webhook that answers and
    every env-crime team one that fails."""
    shutil.copytree(LIVERPOOL_DIR, folder)
    teams = folder / "teams.toml"
    lines = teams.read_text(encoding="utf-8").splitlines()
    department = ""
    for index, line in enumerate(lines):
        if found := re.match(r'^department = "([^"]+)"', line):
            department = found.group(1)
        elif line.startswith("channels = [") and line.endswith("]"):
            outcome = {"streetscene": "ok", "env-crime": "fail"}.get(department)
            if outcome:
                hook = f'{{ kind = "webhook", address = "{hook_base}/{outcome}" }}'
                lines[index] = f"{line[:-1].rstrip()}, {hook}]"
    teams.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@asynccontextmanager
async def _services(env: dict[str, str], log_dir):
    processes, ports, logs = {}, {}, {}
    try:
        for service in ("intake", "router", "notifier"):
            ports[service] = _free_port()
            logs[service] = (log_dir / f"{service}.log").open("wb")
            processes[service] = subprocess.Popen(  # noqa: ASYNC220 - started once, reaped at the end
                [sys.executable, "-m", f"caseway_{service}"],
                env={**env, f"CASEWAY_{service.upper()}_HTTP_PORT": str(ports[service])},
                stdout=logs[service],
                stderr=subprocess.STDOUT,
            )
        async with httpx.AsyncClient() as client:
            for service, port in ports.items():
                deadline = time.monotonic() + 180  # a loaded 2-core machine starts slowly
                while True:
                    try:
                        if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    assert processes[service].poll() is None, f"{service} exited; see {log_dir}"
                    assert time.monotonic() < deadline, f"{service} did not become ready"
                    await asyncio.sleep(0.3)
        yield ports
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs.values():
            log.close()


async def _read_all(infra, topic: str, *, quiet: float = 2.0) -> list:
    """Every record of `topic` from the start, until none has come for `quiet` seconds."""
    consumer = AIOKafkaConsumer(
        f"{infra.topic_prefix}{topic}",
        bootstrap_servers=infra.bootstrap_servers,
        group_id=f"canary-reader-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list = []
    try:
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            batch = await consumer.getmany(timeout_ms=300)
            for partition_records in batch.values():
                records.extend(partition_records)
                last = time.monotonic()
        return records
    finally:
        await consumer.stop()


async def _wait_for(what: str, check, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.5)


def _record_bytes(record) -> bytes:
    headers = b"\n".join(key.encode() + b"=" + (value or b"") for key, value in record.headers or ())
    return b"\n".join((record.key or b"", record.value or b"", headers))


async def _topic_leaks(infra, canaries: Canaries) -> list[str]:
    """Every topic of the session's prefix but the upstream input: keys, values and headers."""
    leaks, read_topics = [], 0
    for entry in CATALOGUE:
        if entry.topic.value == INPUT_TOPIC:
            continue
        records = await _read_all(infra, entry.topic.value, quiet=1.0)
        read_topics += bool(records)
        for record in records:
            found = canaries.found(_record_bytes(record))
            if not found:
                continue
            headers = dict(record.headers)
            original = (headers.get("original-topic") or b"?").decode().removeprefix(infra.topic_prefix)
            what = (headers.get("event-type") or b"").decode() or (
                f"dead letter of {original} by {(headers.get('producer') or b'?').decode()}"
            )
            leaks.append(f"topic {entry.topic.value} ({what}): {', '.join(found)}")
    assert read_topics >= 6, "too few topics had records: the paths did not run"
    return leaks


def _log_leaks(log_dir, canaries: Canaries) -> list[str]:
    """Every line the three services wrote (stdout and stderr)."""
    leaks = []
    for service in ("intake", "router", "notifier"):
        lines = (log_dir / f"{service}.log").read_text(errors="replace").splitlines()
        assert len(lines) > 10, f"{service} logged almost nothing: the capture failed"
        for number, line in enumerate(lines, 1):
            if found := canaries.found(line):
                try:
                    event = json.loads(line).get("event", "?")
                except json.JSONDecodeError:
                    event = line[:60]
                leaks.append(f"{service} log line {number} ({event}): {', '.join(found)}")
    return leaks


async def _table_leaks(db, canaries: Canaries) -> list[str]:
    """Every row of every table outside intake's schema (the notifier's delivery address excepted for the
    webhook URL: it is where the notifier records where it delivered)."""
    tables = await db.fetch(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
        " AND table_schema NOT IN ('pg_catalog', 'information_schema') AND table_schema <> ALL($1::text[])",
        list(ALLOWED_SCHEMAS),
    )
    assert {row["table_schema"] for row in tables} >= {"router", "notifier", "ops"}
    leaks = []
    for table in tables:
        qualified = f'"{table["table_schema"]}"."{table["table_name"]}"'
        for row in await db.fetch(f"SELECT * FROM {qualified}"):
            for column, value in row.items():
                data = value if isinstance(value, bytes) else str(value).encode()
                hooks = not (qualified == '"notifier"."notifications"' and column == "address")
                if found := canaries.found(data, hooks=hooks):
                    leaks.append(f"table {qualified} column {column}: {', '.join(found)}")
    return leaks


async def test_planted_contact_details_and_webhook_url_appear_nowhere_they_must_not(infra, db, tmp_path):
    canaries = Canaries()
    hooks = _Webhooks()
    sink = _MailSink()
    smtp = Controller(sink, hostname="127.0.0.1", port=_free_port())
    smtp.start()
    council = _council_with_webhooks(tmp_path / "council", f"{hooks.base}/{canaries.hook_path}")
    run = uuid.uuid4().hex[:8]
    sources = {name: f"CANARY-{name}-{run}" for name in ("accepted", "rejected", "deadletter")}
    # This one report is refused by the database, as a row it cannot store would be: intake retries it
    # and then dead-letters it (an outage would be waited out instead).
    trigger = f"canary_refuse_{run}"
    await db.execute(
        f"""
        CREATE FUNCTION public.{trigger}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.source_id = '{sources["deadletter"]}' THEN
                RAISE EXCEPTION 'canary: this report cannot be stored';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER {trigger} BEFORE INSERT ON intake.reports
            FOR EACH ROW EXECUTE FUNCTION public.{trigger}();
        """
    )
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    env = {
        **os.environ,
        **infra.env(),
        "CASEWAY_COUNCIL_DIR": str(council),
        "CASEWAY_LOG_FORMAT": "json",
        "CASEWAY_LOG_LEVEL": "debug",
        "CASEWAY_INTAKE_OPEN311_SEED_API_KEY": API_KEY,
        "CASEWAY_NOTIFIER_SMTP_PORT": str(smtp.port),
        "CASEWAY_NOTIFIER_IGNORE_HOURS": "true",
        "CASEWAY_NOTIFIER_MAX_ATTEMPTS": "2",
        "CASEWAY_NOTIFIER_RETRY_BASE_SECONDS": "0.2",
        "CASEWAY_NOTIFIER_RETRY_MAX_SECONDS": "0.5",
        # Two failures and the failing webhook is given up on, not paused as an outage.
        "CASEWAY_NOTIFIER_BREAKER_THRESHOLD": "100",
    }
    reporter = {"name": canaries.name, "email": canaries.email, "phone": canaries.phone}
    contact_form = {
        "first_name": canaries.first,
        "last_name": canaries.last,
        "email": canaries.email,
        "phone": canaries.phone,
    }

    def contact_centre(source_id: str, **overrides) -> bytes:
        report = {
            "source_system": "liverpool-direct",
            "source_id": source_id,
            "channel": "phone",
            "received_at": datetime.now(UTC).isoformat(),
            "category_text": "someone has dumped a mattress and bin bags",
            "location": {"lat": 53.4084, "lon": -2.9916, "address": "Bold Street"},
            "description": "Mattress and bags dumped by the back entry.",
            "reporter": reporter,
        }
        report.update(overrides)
        return json.dumps(report).encode()

    http_answers: dict[str, bytes] = {}
    accepted_id = report_id_for("liverpool-direct", sources["accepted"])
    # Its public id (issue 13 item 6): the services run with the development key.
    public_accepted = PublicIds(DEVELOPMENT_PUBLIC_ID_KEY).public_id(accepted_id, "liverpool-direct")
    try:
        async with _services(env, log_dir) as ports:
            intake = f"http://127.0.0.1:{ports['intake']}"
            router = f"http://127.0.0.1:{ports['router']}"
            producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, acks="all")
            await producer.start()
            try:
                topic = f"{infra.topic_prefix}{INPUT_TOPIC}"
                for name, value in (
                    ("accepted", contact_centre(sources["accepted"])),
                    ("rejected", contact_centre(sources["rejected"], location={"lat": 999, "lon": -2.99})),
                    ("deadletter", contact_centre(sources["deadletter"])),
                ):
                    await producer.send_and_wait(topic, value, key=sources[name].encode())
            finally:
                await producer.stop()

            async with httpx.AsyncClient(base_url=intake, timeout=15) as client:
                form = {
                    "api_key": API_KEY,
                    "service_code": "fly-tipping",
                    "lat": "53.4070",
                    "long": "-2.9790",
                    "address_string": "Lime Street",
                    "description": "Bags of rubbish left on the pavement.",
                    **contact_form,
                }
                accepted = await client.post("/open311/v2/requests.json", data=form)
                assert accepted.status_code == 200, accepted.text
                http_answers["POST requests (accepted)"] = accepted.content
                request_id = accepted.json()[0]["service_request_id"]
                refused = await client.post("/open311/v2/requests.json", data={**form, "lat": "999"})
                assert refused.status_code == 400
                http_answers["POST requests (refused)"] = refused.content
                update = await client.post(
                    "/open311/v2/servicerequestupdates.json",
                    data={
                        "api_key": API_KEY,
                        "service_request_id": request_id,
                        "update_id": f"canary-update-{run}",
                        "status": "OPEN",
                        "description": "Still there this morning.",
                        "updated_datetime": datetime.now(UTC).isoformat(),
                        **contact_form,
                    },
                )
                assert update.status_code == 200, update.text
                http_answers["POST servicerequestupdates"] = update.content

            async def delivered() -> bool:
                rows = await db.fetch(
                    "SELECT n.status FROM notifier.notifications n JOIN router.reports r USING (case_id)"
                    " WHERE r.report_id = $1 AND n.channel = 'webhook'",
                    accepted_id,
                )
                return {"sent", "failed"} <= {row["status"] for row in rows}

            async def routed() -> bool:
                return (
                    await db.fetchval(
                        "SELECT count(*) FROM router.reports WHERE report_id = ANY($1::uuid[])",
                        [accepted_id, uuid.UUID(request_id)],
                    )
                    == 2
                )

            await _wait_for("the webhook team alerted and the failing webhook given up on", delivered)
            await _wait_for("both accepted reports in cases", routed)

            async def dead_lettered() -> bool:
                records = await _read_all(infra, Topic.DEADLETTER.value, quiet=0.5)
                producers = {
                    dict(r.headers).get("producer", b"")
                    for r in records
                    if r.key == sources["deadletter"].encode()
                }
                failed = [r for r in records if dict(r.headers).get("event-type") == b"NotificationFailed"]
                return bool(producers) and bool(failed)

            await _wait_for("intake's and the notifier's dead letters", dead_lettered)

            references = [
                row["reference"]
                for row in await db.fetch(
                    "SELECT DISTINCT c.reference, c.neighbourhood FROM router.cases c"
                    " JOIN router.reports r USING (case_id) WHERE r.report_id = ANY($1::uuid[])",
                    [accepted_id, uuid.UUID(request_id)],
                )
            ]
            neighbourhoods = [
                row["neighbourhood"]
                for row in await db.fetch(
                    "SELECT DISTINCT neighbourhood FROM router.cases WHERE reference = ANY($1)"
                    " AND neighbourhood IS NOT NULL",
                    references,
                )
            ]
            async with httpx.AsyncClient(timeout=15) as client:
                gets = {
                    "GET requests.json": f"{intake}/open311/v2/requests.json",
                    "GET requests.xml": f"{intake}/open311/v2/requests.xml",
                    "GET requests/{id}.json (Open311)": f"{intake}/open311/v2/requests/{request_id}.json",
                    "GET requests/{id}.json (Kafka)": f"{intake}/open311/v2/requests/{public_accepted}.json",
                    "GET servicerequestupdates.json": (
                        f"{intake}/open311/v2/servicerequestupdates.json?api_key={API_KEY}"
                    ),
                    **{f"router {ref} page": f"{router}/cases/{quote(ref, safe='')}" for ref in references},
                    **{
                        f"router {ref} API": f"{router}/api/cases/{quote(ref, safe='')}" for ref in references
                    },
                    **{
                        f"router board {n}": f"{router}/neighbourhoods/{quote(n, safe='')}"
                        for n in neighbourhoods
                    },
                    **{
                        f"router board API {n}": f"{router}/api/neighbourhoods/{quote(n, safe='')}/board"
                        for n in neighbourhoods
                    },
                    **{f"{s} /metrics": f"http://127.0.0.1:{p}/metrics" for s, p in ports.items()},
                    **{f"{s} /readyz": f"http://127.0.0.1:{p}/readyz" for s, p in ports.items()},
                }
                for what, url in gets.items():
                    answer = await client.get(url)
                    assert answer.status_code == 200, f"{what}: {answer.status_code} {answer.text[:200]}"
                    http_answers[what] = answer.content
            assert references, "no case was opened"
    finally:
        await db.execute(f"DROP TRIGGER IF EXISTS {trigger} ON intake.reports")
        await db.execute(f"DROP FUNCTION IF EXISTS public.{trigger}()")
        smtp.stop()
        hooks.stop()

    # The planting worked: the webhooks were called and intake holds the details.
    assert any(path.endswith("/ok") for path, _ in hooks.received)
    assert any(path.endswith("/fail") for path, _ in hooks.received)
    assert (
        await db.fetchval("SELECT count(*) FROM intake.reporter_contacts WHERE email = $1", canaries.email)
        >= 2
    )

    leaks = [
        *await _topic_leaks(infra, canaries),
        *_log_leaks(log_dir, canaries),
        *await _table_leaks(db, canaries),
        *(
            f"HTTP {what}: {', '.join(found)}"
            for what, body in http_answers.items()
            if (found := canaries.found(body))
        ),
    ]
    unknown = sorted({leak for leak in leaks if not leak.startswith(tuple(KNOWN_LEAKS))})
    gone = [place for place in KNOWN_LEAKS if not any(leak.startswith(place) for leak in leaks)]
    assert not unknown, "planted values found where they must not be:\n" + "\n".join(unknown)
    assert not gone, f"no longer leaking (take them off KNOWN_LEAKS): {gone}"
