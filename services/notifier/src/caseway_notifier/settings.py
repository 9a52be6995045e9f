"""The notifier's one settings class (environment prefix CASEWAY_NOTIFIER_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from caseway_shared.council import LIVERPOOL_DIR
from caseway_shared.settings import ServiceSettings


class NotifierSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CASEWAY_NOTIFIER_", extra="ignore", populate_by_name=True)

    http_port: int = 8082
    council_dir: Path = Field(
        default=LIVERPOOL_DIR, validation_alias=AliasChoices("council_dir", "CASEWAY_COUNCIL_DIR")
    )
    staff_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("staff_base_url", "CASEWAY_STAFF_BASE_URL"),
        description="Base URL of the router's staff pages (CASEWAY_STAFF_BASE_URL, as the router reads it): "
        "alerts link to <base>/cases/<reference>. Unset: teams.toml's staff_case_url.",
    )
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    mail_from: str = "caseway@example.org"
    smtp_connections: int = Field(default=4, ge=1, description="SMTP connections kept open and reused.")
    email_via: Literal["smtp", "notify"] = Field(
        default="smtp", description="Send email over SMTP or through GOV.UK Notify."
    )
    notify_api_key: SecretStr | None = Field(
        default=None, description="GOV.UK Notify API key; SMS (and email via Notify) need it."
    )
    notify_base_url: str = "https://api.notifications.service.gov.uk"
    notify_email_template_id: str = ""
    notify_sms_template_id: str = ""
    notify_rate_per_minute: int = Field(default=3000, ge=1, description="Notify's limit per API key.")
    smtp_rate_per_minute: int | None = Field(default=None, ge=1)
    webhook_rate_per_minute: int | None = Field(default=None, ge=1)
    send_batch_size: int = Field(default=200, ge=1)
    send_concurrency: int = Field(default=32, ge=1, description="Deliveries in flight per channel (default).")
    webhook_connections: int = Field(default=8, ge=1, description="Webhook deliveries in flight at once.")
    sender_workers: int = Field(
        default=2, ge=1, description="Sender loops; one sends while another claims and records."
    )
    max_attempts: int = Field(default=5, ge=1, description="Tries before a notification is failed.")
    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_max_seconds: float = Field(default=300.0, gt=0)
    escalation_poll_seconds: float = Field(default=30.0, gt=0)
    escalation_batch_size: int = Field(default=200, ge=1)
    send_poll_seconds: float = Field(default=0.5, gt=0)
    outcome_wait_seconds: float = Field(
        default=0.05,
        ge=0,
        description="How long a delivered notification's outcome waits for others to be recorded with it:"
        " one write for many under load, the outcome recorded at most this much later.",
    )
    outcome_group_size: int = Field(default=500, ge=1, description="Most outcomes recorded in one write.")
    send_timeout_seconds: float = Field(default=10, gt=0)
    claim_lease_seconds: float = Field(
        default=120.0,
        gt=0,
        description="A claimed notification is due again if its sender died this long ago.",
    )
    breaker_threshold: int = Field(
        default=3, ge=1, description="Transient failures in a row that pause a destination (an outage)."
    )
    breaker_cooldown_seconds: float = Field(default=5.0, gt=0, description="First pause of a destination.")
    breaker_max_cooldown_seconds: float = Field(
        default=120.0, gt=0, description="Longest pause between probes."
    )
    ignore_hours: bool = Field(
        default=False, description="Send at once whatever the team's hours (demos and tests)."
    )
