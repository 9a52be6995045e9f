"""Settings every service shares: where Kafka and PostgreSQL are, how to log, which topic prefix to use.

Each service has exactly one settings class, a subclass of `ServiceSettings` with its own env prefix
(`CASEWAY_INTAKE_`, ...). The connection settings read the deployment-wide names (`KAFKA_BOOTSTRAP_SERVERS`,
`DATABASE_URL`, `CASEWAY_TOPIC_PREFIX`) so one environment points all three services at one cluster.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "postgresql://caseway:caseway@127.0.0.1:5432/caseway"
DEFAULT_KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:9092"


def _shared(name: str) -> AliasChoices:
    # A shared setting is read from the deployment-wide variable; the field name works in code and tests.
    return AliasChoices(name.lower(), name)


class ServiceSettings(BaseSettings):
    """What every service needs; subclasses add their own fields under their own prefix."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    kafka_bootstrap_servers: str = Field(
        default=DEFAULT_KAFKA_BOOTSTRAP_SERVERS, validation_alias=_shared("KAFKA_BOOTSTRAP_SERVERS")
    )
    topic_prefix: str = Field(
        default="",
        validation_alias=_shared("CASEWAY_TOPIC_PREFIX"),
        description="Prepended to every topic name; tests give each run its own.",
    )
    database_url: SecretStr = Field(
        default=SecretStr(DEFAULT_DATABASE_URL), validation_alias=_shared("DATABASE_URL")
    )
    database_pool_min: int = Field(default=1, ge=1)
    database_pool_max: int = Field(default=10, ge=1)
    database_statement_timeout_seconds: float = Field(
        default=10,
        gt=0,
        description=(
            "PostgreSQL cancels a statement that runs longer (statement_timeout): a slow query fails as "
            "QueryCanceledError, which the batch consumer treats as the batch's problem (it splits the "
            "batch), not as a database outage. The client gives up on a silent server 20 s later."
        ),
    )
    log_format: Literal["json", "console"] = Field(
        default="json", validation_alias=_shared("CASEWAY_LOG_FORMAT")
    )
    log_level: str = Field(default="info", validation_alias=_shared("CASEWAY_LOG_LEVEL"))
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    instance_id: str = Field(default="", description="This replica's name; defaults to service-pid.")
    consumer_max_records: int = Field(default=500, ge=1, description="Most records handled in one batch.")
    retry_attempts: int = Field(
        default=3, ge=1, description="Tries for a message before it is dead-lettered."
    )
    retry_backoff_seconds: float = Field(default=0.2, gt=0)
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=_shared("OTEL_EXPORTER_OTLP_ENDPOINT"),
        description="Where to export traces (OTLP over HTTP); tracing is off without it.",
    )
    heartbeat_seconds: float = Field(
        default=10,
        gt=0,
        validation_alias=_shared("CASEWAY_HEARTBEAT_SECONDS"),
        description="ops.heartbeat.v1 interval.",
    )
