"""The notifier's one settings class (environment prefix CASEWAY_NOTIFIER_)."""

from __future__ import annotations

from pathlib import Path

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
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    mail_from: str = "caseway@example.org"
    send_batch_size: int = Field(default=200, ge=1)
    send_poll_seconds: float = Field(default=0.5, gt=0)
    send_timeout_seconds: float = Field(default=10, gt=0)
    ignore_hours: bool = Field(
        default=False, description="Send at once whatever the team's hours (demos and tests)."
    )
