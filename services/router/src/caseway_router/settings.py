"""The router's one settings class (environment prefix CASEWAY_ROUTER_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from caseway_router.domain.duplicates import RuleChanges, Shadow
from caseway_shared.council import LIVERPOOL_DIR
from caseway_shared.settings import ServiceSettings


class ShadowDetector(BaseModel):
    """Another duplicate-detector configuration to run in shadow (`CASEWAY_ROUTER_DUPLICATE_SHADOW`, JSON):
    changes to the council's live rules, each left out to keep the live value. It decides beside the live
    detector over the same candidates and changes nothing (docs/duplicates.md, shadow mode)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="What its decisions are recorded under (default: its changes, e.g. link_threshold=0.02).",
    )
    link_threshold: float | None = Field(default=None, gt=0, le=1)
    review_threshold: float | None = Field(default=None, ge=0, le=1)
    location_sigma_m: float | None = Field(default=None, gt=0)
    location_prior_points: float | None = Field(default=None, gt=0)
    half_life_share: float | None = Field(default=None, gt=0)
    pool_nearby: bool | None = None
    radius_scale: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="Multiplies each category's radius; at most 1, since the shadow scores only the "
        "candidates the live search found.",
    )

    def shadow(self) -> Shadow:
        changes = RuleChanges(
            link_threshold=self.link_threshold,
            review_threshold=self.review_threshold,
            location_sigma_m=self.location_sigma_m,
            location_prior_points=self.location_prior_points,
            half_life_share=self.half_life_share,
            pool_nearby=self.pool_nearby,
            radius_scale=self.radius_scale,
        )
        return Shadow(self.name or changes.describe(), changes)


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
    duplicate_shadow: ShadowDetector | None = Field(
        default=None,
        description="A duplicate-detector configuration to run beside the live one, recording what it would "
        'have decided and changing nothing (JSON, e.g. {"link_threshold": 0.02}). Unset: no shadow.',
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
