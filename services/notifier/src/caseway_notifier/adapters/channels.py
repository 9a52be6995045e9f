"""Where notifications go: one small interface, a real adapter per channel, and an in-memory twin.

`send` raises `TransientDeliveryError` for what may work later (timeouts, 429, 5xx, connection refused)
and `PermanentDeliveryError` for what never will (a rejected address, 4xx, an invalid URL): the sender
retries the first and records the second as failed (and classifies anything else a channel raises, see
`caseway_notifier.domain.delivery`).

Adapters: `SmtpChannel` (email over SMTP, connections reused), `NotifyChannel` (email or SMS through
GOV.UK Notify's HTTP API), `WebhookChannel` (chat tools' incoming webhooks) and `InMemoryChannel`, the
twin for unit tests.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from email.header import Header
from email.utils import formatdate
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

import aiosmtplib
import httpx

from caseway_notifier.domain.delivery import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from caseway_notifier.service.ports import Message, NotificationChannel

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "DeliveryError",
    "InMemoryChannel",
    "Message",
    "NotificationChannel",
    "NotifyChannel",
    "PermanentDeliveryError",
    "SmtpChannel",
    "TransientDeliveryError",
    "WebhookChannel",
]


@dataclass
class InMemoryChannel:
    """The test twin: records what would have been sent; can be told to fail."""

    sent: list[Message] = field(default_factory=list)
    fail_with: DeliveryError | None = None

    async def send(self, message: Message) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(message)


class SmtpChannel:
    """Email over SMTP (a council relay, or the local sink the dev stack runs).

    Connections are kept open and reused (up to `connections` at once): opening one per message costs a
    TCP handshake, a greeting and EHLO each time, which caps throughput far below what a relay accepts.
    A connection that failed is dropped and a fresh one opened on next use."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 10,
        connections: int = 4,
    ) -> None:
        self._options = {
            "hostname": host,
            "port": port,
            "username": username,
            "password": password,
            "start_tls": starttls,
            "timeout": timeout,
        }
        self._sender = sender
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        for _ in range(max(1, connections)):
            self._idle.put_nowait(aiosmtplib.SMTP(**self._options))  # type: ignore[arg-type]

    def _email(self, message: Message) -> bytes:
        """The message as RFC 5322 bytes, written directly: the `email` package's header objects cost
        milliseconds a message, which at hundreds a second is most of the sender's time. Every header
        value is ours or configuration (never resident text); line breaks are stripped all the same."""
        subject = _one_line(message.subject)
        if not subject.isascii():
            subject = Header(subject, "utf-8").encode()
        body = message.body.replace("\r\n", "\n").replace("\n", "\r\n")
        if body.isascii():
            encoding, payload = "7bit", body.encode()
        else:
            encoding, payload = "base64", base64.encodebytes(body.encode()).replace(b"\n", b"\r\n")
        digest = hashlib.sha256(message.key.encode()).hexdigest()[:32]
        head = (
            f"From: {self._sender}\r\n"
            f"To: {_one_line(message.address)}\r\n"
            f"Subject: {subject}\r\n"
            f"Date: {formatdate(localtime=False)}\r\n"
            f"Message-ID: <{digest}@caseway>\r\n"
            # The key lets a receiving system drop a repeat after a crash between sending and recording.
            f"X-Caseway-Notification-Key: {quote(_one_line(message.key), safe=_KEY_SAFE)}\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
        )
        return head.encode() + payload

    async def send(self, message: Message) -> None:
        email = self._email(message)
        client = await self._idle.get()
        healthy = False
        try:
            if not client.is_connected:
                await client.connect()
            await client.sendmail(self._sender, [message.address], email)
            healthy = True
        except aiosmtplib.SMTPRecipientsRefused as error:
            raise PermanentDeliveryError(f"recipient refused: {error}") from error
        except aiosmtplib.SMTPResponseException as error:
            if error.code >= 500:  # noqa: PLR2004 - SMTP permanent failures are 5xx
                raise PermanentDeliveryError(f"SMTP {error.code}") from error
            raise TransientDeliveryError(f"SMTP {error.code}") from error
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise TransientDeliveryError(f"{type(error).__name__}: {error}") from error
        finally:
            # After any failure (or a cancellation mid-conversation) the session's state is unknown:
            # drop the connection, and the next message opens a fresh one.
            if not healthy and client.is_connected:
                client.close()
            self._idle.put_nowait(client)

    async def close(self) -> None:
        """Say goodbye on every open connection."""
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client.is_connected:
                with contextlib.suppress(Exception):
                    await client.quit()


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


class WebhookChannel:
    """A JSON POST that chat tools (Slack, Teams, Mattermost incoming webhooks) accept: `text` is shown."""

    def __init__(self, *, client: httpx.AsyncClient) -> None:
        self._client = client

    async def send(self, message: Message) -> None:
        try:
            response = await self._client.post(
                message.address,
                json={"text": f"{message.subject}\n{message.body}"},
                # A header is ASCII: a key with a team id that is not is sent percent-encoded.
                headers={"Idempotency-Key": quote(message.key, safe=_KEY_SAFE)},
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as error:
            # The URL itself is wrong (and a secret: it is not repeated in the error).
            raise PermanentDeliveryError(f"invalid webhook URL ({type(error).__name__})") from error
        except httpx.HTTPError as error:
            raise TransientDeliveryError(f"{type(error).__name__}: {error}") from error
        _raise_for_status(response)


_KEY_SAFE = "| :@-_.~!$&'()*+,;=/"  # an ASCII key goes as it is; only other characters are encoded


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code == 429 or response.status_code >= 500:  # noqa: PLR2004 - HTTP classes
        raise TransientDeliveryError(f"HTTP {response.status_code}")
    if response.status_code >= 400:  # noqa: PLR2004
        raise PermanentDeliveryError(f"HTTP {response.status_code}: {_notify_error(response)}")


def _notify_error(response: httpx.Response) -> str:
    """Notify's error text (`{"errors": [{"error": ..., "message": ...}]}`), or the start of the body."""
    try:
        errors = response.json().get("errors", [])
        return "; ".join(f"{e.get('error')}: {e.get('message')}" for e in errors)[:300]
    except (ValueError, AttributeError):
        return response.text[:300]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def notify_token(api_key: str, *, now: float | None = None) -> str:
    """The bearer token GOV.UK Notify expects: a JWT (HS256) signed with the key's secret, issued by the
    key's service id, at `now`. A key is `{name}-{service id (36)}-{secret (36)}`."""
    service_id, secret = api_key[-73:-37], api_key[-36:]
    header = _b64(json.dumps({"typ": "JWT", "alg": "HS256"}, separators=(",", ":")).encode())
    claims = {"iss": service_id, "iat": int(time.time() if now is None else now)}
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


class NotifyChannel:
    """Email or SMS through GOV.UK Notify, spoken over its HTTP API with an async client (its official
    Python client is synchronous and not thread-safe).

    The template must have `((subject))` and `((body))` placeholders (SMS: `((body))`). 429 and 5xx are
    transient; 400 (bad request, e.g. a bad number) and 403 (bad key) are permanent."""

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        kind: Literal["email", "sms"],
        api_key: str,
        template_id: str,
        base_url: str = "https://api.notifications.service.gov.uk",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._kind = kind
        self._api_key = api_key
        self._template_id = template_id
        self._url = f"{base_url.rstrip('/')}/v2/notifications/{kind}"
        self._clock = clock

    async def send(self, message: Message) -> None:
        recipient = "email_address" if self._kind == "email" else "phone_number"
        personalisation = {"body": message.body}
        if self._kind == "email":
            personalisation["subject"] = message.subject
        else:
            personalisation["body"] = f"{message.subject}\n{message.body}"
        payload = {
            recipient: message.address,
            "template_id": self._template_id,
            "personalisation": personalisation,
            # Notify does not deduplicate on it, but it ties Notify's records (and callbacks) to ours.
            "reference": hashlib.sha256(message.key.encode()).hexdigest()[:32],
        }
        token = notify_token(self._api_key, now=self._clock())
        try:
            response = await self._client.post(
                self._url, json=payload, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.HTTPError as error:
            raise TransientDeliveryError(f"{type(error).__name__}: {error}") from error
        _raise_for_status(response)
