"""The router's one settings class (environment prefix CASEWAY_ROUTER_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
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
    staff_base_url: str = Field(
        default="http://127.0.0.1:8081",
        validation_alias=AliasChoices(
            "staff_base_url", "CASEWAY_ROUTER_STAFF_BASE_URL", "CASEWAY_STAFF_BASE_URL"
        ),
        description="Where staff reach the router's pages (alerts link to the same CASEWAY_STAFF_BASE_URL).",
    )
    staff_header: str = Field(
        default="X-Caseway-Staff", description="The header in which the sign-on proxy names the staff member."
    )
    trusted_proxies: tuple[str, ...] = Field(
        default=(),
        description="Addresses or networks (JSON list) of the sign-on proxy: the staff header is believed "
        "only from them, and refused from anywhere else.",
    )
    development_user: str | None = Field(
        default="dev",
        description="Staff id used for requests from this machine without the header, only while no proxy "
        "is configured (a developer's machine). Empty to turn off.",
    )
    form_secret: SecretStr | None = Field(
        default=None,
        description="Key of the forms' anti-forgery tokens; replicas behind one proxy need the same one "
        "(random per process when unset).",
    )
