"""Intake's one settings class (environment prefix CASEWAY_INTAKE_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from caseway_intake.domain.privacy import DEVELOPMENT_CONTACT_KEY, DEVELOPMENT_PUBLIC_ID_KEY
from caseway_shared.council import LIVERPOOL_DIR
from caseway_shared.settings import ProductionProblem, ServiceSettings


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CASEWAY_INTAKE_", extra="ignore", populate_by_name=True)

    http_port: int = 8080
    council_dir: Path = Field(
        default=LIVERPOOL_DIR, validation_alias=AliasChoices("council_dir", "CASEWAY_COUNCIL_DIR")
    )
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
    # Residents' data (issue 13 item 6, docs/data-protection.md).
    contact_keys: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_CONTACT_KEY),
        description="Fernet keys, comma-separated, that seal contact details in rejected and dead-lettered "
        "records; the first seals, every one opens (rotate by putting the new key first). Only intake "
        "holds them.",
    )
    public_id_key: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_PUBLIC_ID_KEY),
        min_length=32,
        description="The secret public service_request_ids are made with. Never rotate it: every public "
        "id would change.",
    )
    retention_days: int = Field(
        default=365,
        ge=1,
        description="Days after a report was accepted when its contact details, texts and photos are purged.",
    )
    purge_interval_seconds: float = Field(
        default=3600, gt=0, description="How often the purge runs (0 rows purged costs one query)."
    )

    @property
    def contact_key_list(self) -> list[str]:
        return [key.strip() for key in self.contact_keys.get_secret_value().split(",") if key.strip()]

    def service_production_problems(self) -> list[ProductionProblem]:
        problems: list[ProductionProblem] = []
        if DEVELOPMENT_CONTACT_KEY in self.contact_key_list:
            problems.append(
                "development contact key: set CASEWAY_INTAKE_CONTACT_KEYS to a key of your own "
                "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
            )
        if self.public_id_key.get_secret_value() == DEVELOPMENT_PUBLIC_ID_KEY:
            problems.append(
                "development public id key: set CASEWAY_INTAKE_PUBLIC_ID_KEY to a secret of your own"
            )
        return problems
