"""The router's one settings class (environment prefix CASEWAY_ROUTER_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from caseway_shared.council import LIVERPOOL_DIR
from caseway_shared.settings import ServiceSettings


class RouterSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CASEWAY_ROUTER_", extra="ignore", populate_by_name=True)

    http_port: int = 8081
    most_locks_per_transaction: int = Field(
        default=1000,
        ge=10,
        description=(
            "Advisory locks one routing transaction may hold (a batch is split to stay under it). "
            "PostgreSQL's lock table holds max_locks_per_transaction x max_connections for the server."
        ),
    )
    council_dir: Path = Field(
        default=LIVERPOOL_DIR, validation_alias=AliasChoices("council_dir", "CASEWAY_COUNCIL_DIR")
    )
