"""PostgreSQL over TLS, as the services configure it (`DATABASE_SSL_MODE`, `DATABASE_SSL_ROOT_CERT`;
`caseway_shared.db.create_pool`), against a throwaway PostgreSQL of the project's own
(`caseway_ops.postgres_server`) started with ``ssl = on``, a CA and a server certificate made here, and a
pg_hba.conf that accepts TLS connections only (``hostssl``).

It shows: a service's pool with ``verify-full`` and the CA connects and every one of its connections is
encrypted (``pg_stat_ssl``); ``verify-full`` with another CA, or with a host name the certificate does not
name, is refused before any password is sent; ``verify-ca`` checks the chain but not the name; a
plaintext connection (``disable``) is turned away by the server.

Without PostgreSQL's binaries the module is skipped on a developer's machine and FAILS under CI=true.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest
from cryptography.hazmat.primitives import serialization

from caseway_ops import postgres_server
from caseway_ops.errors import StackError
from caseway_ops.stack_config import StackConfig
from caseway_router.settings import RouterSettings
from caseway_shared.db import create_pool
from caseway_shared.settings import production_problems
from certificates import certificate_authority, server_certificate

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from cryptography import x509

# Only TLS connections, and passwords always; nothing else is accepted.
HBA = """# Written by tests/integration/security/test_database_tls.py: TLS or nothing.
hostssl  all  all  127.0.0.1/32  scram-sha-256
hostssl  all  all  ::1/128       scram-sha-256
"""
ENCRYPTED_BACKENDS = """
    SELECT s.ssl, s.version
    FROM pg_stat_ssl AS s JOIN pg_stat_activity AS a USING (pid)
    WHERE a.application_name = $1
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _give_to_server_user(*paths: Path) -> None:
    """As root the server runs as the `postgres` OS user, which must own its key (PostgreSQL refuses a key
    others may read)."""
    if postgres_server.ServerUser.current() is None:
        return
    entry = pwd.getpwnam("postgres")
    for path in paths:
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _require_binaries(config: StackConfig) -> None:
    try:
        postgres_server.bin_dir(config)
    except StackError as error:
        reason = f"PostgreSQL's binaries are missing ({error}); `make setup` installs them"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


@dataclass(frozen=True)
class TlsServer:
    port: int
    ca_file: Path
    other_ca_file: Path

    def url(self, host: str = "127.0.0.1", query: str = "") -> str:
        return f"postgresql://caseway:caseway@{host}:{self.port}/caseway{query}"


def _install_tls(config: StackConfig) -> TlsServer:
    """ssl = on with a server certificate our CA signed, hostssl only; the CA and another CA for clients."""
    data = postgres_server.data_dir(config)
    ca_key, ca = certificate_authority("caseway test database CA")
    server_key, server = server_certificate(ca_key, ca, common_name="caseway test database")
    (data / "server.crt").write_bytes(_pem(server))
    key_file = data / "server.key"
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_file.chmod(0o600)
    # The stack's own settings stay (caseway.conf); TLS on, and a lighter server than the stack's.
    with (data / "caseway.conf").open("a", encoding="utf-8") as settings:
        settings.write(
            "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
            "shared_buffers = 32MB\nmax_connections = 30\n"
        )
    (data / "pg_hba.conf").write_text(HBA, encoding="utf-8")
    _give_to_server_user(data / "server.crt", key_file, data / "pg_hba.conf")
    ca_file = config.state_dir / "ca.pem"
    ca_file.write_bytes(_pem(ca))
    other_ca_file = config.state_dir / "other-ca.pem"
    other_ca_file.write_bytes(_pem(certificate_authority("someone else's CA")[1]))
    return TlsServer(port=config.postgres_port, ca_file=ca_file, other_ca_file=other_ca_file)


@pytest.fixture(scope="module")
def tls_config() -> Iterator[StackConfig]:
    """A state folder of the test's own, open (755) so that as root the `postgres` OS user reaches the
    cluster in it; a free port."""
    state = Path(tempfile.mkdtemp(prefix="caseway-pg-tls-"))
    state.chmod(0o755)
    config = StackConfig(
        deploy_dir=StackConfig.from_env({}).deploy_dir,
        state_dir=state,
        postgres_port=_free_port(),
        postgres_outside_root=state / "outside",
        # As the stack finds them: CASEWAY_PG_BIN, else Debian's /usr/lib/postgresql/15, else PATH.
        postgres_bin_dir=Path(os.environ["CASEWAY_PG_BIN"]) if os.environ.get("CASEWAY_PG_BIN") else None,
    )
    try:
        _require_binaries(config)
        yield config
    finally:
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
async def tls_server(tls_config: StackConfig) -> AsyncIterator[TlsServer]:
    try:
        await postgres_server.ensure_cluster(tls_config)
        server = _install_tls(tls_config)
        await postgres_server.start(tls_config)
        # The superuser's own connection (asyncpg's default, "prefer") goes over TLS too: hostssl only.
        await postgres_server.ensure_roles(tls_config)
        yield server
    finally:
        await postgres_server.stop(tls_config)


def _router_settings(monkeypatch: pytest.MonkeyPatch, **environment: str) -> RouterSettings:
    """The router's settings from the environment alone, as a deployment gives them."""
    for name in ("DATABASE_SSL_MODE", "DATABASE_SSL_ROOT_CERT", "PGSSLMODE", "PGSSLROOTCERT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return RouterSettings()


async def test_a_services_pool_with_verify_full_and_the_ca_is_encrypted(tls_server, monkeypatch):
    settings = _router_settings(
        monkeypatch,
        DATABASE_URL=tls_server.url(),
        DATABASE_SSL_MODE="verify-full",
        DATABASE_SSL_ROOT_CERT=str(tls_server.ca_file),
        CASEWAY_ROUTER_DATABASE_POOL_MIN="2",
    )
    pool = await create_pool(settings, application_name="caseway-router-tls")
    try:
        async with pool.acquire() as connection:
            own = await connection.fetchrow(
                "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            )
            backends = await connection.fetch(ENCRYPTED_BACKENDS, "caseway-router-tls")
    finally:
        await pool.close()
    assert own["ssl"] is True
    assert own["version"] in {"TLSv1.2", "TLSv1.3"}
    # Every connection the pool opened, not only the one that asked.
    assert len(backends) == 2
    assert all(row["ssl"] for row in backends)


async def test_verify_full_refuses_a_server_whose_certificate_another_ca_signed(tls_server, monkeypatch):
    settings = _router_settings(
        monkeypatch,
        DATABASE_URL=tls_server.url(),
        DATABASE_SSL_MODE="verify-full",
        DATABASE_SSL_ROOT_CERT=str(tls_server.other_ca_file),
    )
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        await create_pool(settings, application_name="caseway-router-tls")


async def test_verify_full_refuses_a_certificate_for_another_host_name_and_verify_ca_accepts_it(
    tls_server, monkeypatch
):
    # The certificate names 127.0.0.1 only; localhost reaches the same server under another name.
    full = _router_settings(
        monkeypatch,
        DATABASE_URL=tls_server.url(host="localhost"),
        DATABASE_SSL_MODE="verify-full",
        DATABASE_SSL_ROOT_CERT=str(tls_server.ca_file),
    )
    with pytest.raises(ssl.SSLCertVerificationError, match="not valid for 'localhost'"):
        await create_pool(full, application_name="caseway-router-tls")

    chain_only = _router_settings(
        monkeypatch,
        DATABASE_URL=tls_server.url(host="localhost"),
        DATABASE_SSL_MODE="verify-ca",
        DATABASE_SSL_ROOT_CERT=str(tls_server.ca_file),
    )
    pool = await create_pool(chain_only, application_name="caseway-router-tls")
    try:
        assert await pool.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is True
    finally:
        await pool.close()


async def test_a_plaintext_connection_is_refused_by_a_tls_only_server(tls_server, monkeypatch):
    settings = _router_settings(monkeypatch, DATABASE_URL=tls_server.url(), DATABASE_SSL_MODE="disable")
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match="no encryption"):
        await create_pool(settings, application_name="caseway-router-tls")


@pytest.mark.parametrize("parameter", ["sslmode", "ssl"])
async def test_the_urls_own_ssl_mode_is_applied_when_the_setting_is_unset(tls_server, monkeypatch, parameter):
    """The production profile counts `sslmode` or `ssl` (SQLAlchemy's spelling, the migration Job's) in
    DATABASE_URL as the mode; the pool must then verify just as DATABASE_SSL_MODE would."""
    trusted = _router_settings(
        monkeypatch,
        DATABASE_URL=tls_server.url(query=f"?{parameter}=verify-full&sslrootcert={tls_server.ca_file}"),
    )
    assert not [p for p in production_problems(trusted, {}) if "PostgreSQL" in p]
    pool = await create_pool(trusted, application_name="caseway-router-tls")
    try:
        assert await pool.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is True
    finally:
        await pool.close()

    untrusted = _router_settings(
        monkeypatch,
        DATABASE_URL=tls_server.url(query=f"?{parameter}=verify-full&sslrootcert={tls_server.other_ca_file}"),
    )
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        await create_pool(untrusted, application_name="caseway-router-tls")
