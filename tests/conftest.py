"""Fixtures shared by the integration and end-to-end tests.

They need the real Kafka broker and PostgreSQL (`make test` starts them; KAFKA_BOOTSTRAP_SERVERS and
DATABASE_URL point elsewhere). A missing broker or database fails the run: it is never a skip.
Every test session gets its own topic prefix and its own freshly migrated database, so runs never see
each other's messages or rows.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from caseway_ops.database import create_database, drop_database
from caseway_ops.kafka_topics import create_topics, delete_topics
from caseway_shared.settings import DEFAULT_DATABASE_URL, DEFAULT_KAFKA_BOOTSTRAP_SERVERS

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@dataclass(frozen=True)
class Infra:
    bootstrap_servers: str
    database_url: str  # this session's own, migrated database
    topic_prefix: str

    def env(self) -> dict[str, str]:
        """Environment that points a service process at this session's broker, topics and database."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "DATABASE_URL": self.database_url,
            "CASEWAY_TOPIC_PREFIX": self.topic_prefix,
        }


async def _require_kafka(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        await admin.describe_cluster()
    except Exception as error:
        pytest.fail(
            f"Kafka is not reachable at {bootstrap} ({type(error).__name__}). Start the stack with "
            "`make stack-up` (or run `make test`), or set KAFKA_BOOTSTRAP_SERVERS.",
            pytrace=False,
        )
    finally:
        await admin.close()


async def _require_postgres(url: str) -> None:
    try:
        connection = await asyncpg.connect(url, timeout=5)
    except Exception as error:
        pytest.fail(
            f"PostgreSQL is not reachable ({type(error).__name__}). Start the stack with `make stack-up` "
            "(or run `make test`), or set DATABASE_URL.",
            pytrace=False,
        )
    await connection.close()


@pytest.fixture(scope="session")
async def infra() -> AsyncIterator[Infra]:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_KAFKA_BOOTSTRAP_SERVERS)
    base_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    await _require_kafka(bootstrap)
    await _require_postgres(base_url)
    run = uuid.uuid4().hex[:10]
    prefix = f"test-{run}."
    await create_topics(bootstrap, prefix)
    name = f"caseway_test_{run}"
    database_url = await create_database(base_url, name)
    yield Infra(bootstrap_servers=bootstrap, database_url=database_url, topic_prefix=prefix)
    # Left behind, every run's topics would slow each later broker restart.
    await delete_topics(bootstrap, prefix)
    await drop_database(base_url, name)


@pytest.fixture
async def db(infra: Infra) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(infra.database_url)
    yield connection
    await connection.close()
