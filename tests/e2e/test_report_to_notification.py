"""One report travels the whole way: three service processes, the real broker, the real database."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiosmtpd.controller import Controller
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from typer.testing import CliRunner

from caseway_ops.cli import app as cli
from caseway_shared.events import report_id_for

pytestmark = pytest.mark.infra


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _OtlpCollector:
    """A loopback OTLP/HTTP trace receiver: what the services export when an endpoint is configured."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, str]] = []  # (service, trace id, span name)
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    service = next(
                        (
                            a.value.string_value
                            for a in resource_spans.resource.attributes
                            if a.key == "service.name"
                        ),
                        "",
                    )
                    for scope in resource_spans.scope_spans:
                        collector.spans.extend(
                            (service, span.trace_id.hex(), span.name) for span in scope.spans
                        )
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()
                self.wfile.write(b"")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()


class _MailSink:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(envelope.content)
        return "250 OK"


@asynccontextmanager
async def _services(infra, smtp_port: int, otlp_endpoint: str):
    """Start intake, router and notifier as separate processes, and wait until each is ready."""
    processes = []
    ports = {}
    logs = {}
    try:
        for service in ("intake", "router", "notifier"):
            port = _free_port()
            ports[service] = port
            env = {
                **os.environ,
                **infra.env(),
                f"CASEWAY_{service.upper()}_HTTP_PORT": str(port),
                "CASEWAY_NOTIFIER_SMTP_PORT": str(smtp_port),
                "CASEWAY_NOTIFIER_IGNORE_HOURS": "true",
                "CASEWAY_LOG_FORMAT": "json",
                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
                "OTEL_BSP_SCHEDULE_DELAY": "200",
            }
            log_file = open(f"{os.environ.get('CASEWAY_TEST_LOGS', '/tmp')}/e2e-{service}.log", "wb")  # noqa: SIM115, ASYNC230
            logs[service] = log_file
            processes.append(
                subprocess.Popen(  # noqa: ASYNC220 - started once, reaped at the end
                    [sys.executable, "-m", f"caseway_{service}"],
                    env=env,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                )
            )
        async with httpx.AsyncClient() as client:
            for service, port in ports.items():
                deadline = time.monotonic() + 180  # readiness: a loaded 2-core machine starts slowly
                while True:
                    try:
                        response = await client.get(f"http://127.0.0.1:{port}/readyz")
                        if response.status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    assert time.monotonic() < deadline, f"{service} did not become ready"
                    await asyncio.sleep(0.3)
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for log_file in logs.values():
            log_file.close()


async def _read_topic(infra, topic: str, *, want, timeout: float = 30.0):
    """Records of `topic` from the start until `want(records)` holds."""
    consumer = AIOKafkaConsumer(
        f"{infra.topic_prefix}{topic}",
        bootstrap_servers=infra.bootstrap_servers,
        group_id=f"test-reader-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records = []
    try:
        deadline = time.monotonic() + timeout
        while not want(records) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for partition_records in batch.values():
                records.extend(partition_records)
        return records
    finally:
        await consumer.stop()


async def test_a_contact_centre_report_becomes_a_case_and_a_notification(infra, db):
    """A report published upstream is accepted, opened as a case with its departments, and the
    assigned teams are emailed once; every hop carries the report's correlation id."""
    collector = _OtlpCollector()
    sink = _MailSink()
    smtp = Controller(sink, hostname="127.0.0.1", port=_free_port())
    smtp.start()
    source_id = f"LD-{uuid.uuid4().hex[:8]}"
    report_id = report_id_for("liverpool-direct", source_id)
    report = {
        "source_system": "liverpool-direct",
        "source_id": source_id,
        "channel": "phone",
        "received_at": datetime.now(UTC).isoformat(),
        "category_text": "someone has dumped a mattress and bin bags",
        # A place and address of its own: other tests of the session report fly-tipping on Bold Street,
        # and a report there would join their case (same address) instead of opening one.
        "location": {"lat": 53.3925, "lon": -2.9575, "address": f"{source_id} Lodge Lane"},
        "description": "Mattress and bags dumped by the back entry.",
        "reporter": {"name": "Canary Resident", "email": "canary@example.net"},
    }
    try:
        async with _services(infra, smtp.port, collector.endpoint):
            producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, acks="all")
            await producer.start()
            await producer.send_and_wait(
                f"{infra.topic_prefix}contact-centre.reports.v1",
                json.dumps(report).encode(),
                key=source_id.encode(),
            )
            await producer.stop()

            deadline = time.monotonic() + 180  # a loaded 2-core machine starts slowly
            while time.monotonic() < deadline:
                # Three teams and the neighbourhood manager (three departments: a joined-up case).
                sent, unsent = await db.fetchrow(
                    "SELECT count(*) FILTER (WHERE n.status = 'sent'),"
                    " count(*) FILTER (WHERE n.status <> 'sent')"
                    " FROM notifier.notifications n JOIN router.reports r USING (case_id)"
                    " WHERE r.report_id = $1",
                    report_id,
                )
                if sent >= 4 and unsent == 0:
                    break
                await asyncio.sleep(0.3)

            case = await db.fetchrow(
                "SELECT c.* FROM router.cases c JOIN router.reports r USING (case_id) WHERE r.report_id = $1",
                report_id,
            )
            assert case is not None, "no case was opened"
            assert case["category"] == "fly-tipping"
            assert case["neighbourhood"] is not None
            departments = {
                row["department"]
                for row in await db.fetch(
                    "SELECT department FROM router.assignments WHERE case_id = $1", case["case_id"]
                )
            }
            assert departments == {"streetscene", "env-crime", "city-watch"}

            notifications = await db.fetch(
                "SELECT team, status, kind FROM notifier.notifications WHERE case_id = $1", case["case_id"]
            )
            teams = {row["team"] for row in notifications if row["kind"] == "new-case"}
            assert len(teams) == 3, teams
            assert all(row["status"] == "sent" for row in notifications)
            assert len(sink.messages) == len(notifications)
            assert all(case["reference"].encode() in message for message in sink.messages)

            # Other tests of the session share these topics: this report's records are those of its case.
            def of_this_report(records):
                return [
                    r for r in records if dict(r.headers).get("correlation-id") == str(report_id).encode()
                ]

            received = of_this_report(
                await _read_topic(infra, "reports.received.v1", want=lambda rs: bool(of_this_report(rs)))
            )
            opened = [
                r
                for r in await _read_topic(
                    infra,
                    "cases.v1",
                    want=lambda rs: any(
                        r.key == str(case["case_id"]).encode()
                        and dict(r.headers)["event-type"] == b"CaseOpened"
                        for r in rs
                    ),
                )
                if r.key == str(case["case_id"]).encode()
            ]
            sent_events = of_this_report(
                await _read_topic(
                    infra,
                    "notifications.v1",
                    want=lambda rs: len(of_this_report(rs)) >= len(notifications),
                )
            )
            for records in (received, opened, sent_events):
                assert records, "a topic in the flow has nothing of this report"
                # Every record of its case carries the report's correlation id, hop after hop.
                assert {dict(r.headers)["correlation-id"].decode() for r in records} == {str(report_id)}
            assert {json.loads(r.value)["event_type"] for r in sent_events} == {"NotificationSent"}
            assert all(r.key == str(case["case_id"]).encode() for r in opened)
            # The resident's contact details stay in intake: not on any topic downstream.
            for record in (*received, *opened, *sent_events):
                assert b"canary" not in record.value.lower()

            # One trace follows the report through all three services, across the outboxes.
            def services_in_one_trace():
                by_trace: dict[str, set[str]] = {}
                for service, trace_id, _ in collector.spans:
                    by_trace.setdefault(trace_id, set()).add(service)
                return max(by_trace.values(), key=len, default=set())

            deadline = time.monotonic() + 15
            while len(services_in_one_trace()) < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert services_in_one_trace() == {"caseway-intake", "caseway-router", "caseway-notifier"}, (
                sorted(collector.spans)
            )
            names = {name for _, _, name in collector.spans}
            assert f"process {infra.topic_prefix}cases.v1" in names
            assert f"publish {infra.topic_prefix}reports.received.v1" in names

        # Operators can read the whole case from the command line.
        shown = await asyncio.to_thread(
            CliRunner().invoke,
            cli,
            ["case", "show", case["reference"]],
            env={**infra.env(), "COLUMNS": "250"},
        )
        assert shown.exit_code == 0, shown.output
        assert "streetscene" in shown.output
        assert "opened" in shown.output
        assert "new-case" in shown.output
    finally:
        smtp.stop()
        collector.stop()
