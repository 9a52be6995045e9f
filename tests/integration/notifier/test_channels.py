"""Each channel adapter against a real server on loopback: SMTP (aiosmtpd), chat webhooks (HTTP), and a
local stand-in for GOV.UK Notify that answers its documented endpoints and failure modes."""

import asyncio
import email
import uuid

import httpx
import pytest

from caseway_notifier.adapters.channels import (
    Message,
    NotifyChannel,
    PermanentDeliveryError,
    SmtpChannel,
    TransientDeliveryError,
    WebhookChannel,
)

from .conftest import EMAIL_TEMPLATE, NOTIFY_KEY, NOTIFY_SERVICE_ID, SMS_TEMPLATE, free_port


def _message(address, text="LV-2026-000001"):
    return Message(
        key=f"k-{uuid.uuid4()}", address=address, subject=f"New case {text}", body=f"Case {text}\n"
    )


async def test_smtp_delivers_over_a_few_reused_connections(mail_sink):
    channel = SmtpChannel(host="127.0.0.1", port=mail_sink.port, sender="caseway@example.org", connections=2)
    marker = uuid.uuid4().hex
    peers_before = set(mail_sink.peers)
    await asyncio.gather(*(channel.send(_message(f"team{i}@example.org", marker)) for i in range(20)))
    await channel.close()
    received = mail_sink.containing(marker)
    assert len(received) == 20
    assert len(mail_sink.peers - peers_before) <= 2  # 20 messages, at most two connections
    parsed = email.message_from_bytes(received[0][1])
    assert parsed["X-Caseway-Notification-Key"].startswith("k-")


async def test_smtp_refused_recipient_is_permanent_and_the_next_message_still_goes(mail_sink):
    channel = SmtpChannel(host="127.0.0.1", port=mail_sink.port, sender="caseway@example.org", connections=1)
    with pytest.raises(PermanentDeliveryError):
        await channel.send(_message("reject-me@example.org"))
    marker = uuid.uuid4().hex
    await channel.send(_message("ok@example.org", marker))
    await channel.close()
    assert len(mail_sink.containing(marker)) == 1


async def test_smtp_server_down_is_transient():
    channel = SmtpChannel(host="127.0.0.1", port=free_port(), sender="caseway@example.org", timeout=2)
    with pytest.raises(TransientDeliveryError):
        await channel.send(_message("ok@example.org"))


async def test_webhook_posts_text_that_chat_tools_show_and_classifies_failures(webhooks):
    async with httpx.AsyncClient(timeout=5) as client:
        channel = WebhookChannel(client=client)
        marker = uuid.uuid4().hex
        await channel.send(_message(f"{webhooks.url}/hook-ok", marker))
        [(path, headers, body)] = webhooks.containing(marker)
        assert path == "/hook-ok"
        assert set(body) == {"text"}
        assert marker in body["text"]
        assert headers["Idempotency-Key"].startswith("k-")
        for status, error in (
            (429, TransientDeliveryError),
            (503, TransientDeliveryError),
            (404, PermanentDeliveryError),
        ):
            webhooks.script[f"/hook-{status}"] = [status]
            with pytest.raises(error):
                await channel.send(_message(f"{webhooks.url}/hook-{status}"))
    with pytest.raises(TransientDeliveryError):  # nobody listening
        async with httpx.AsyncClient(timeout=2) as client:
            await WebhookChannel(client=client).send(_message(f"http://127.0.0.1:{free_port()}/x"))


async def test_notify_email_and_sms_are_accepted_with_a_valid_token_template_and_personalisation(notify):
    async with httpx.AsyncClient(timeout=5) as client:
        mail = NotifyChannel(
            client=client, kind="email", api_key=NOTIFY_KEY, template_id=EMAIL_TEMPLATE, base_url=notify.url
        )
        sms = NotifyChannel(
            client=client, kind="sms", api_key=NOTIFY_KEY, template_id=SMS_TEMPLATE, base_url=notify.url
        )
        marker = uuid.uuid4().hex
        await mail.send(_message("team@example.org", marker))
        await sms.send(_message("+447700900123", marker))
    sent = notify.containing(marker)
    assert [path for path, _, _ in sent] == ["/v2/notifications/email", "/v2/notifications/sms"]
    email_body, sms_body = sent[0][2], sent[1][2]
    assert email_body["email_address"] == "team@example.org"
    assert email_body["personalisation"]["subject"] == f"New case {marker}"
    assert len(email_body["reference"]) == 32
    assert sms_body["phone_number"] == "+447700900123"
    assert marker in sms_body["personalisation"]["body"]


async def test_notify_failures_are_classified_as_documented(notify):
    async with httpx.AsyncClient(timeout=5) as client:
        mail = NotifyChannel(
            client=client, kind="email", api_key=NOTIFY_KEY, template_id=EMAIL_TEMPLATE, base_url=notify.url
        )
        sms = NotifyChannel(
            client=client, kind="sms", api_key=NOTIFY_KEY, template_id=SMS_TEMPLATE, base_url=notify.url
        )
        wrong_key = NotifyChannel(
            client=client,
            kind="email",
            api_key=f"other-{NOTIFY_SERVICE_ID}-{uuid.uuid4()}",
            template_id=EMAIL_TEMPLATE,
            base_url=notify.url,
        )
        with pytest.raises(TransientDeliveryError, match="429"):
            await mail.send(_message("ratelimit@example.org"))
        with pytest.raises(TransientDeliveryError, match="500"):
            await mail.send(_message("fail500@example.org"))
        with pytest.raises(PermanentDeliveryError, match="ValidationError"):
            await sms.send(_message("12345"))
        with pytest.raises(PermanentDeliveryError, match="AuthError"):
            await wrong_key.send(_message("team@example.org"))
