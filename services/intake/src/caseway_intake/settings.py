"""Intake's one settings class (environment prefix CASEWAY_INTAKE_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from caseway_shared.council import LIVERPOOL_DIR
from caseway_shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CASEWAY_INTAKE_", extra="ignore", populate_by_name=True)

    http_port: int = 8080
    council_dir: Path = Field(
        default=LIVERPOOL_DIR, validation_alias=AliasChoices("council_dir", "CASEWAY_COUNCIL_DIR")
    )
    # Contact-centre events are small and validated in memory: large batches amortise the one database
    # transaction and the one outbox wake-up per batch.
    consumer_max_records: int = Field(default=2000, ge=1, description="Most records handled in one batch.")
    open311_seed_api_key: SecretStr | None = Field(
        default=None,
        description="An API key registered (hashed) at start-up under the name 'seed': for demos and dev.",
    )
    open311_jurisdiction_id: str | None = Field(
        default=None, description="If set, a request naming another jurisdiction_id is answered 404."
    )
    open311_answer_with: Literal["id", "token"] = Field(
        default="id",
        description="POST requests answers with the service_request_id, or with a token (GET tokens/...).",
    )
    open311_max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    open311_max_results: int = Field(default=1000, ge=1, le=10_000)
    open311_default_days: int = Field(
        default=90, ge=1, description="GET requests without dates covers this many days back."
    )
    open311_max_upload_bytes: int = Field(
        default=20 * 1024 * 1024, ge=1024, description="Most bytes of a multipart POST (with its photos)."
    )
    open311_max_photo_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Most bytes of a photo."
    )
