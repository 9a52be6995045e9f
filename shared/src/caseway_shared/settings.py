"""Settings every service shares: where Kafka and PostgreSQL are, how to log, which topic prefix to use.

Each service has exactly one settings class, a subclass of `ServiceSettings` with its own env prefix
(`CASEWAY_INTAKE_`, ...). The connection settings read the deployment-wide names (`KAFKA_BOOTSTRAP_SERVERS`,
`DATABASE_URL`, `CASEWAY_TOPIC_PREFIX`) so one environment points all three services at one cluster.

Security is configuration only: `KAFKA_SECURITY_PROTOCOL` (PLAINTEXT by default; SASL_SSL with
`KAFKA_SASL_MECHANISM` SCRAM-SHA-512, `KAFKA_SASL_USERNAME` / `KAFKA_SASL_PASSWORD` and `KAFKA_SSL_CAFILE`
in production) and `DATABASE_SSL_MODE` / `DATABASE_SSL_ROOT_CERT` for PostgreSQL over TLS.

`CASEWAY_ENV=production` makes a service fail closed: it refuses to start, naming every reason, with the
development database credentials, plaintext Kafka, PostgreSQL without a verified certificate, SMTP
credentials sent without TLS, a loopback SMTP host, or a `CASEWAY_` variable that no setting reads (a
typo would otherwise be silently ignored). See docs/security.md.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Self
from urllib.parse import parse_qs, urlsplit

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_DATABASE_URL = "postgresql://caseway:caseway@127.0.0.1:5432/caseway"
DEFAULT_KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:9092"

# The three services' own prefixes: a variable under another service's prefix is that service's to check.
SERVICE_PREFIXES = ("CASEWAY_INTAKE_", "CASEWAY_ROUTER_", "CASEWAY_NOTIFIER_")
# Read by the deployment tooling (caseway stack, the load test, bootstrap), never by a service.
TOOLING_SETTINGS = frozenset(
    {
        "CASEWAY_STATE_DIR",
        "CASEWAY_DEPLOY_DIR",
        "CASEWAY_KAFKA_PORT",
        "CASEWAY_KAFKA_CONTROLLER_PORT",
        "CASEWAY_KAFKA_SINGLE_BROKER",
        "CASEWAY_KAFKA_REPLICATION_FACTOR",
        "CASEWAY_POSTGRES_PORT",
        "CASEWAY_PG_BIN",
        "CASEWAY_MAIL_SINK_PORT",
        "CASEWAY_BOOTSTRAP_DRY_RUN",
        "CASEWAY_TEST_LOGS",
        "CASEWAY_FUZZ_EXAMPLES",
    }
)
TOOLING_PREFIXES = ("CASEWAY_LOADTEST_",)
# Passwords that are somebody's default: the local stack's, the image's, the tutorial's.
WELL_KNOWN_PASSWORDS = frozenset({"", "caseway", "postgres", "password", "changeme", "secret"})
ProductionProblem = str


class ProductionConfigError(ValueError):
    """CASEWAY_ENV=production and the configuration is not fit for it; `problems` names each reason."""

    def __init__(self, service: str, problems: list[ProductionProblem]) -> None:
        self.problems = tuple(problems)
        listed = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(
            f"CASEWAY_ENV=production: {service} refuses to start ({len(problems)} problem(s)):\n{listed}"
        )


def _shared(name: str) -> AliasChoices:
    # A shared setting is read from the deployment-wide variable; the field name works in code and tests.
    return AliasChoices(name.lower(), name)


class ServiceSettings(BaseSettings):
    """What every service needs; subclasses add their own fields under their own prefix."""

    # hide_input_in_errors: a refusal must never print DATABASE_URL or a password it was given.
    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, frozen=True, hide_input_in_errors=True
    )

    environment: Literal["development", "production"] = Field(
        default="development",
        validation_alias=_shared("CASEWAY_ENV"),
        description="production fails closed on insecure or unknown configuration (see the module's doc).",
    )
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
    database_role: str | None = Field(
        default=None,
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description=(
            "PostgreSQL role the service acts as (SET ROLE at connect, e.g. caseway_router): its rights "
            "are its own schema's only. The login in DATABASE_URL must be a member of it."
        ),
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

    # Kafka security (all deployment-wide names; each service's own principal comes from its environment).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", validation_alias=_shared("KAFKA_SECURITY_PROTOCOL")
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        default="SCRAM-SHA-512", validation_alias=_shared("KAFKA_SASL_MECHANISM")
    )
    kafka_sasl_username: str | None = Field(default=None, validation_alias=_shared("KAFKA_SASL_USERNAME"))
    kafka_sasl_password: SecretStr | None = Field(
        default=None, validation_alias=_shared("KAFKA_SASL_PASSWORD")
    )
    kafka_ssl_cafile: Path | None = Field(
        default=None,
        validation_alias=_shared("KAFKA_SSL_CAFILE"),
        description="CA bundle that signed the brokers' certificates; the system's trust store otherwise.",
    )
    kafka_ssl_certfile: Path | None = Field(
        default=None, validation_alias=_shared("KAFKA_SSL_CERTFILE"), description="Client certificate (mTLS)."
    )
    kafka_ssl_keyfile: Path | None = Field(default=None, validation_alias=_shared("KAFKA_SSL_KEYFILE"))
    kafka_ssl_check_hostname: bool = Field(default=True, validation_alias=_shared("KAFKA_SSL_CHECK_HOSTNAME"))
    # PostgreSQL over TLS. None leaves it to the URL (asyncpg reads sslmode/sslrootcert from it).
    database_ssl_mode: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] | None = Field(
        default=None, validation_alias=_shared("DATABASE_SSL_MODE")
    )
    database_ssl_root_cert: Path | None = Field(
        default=None,
        validation_alias=_shared("DATABASE_SSL_ROOT_CERT"),
        description="CA that signed the server's certificate; the system's trust store otherwise.",
    )

    @property
    def kafka_uses_tls(self) -> bool:
        return self.kafka_security_protocol in {"SSL", "SASL_SSL"}

    def effective_database_ssl_mode(self) -> str | None:
        """DATABASE_SSL_MODE, else the URL's sslmode, else None (asyncpg's default: prefer)."""
        if self.database_ssl_mode is not None:
            return self.database_ssl_mode
        query = parse_qs(urlsplit(self.database_url.get_secret_value()).query)
        values = query.get("sslmode") or query.get("ssl")
        return values[-1] if values else None

    def service_production_problems(self) -> list[ProductionProblem]:
        """A service's own reasons to refuse production (e.g. a development key); none by default."""
        return []

    @model_validator(mode="after")
    def _fail_closed_in_production(self) -> Self:
        if self.environment == "production":
            problems = production_problems(self, os.environ)
            if problems:
                raise ProductionConfigError(type(self).__name__, problems)
        return self


def _is_loopback(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name in {"localhost", "localhost.localdomain", "ip6-localhost", ""} or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def known_environment_names(settings: ServiceSettings) -> set[str]:
    """The environment variables (upper case) that some field of `settings`' class reads."""
    prefix = str(settings.model_config.get("env_prefix") or "").upper()
    names: set[str] = set()
    for field_name, info in type(settings).model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice).upper() for choice in alias.choices if isinstance(choice, str))
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def unknown_caseway_settings(settings: ServiceSettings, environ: Mapping[str, str]) -> list[str]:
    """`CASEWAY_*` variables in `environ` that nothing reads: not a field of this service, not another
    service's prefix (that service checks its own), not the deployment tooling's."""
    prefix = str(settings.model_config.get("env_prefix") or "").upper()
    known = known_environment_names(settings)
    others = tuple(p for p in SERVICE_PREFIXES if p != prefix)
    unknown = []
    for raw in environ:
        name = raw.upper()
        if not name.startswith("CASEWAY_") or name in known or name in TOOLING_SETTINGS:
            continue
        if name.startswith(others) or name.startswith(TOOLING_PREFIXES):
            continue
        unknown.append(raw)
    return sorted(unknown)


def production_problems(settings: ServiceSettings, environ: Mapping[str, str]) -> list[ProductionProblem]:
    """Every reason `settings` is not fit for production (empty: fit). Pure: the environment whose
    `CASEWAY_` names are checked is passed in."""
    problems: list[ProductionProblem] = []
    url = urlsplit(settings.database_url.get_secret_value())
    if url.password is None or url.password in WELL_KNOWN_PASSWORDS:
        problems.append(
            "default database credentials: DATABASE_URL has no password or a well-known one "
            f"(user {url.username or '(none)'}); give each service its own role and a secret password"
        )
    if not settings.kafka_uses_tls:
        problems.append(
            f"plaintext Kafka: KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol}; "
            "use SASL_SSL (SCRAM-SHA-512 over TLS) or SSL"
        )
    if settings.kafka_security_protocol.startswith("SASL") and not (
        settings.kafka_sasl_username and settings.kafka_sasl_password
    ):
        problems.append("Kafka SASL without credentials: set KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
    if settings.kafka_uses_tls and not settings.kafka_ssl_check_hostname:
        problems.append("Kafka TLS without hostname verification: KAFKA_SSL_CHECK_HOSTNAME=false")
    mode = settings.effective_database_ssl_mode()
    if mode not in {"verify-full", "verify-ca"}:
        problems.append(
            f"PostgreSQL without a verified certificate (ssl mode {mode or 'unset'}): set "
            "DATABASE_SSL_MODE=verify-full and DATABASE_SSL_ROOT_CERT"
        )
    problems.extend(_smtp_problems(settings))
    problems.extend(settings.service_production_problems())
    unknown = unknown_caseway_settings(settings, environ)
    if unknown:
        problems.append(
            f"unknown setting(s) {', '.join(unknown)}: no setting of {type(settings).__name__} reads "
            "them (a typo?)"
        )
    return problems


def _smtp_problems(settings: ServiceSettings) -> list[ProductionProblem]:
    # Only the notifier has SMTP settings; shared checks them by name so that no service need import it.
    if not hasattr(settings, "smtp_host") or getattr(settings, "email_via", "smtp") != "smtp":
        return []
    problems: list[ProductionProblem] = []
    tls = bool(getattr(settings, "smtp_starttls", False) or getattr(settings, "smtp_use_tls", False))
    if (getattr(settings, "smtp_username", None) or getattr(settings, "smtp_password", None)) and not tls:
        problems.append(
            "SMTP credentials without STARTTLS or TLS: the password would travel in clear; set "
            "the notifier's SMTP_STARTTLS=true"
        )
    host = str(getattr(settings, "smtp_host", ""))
    if _is_loopback(host):
        problems.append(f"loopback SMTP host {host!r}: point the notifier's SMTP_HOST at the mail relay")
    return problems
