"""Where notifications go: one small interface, a real adapter per channel, and an in-memory twin.

`send` raises `TransientDeliveryError` for what may work later (timeouts, 429, 5xx, connection refused)
and `PermanentDeliveryError` for what never will (a rejected address, 4xx): the sender retries the first
and records the second as failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib
import httpx


class DeliveryError(Exception):
    """A notification could not be delivered."""


class TransientDeliveryError(DeliveryError):
    """Worth retrying later."""


class PermanentDeliveryError(DeliveryError):
    """Retrying will not help."""


@dataclass(frozen=True, slots=True)
class Message:
    key: str
    address: str
    subject: str
    body: str


class NotificationChannel(Protocol):
    async def send(self, message: Message) -> None: ...


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
    """Email over SMTP (a council relay, or the local sink the dev stack runs)."""

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

    async def send(self, message: Message) -> None:
        email = EmailMessage()
        email["From"] = self._sender
        email["To"] = message.address
        email["Subject"] = message.subject
        # The key lets a receiving system drop a repeat after a crash between sending and recording.
        email["X-Caseway-Notification-Key"] = message.key
        email.set_content(message.body)
        try:
            await aiosmtplib.send(email, **self._options)  # type: ignore[arg-type]
        except aiosmtplib.SMTPRecipientsRefused as error:
            raise PermanentDeliveryError(f"recipient refused: {error}") from error
        except aiosmtplib.SMTPResponseException as error:
            if 500 <= error.code < 600:  # noqa: PLR2004 - SMTP permanent failures
                raise PermanentDeliveryError(f"SMTP {error.code}") from error
            raise TransientDeliveryError(f"SMTP {error.code}") from error
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise TransientDeliveryError(f"{type(error).__name__}: {error}") from error


class WebhookChannel:
    """A JSON POST that chat tools (Slack, Teams, Mattermost incoming webhooks) accept: `text` is shown."""

    def __init__(self, *, client: httpx.AsyncClient) -> None:
        self._client = client

    async def send(self, message: Message) -> None:
        try:
            response = await self._client.post(
                message.address,
                json={"text": f"{message.subject}\n{message.body}"},
                headers={"Idempotency-Key": message.key},
            )
        except httpx.HTTPError as error:
            raise TransientDeliveryError(f"{type(error).__name__}: {error}") from error
        if response.status_code == 429 or response.status_code >= 500:  # noqa: PLR2004
            raise TransientDeliveryError(f"HTTP {response.status_code}")
        if response.status_code >= 400:  # noqa: PLR2004
            raise PermanentDeliveryError(f"HTTP {response.status_code}")
