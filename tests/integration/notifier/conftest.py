"""Loopback servers the notifier's tests talk to — a real SMTP server (aiosmtpd), a real HTTP server for
chat webhooks, and a fake GOV.UK Notify that answers Notify's documented endpoints, checks the JWT and can
fail on demand — and a running notifier wired to them, against the real broker and database."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiosmtpd.controller import Controller

from caseway_notifier.entrypoints.app import create_app
from caseway_notifier.settings import NotifierSettings
from caseway_ops.kafka_topics import create_topics

HOOD = "IT Hood"
NOTIFY_SERVICE_ID = str(uuid.uuid4())
NOTIFY_SECRET = str(uuid.uuid4())
NOTIFY_KEY = f"caseway_it-{NOTIFY_SERVICE_ID}-{NOTIFY_SECRET}"
EMAIL_TEMPLATE = str(uuid.uuid4())
SMS_TEMPLATE = str(uuid.uuid4())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MailSink:
    """aiosmtpd handler: keeps every message; refuses recipients whose address starts with 'reject'."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.peers: set[tuple[str, int]] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address.startswith("reject"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.peers.add(session.peer)
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def containing(self, text: str) -> list[tuple[list[str], bytes]]:
        return [m for m in self.messages if text.encode() in m[1]]


@dataclass
class HttpState:
    """What a loopback HTTP server received, and the statuses it is told to answer per path."""

    received: list[tuple[str, dict[str, str], dict]] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)  # next statuses, then 200
    always: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_status(self, path: str) -> int:
        with self.lock:
            if self.script.get(path):
                return self.script[path].pop(0)
            return self.always.get(path, 200)

    def containing(self, text: str, path: str | None = None) -> list[tuple[str, dict[str, str], dict]]:
        return [r for r in self.received if text in json.dumps(r[2]) and (path is None or r[0] == path)]


def _webhook_handler(state: HttpState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            status = state.next_status(self.path)
            with state.lock:
                state.received.append((self.path, dict(self.headers), body))
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    return Handler


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _notify_handler(state: HttpState) -> type[BaseHTTPRequestHandler]:  # noqa: C901 - one fake server
    """Answers POST /v2/notifications/{email,sms} as GOV.UK Notify documents it: 201 with the
    notification, 403 AuthError for a bad token, 400 BadRequestError/ValidationError for a bad request,
    429 RateLimitError and 500 on demand (recipients containing 'ratelimit' or 'fail500')."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, error: str, message: str) -> None:
            self._answer(status, {"errors": [{"error": error, "message": message}], "status_code": status})

        def _token_ok(self) -> bool:
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer "):
                return False
            try:
                header, payload, signature = auth.removeprefix("Bearer ").split(".")
                expected = hmac.new(NOTIFY_SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha256)
                claims = json.loads(_b64decode(payload))
                return (
                    hmac.compare_digest(expected.digest(), _b64decode(signature))
                    and json.loads(_b64decode(header)).get("alg") == "HS256"
                    and claims.get("iss") == NOTIFY_SERVICE_ID
                    and abs(time.time() - claims.get("iat", 0)) < 30
                )
            except ValueError:
                return False

        def do_POST(self) -> None:  # noqa: PLR0911 - one answer per documented outcome
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            with state.lock:
                state.received.append((self.path, dict(self.headers), body))
            kind = self.path.removeprefix("/v2/notifications/")
            if kind not in {"email", "sms"}:
                return self._error(404, "NotFound", "not found")
            if not self._token_ok():
                return self._error(403, "AuthError", "Invalid token: API key not found")
            recipient = body.get("email_address" if kind == "email" else "phone_number", "")
            template = EMAIL_TEMPLATE if kind == "email" else SMS_TEMPLATE
            if body.get("template_id") != template:
                return self._error(400, "BadRequestError", "Template not found")
            if "ratelimit" in recipient:
                return self._error(
                    429,
                    "RateLimitError",
                    "Exceeded rate limit for key type LIVE of 3000 requests per 60 seconds",
                )
            if "fail500" in recipient:
                return self._error(500, "Exception", "Internal server error")
            if kind == "sms" and not recipient.startswith("+447"):
                return self._error(400, "ValidationError", "phone_number Not a UK mobile number")
            personalisation = body.get("personalisation", {})
            if "body" not in personalisation or (kind == "email" and "subject" not in personalisation):
                return self._error(400, "BadRequestError", "Missing personalisation: body")
            return self._answer(
                201,
                {
                    "id": str(uuid.uuid4()),
                    "reference": body.get("reference"),
                    "content": {"body": personalisation["body"]},
                    "uri": f"/v2/notifications/{uuid.uuid4()}",
                    "template": {"id": template, "version": 1, "uri": "/v2/template/x"},
                },
            )

    return Handler


@contextlib.contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def mail_sink():
    sink = MailSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    sink.port = controller.port  # type: ignore[attr-defined]
    yield sink
    controller.stop()


@pytest.fixture(scope="module")
def webhooks():
    state = HttpState()
    with http_server(_webhook_handler(state)) as url:
        state.url = url  # type: ignore[attr-defined]
        yield state


@pytest.fixture(scope="module")
def notify():
    state = HttpState()
    with http_server(_notify_handler(state)) as url:
        state.url = url  # type: ignore[attr-defined]
        yield state


def teams_toml(hooks: str) -> str:
    return f"""
staff_case_url = "https://staff.example.org/cases/{{reference}}"
timezone = "Europe/London"

[escalation]
at_fraction = 0.5

[[teams]]
id = "it-waste"
name = "IT Waste"
department = "waste"
neighbourhoods = ["{HOOD}"]
channels = [
    {{ kind = "email", address = "it-waste@example.org" }},
    {{ kind = "webhook", address = "{hooks}/waste" }},
]

[[teams]]
id = "it-streets"
name = "IT Streets"
department = "streetscene"
neighbourhoods = ["{HOOD}"]
channels = [{{ kind = "email", address = "it-streets@example.org" }}]

[[teams]]
id = "it-parks"
name = "IT Parks"
department = "parks"
neighbourhoods = ["{HOOD}"]
delivery = "digest"
channels = [{{ kind = "email", address = "it-parks@example.org" }}]

[[teams]]
id = "it-flaky"
name = "IT Flaky"
department = "highways"
neighbourhoods = ["{HOOD}"]
channels = [{{ kind = "webhook", address = "{hooks}/flaky" }}]

[[teams]]
id = "it-broken"
name = "IT Broken"
department = "housing"
neighbourhoods = ["{HOOD}"]
channels = [
    {{ kind = "webhook", address = "{hooks}/gone" }},
    {{ kind = "email", address = "reject-it@example.org" }},
]

[[teams]]
id = "it-down"
name = "IT Down"
department = "police"
neighbourhoods = ["{HOOD}"]
channels = [{{ kind = "webhook", address = "{hooks}/down" }}]

[[teams]]
id = "it-sms"
name = "IT SMS"
department = "pest-control"
neighbourhoods = ["{HOOD}"]
channels = [{{ kind = "sms", address = "+447700900001" }}]

[[teams]]
id = "it-équipe"
name = "IT Équipe"
department = "it-unicode"
neighbourhoods = ["{HOOD}"]
channels = [{{ kind = "webhook", address = "{hooks}/équipe" }}]

[[teams]]
id = "it-badurl"
name = "IT Bad URL"
department = "it-badurl"
neighbourhoods = ["{HOOD}"]
channels = [{{ kind = "webhook", address = "http://it:bad:port/x" }}]

[[teams]]
id = "it-outage"
name = "IT Outage"
department = "it-outage"
neighbourhoods = ["{HOOD}"]
channels = [{{ kind = "webhook", address = "{hooks}/outage" }}]

[[teams]]
id = "it-later"
name = "IT Later"
department = "it-later"
neighbourhoods = ["{HOOD}"]
delivery = "digest"
channels = [{{ kind = "email", address = "it-later@example.org" }}]

[[managers]]
neighbourhood = "{HOOD}"
name = "IT manager"
channels = [{{ kind = "email", address = "it-manager@example.org" }}]
"""


def notifier_options() -> dict[str, object]:
    """Settings the reliability fixes added (a channel's circuit breaker), on a test's time scale; read
    only where the settings know them, so the same fixture runs against the code before the fixes."""
    known = NotifierSettings.model_fields
    wanted = {"breaker_threshold": 3, "breaker_cooldown_seconds": 0.2, "breaker_max_cooldown_seconds": 0.5}
    return {name: value for name, value in wanted.items() if name in known}


@dataclass
class Running:
    app: object
    service: object
    infra: object
    prefix: str
    sink: MailSink
    webhooks: HttpState
    notify: HttpState
    producer: AIOKafkaProducer


@pytest.fixture(scope="module")
async def notifier(infra, mail_sink, webhooks, notify, tmp_path_factory):
    """The notifier service running in this process with its real adapters, pointed at the loopback
    servers, this session's topics and database. Anything it left pending is cancelled afterwards so no
    later test's notifier delivers it."""
    # Topics of its own, so that what these tests publish is in nobody else's way (the e2e test reads
    # the session's topics whole).
    prefix = f"{infra.topic_prefix}notifier-{uuid.uuid4().hex[:6]}."
    await create_topics(infra.bootstrap_servers, prefix)
    council = tmp_path_factory.mktemp("council")
    (council / "teams.toml").write_text(teams_toml(webhooks.url))
    settings = NotifierSettings(
        kafka_bootstrap_servers=infra.bootstrap_servers,
        database_url=infra.database_url,
        topic_prefix=prefix,
        council_dir=council,
        smtp_port=mail_sink.port,
        notify_api_key=NOTIFY_KEY,
        notify_base_url=notify.url,
        notify_email_template_id=EMAIL_TEMPLATE,
        notify_sms_template_id=SMS_TEMPLATE,
        ignore_hours=True,
        max_attempts=3,
        retry_base_seconds=0.05,
        retry_max_seconds=0.2,
        send_poll_seconds=0.1,
        escalation_poll_seconds=0.2,
        **notifier_options(),
        log_format="console",
        log_level="warning",
    )
    app = create_app(settings)
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, acks="all")
    await producer.start()
    async with app.router.lifespan_context(app):
        deadline = time.monotonic() + 180  # a loaded 2-core machine starts slowly
        while not (all((await app.state.runtime.readiness()).values()) and app.state.runtime.consuming()):
            assert time.monotonic() < deadline, "the notifier did not become ready"
            await asyncio.sleep(0.2)
        yield Running(app, app.state.sender, infra, prefix, mail_sink, webhooks, notify, producer)
        await app.state.runtime.pool.execute(
            "UPDATE notifier.notifications SET status = 'suppressed' WHERE status = 'pending'"
            " AND (team LIKE 'it-%' OR team = $1)",
            f"manager:{HOOD}",
        )
        await app.state.runtime.pool.execute(
            "UPDATE notifier.cases SET escalated_at = now() WHERE neighbourhood = $1", HOOD
        )
    await producer.stop()


async def read_topic(running: Running, topic: str, *, want, timeout: float = 20.0):
    """Records of the running notifier's `topic` from the start until `want(records)` holds (or time
    runs out)."""
    consumer = AIOKafkaConsumer(
        f"{running.prefix}{topic}",
        bootstrap_servers=running.infra.bootstrap_servers,
        group_id=f"test-reader-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records = []
    try:
        deadline = time.monotonic() + timeout
        while not want(records) and time.monotonic() < deadline:
            for partition_records in (await consumer.getmany(timeout_ms=300)).values():
                records.extend(partition_records)
        return records
    finally:
        await consumer.stop()


@pytest.fixture
def topic_reader():
    return read_topic
