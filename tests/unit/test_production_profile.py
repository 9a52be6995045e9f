"""CASEWAY_ENV=production fails closed: each insecure or unknown setting is refused, by name, before a
service opens any connection; the development profile (the default) is unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from caseway_intake.settings import IntakeSettings
from caseway_notifier.settings import NotifierSettings
from caseway_router.settings import RouterSettings
from caseway_shared.settings import ProductionConfigError, ServiceSettings, production_problems

SECURE = {
    "CASEWAY_ENV": "production",
    "KAFKA_BOOTSTRAP_SERVERS": "kafka-0.kafka:9094",
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "caseway-router",
    "KAFKA_SASL_PASSWORD": "a-long-random-secret",
    "DATABASE_URL": "postgresql://caseway_router:a-long-random-secret@db.internal:5432/caseway",
    "DATABASE_SSL_MODE": "verify-full",
    "CASEWAY_NOTIFIER_SMTP_HOST": "smtp.council.example",
    "CASEWAY_NOTIFIER_SMTP_PORT": "587",
    "CASEWAY_NOTIFIER_SMTP_USERNAME": "caseway",
    "CASEWAY_NOTIFIER_SMTP_PASSWORD": "smtp-secret",
    "CASEWAY_NOTIFIER_SMTP_STARTTLS": "true",
    "CASEWAY_INTAKE_CONTACT_KEYS": "q3Tg9bJkZ4mB8vYwR2xN5cD7fH1sL6pA0eK9uW3iO2E=",
    "CASEWAY_INTAKE_PUBLIC_ID_KEY": "a-long-random-secret-for-public-request-ids",
}


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("CASEWAY_", "KAFKA_", "DATABASE_", "OTEL_")):
            monkeypatch.delenv(name)
    for name, value in SECURE.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def refusal(settings_class: type[ServiceSettings]) -> str:
    with pytest.raises(ValidationError) as caught:
        settings_class()
    return str(caught.value)


@pytest.mark.parametrize("settings_class", [IntakeSettings, RouterSettings, NotifierSettings])
def test_a_secure_production_configuration_starts(environ, settings_class):
    settings = settings_class()
    assert settings.environment == "production"
    assert settings.kafka_security_protocol == "SASL_SSL"


@pytest.mark.parametrize("settings_class", [IntakeSettings, RouterSettings, NotifierSettings])
def test_development_is_the_default_and_accepts_the_local_stack(monkeypatch, settings_class):
    for name in list(os.environ):
        if name.startswith(("CASEWAY_", "KAFKA_", "DATABASE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CASEWAY_ROUTER_TYPO_HERE", "1")
    settings = settings_class()
    assert settings.environment == "development"
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert settings.database_url.get_secret_value().startswith("postgresql://caseway:caseway@")


@pytest.mark.parametrize("settings_class", [IntakeSettings, RouterSettings, NotifierSettings])
@pytest.mark.parametrize(
    "url",
    [
        "postgresql://caseway:caseway@db.internal/caseway",
        "postgresql://caseway@db.internal/caseway",
        "postgresql://postgres:postgres@db.internal/caseway",
    ],
)
def test_default_database_credentials_are_refused(environ, settings_class, url):
    environ.setenv("DATABASE_URL", url)
    assert "default database credentials" in refusal(settings_class)


def test_plaintext_kafka_is_refused(environ):
    environ.setenv("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    assert "plaintext Kafka: KAFKA_SECURITY_PROTOCOL=PLAINTEXT" in refusal(RouterSettings)
    environ.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    assert "plaintext Kafka" in refusal(IntakeSettings)


def test_sasl_without_credentials_and_tls_without_hostname_check_are_refused(environ):
    environ.delenv("KAFKA_SASL_PASSWORD")
    assert "Kafka SASL without credentials" in refusal(RouterSettings)
    environ.setenv("KAFKA_SASL_PASSWORD", "x" * 20)
    environ.setenv("KAFKA_SSL_CHECK_HOSTNAME", "false")
    assert "without hostname verification" in refusal(RouterSettings)


def test_database_without_certificate_verification_is_refused(environ):
    environ.delenv("DATABASE_SSL_MODE")
    assert "PostgreSQL without a verified certificate (ssl mode unset)" in refusal(RouterSettings)
    environ.setenv("DATABASE_SSL_MODE", "require")
    assert "(ssl mode require)" in refusal(RouterSettings)
    # sslmode in the URL counts as much as the setting.
    environ.delenv("DATABASE_SSL_MODE")
    environ.setenv("DATABASE_URL", SECURE["DATABASE_URL"] + "?sslmode=verify-full")
    RouterSettings()


def test_smtp_credentials_without_tls_are_refused(environ):
    environ.setenv("CASEWAY_NOTIFIER_SMTP_STARTTLS", "false")
    message = refusal(NotifierSettings)
    assert "SMTP credentials without STARTTLS or TLS" in message
    # Only the notifier sends mail: the others are not held to its SMTP settings.
    RouterSettings()


LOOPBACK = ["127.0.0.1", "localhost", "::1", "[::1]", "0.0.0.0", "127.0.1.1"]  # noqa: S104


@pytest.mark.parametrize("host", LOOPBACK)
def test_a_loopback_smtp_host_is_refused(environ, host):
    environ.setenv("CASEWAY_NOTIFIER_SMTP_HOST", host)
    assert f"loopback SMTP host {host!r}" in refusal(NotifierSettings)


def test_a_loopback_smtp_host_is_fine_when_mail_goes_through_notify(environ):
    environ.setenv("CASEWAY_NOTIFIER_SMTP_HOST", "127.0.0.1")
    environ.setenv("CASEWAY_NOTIFIER_EMAIL_VIA", "notify")
    NotifierSettings()


@pytest.mark.parametrize(
    ("settings_class", "typo"),
    [
        (NotifierSettings, "CASEWAY_NOTIFIER_SMTP_STARTLS"),
        (IntakeSettings, "CASEWAY_INTAKE_OPEN311_JURISDICTON_ID"),
        (RouterSettings, "CASEWAY_TOPIC_PREFX"),
        (RouterSettings, "CASEWAY_NOTIFER_SMTP_HOST"),
        (RouterSettings, "CASEWAY_ROUTER_COUNCIL_DIR"),  # read as CASEWAY_COUNCIL_DIR, not with the prefix
    ],
)
def test_an_unknown_caseway_setting_is_refused(environ, settings_class, typo):
    environ.setenv(typo, "1")
    assert f"unknown setting(s) {typo}" in refusal(settings_class)


def test_known_settings_of_this_and_other_services_are_not_unknown(environ):
    environ.setenv("CASEWAY_ROUTER_DATABASE_POOL_MAX", "20")
    environ.setenv("CASEWAY_INTAKE_OPEN311_JURISDICTION_ID", "liverpool.gov.uk")
    environ.setenv("CASEWAY_COUNCIL_DIR", "/etc/caseway/council")
    environ.setenv("CASEWAY_LOG_FORMAT", "json")
    environ.setenv("CASEWAY_TOPIC_PREFIX", "")
    assert RouterSettings().database_pool_max == 20
    # Another service's (even misspelt) setting is that service's to refuse.
    environ.setenv("CASEWAY_INTAKE_NOT_A_SETTING", "1")
    RouterSettings()
    assert "CASEWAY_INTAKE_NOT_A_SETTING" in refusal(IntakeSettings)


def test_every_reason_is_named_at_once_and_no_secret_is_printed(environ):
    environ.setenv("DATABASE_URL", "postgresql://caseway:caseway@127.0.0.1/caseway")
    environ.setenv("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    environ.setenv("CASEWAY_NOTIFIER_SMTP_HOST", "localhost")
    environ.setenv("CASEWAY_NOTIFIER_SMTP_STARTTLS", "false")
    environ.setenv("CASEWAY_NOTIFIER_SMPT_PORT", "25")
    with pytest.raises(ValidationError) as caught:
        NotifierSettings()
    error = caught.value.errors()[0]["ctx"]["error"]
    assert isinstance(error, ProductionConfigError)
    assert len(error.problems) == 5
    text = str(caught.value)
    assert "smtp-secret" not in text
    assert "a-long-random-secret" not in text


def test_problems_are_a_pure_function_of_settings_and_environment():
    settings = RouterSettings(
        database_url="postgresql://r:a-long-random-secret@db/caseway",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="caseway-router",
        kafka_sasl_password="a-long-random-secret",  # noqa: S106
        database_ssl_mode="verify-full",
    )
    assert production_problems(settings, {}) == []
    assert production_problems(settings, {"CASEWAY_ROUTER_X": "1"}) == [
        "unknown setting(s) CASEWAY_ROUTER_X: no setting of RouterSettings reads them (a typo?)"
    ]


@pytest.mark.parametrize("command", ["caseway-intake", "caseway-router", "caseway-notifier"])
def test_a_service_process_refuses_to_start_and_says_why(command):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CASEWAY_", "KAFKA_", "DATABASE_"))}
    env |= {"CASEWAY_ENV": "production", "KAFKA_BOOTSTRAP_SERVERS": "192.0.2.1:9092"}
    executable = str(Path(sys.executable).parent / command)
    result = subprocess.run([executable], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "refuses to start" in result.stderr
    assert "plaintext Kafka" in result.stderr
    assert "default database credentials" in result.stderr
