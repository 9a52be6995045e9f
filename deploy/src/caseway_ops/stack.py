"""The local stack without Docker: Apache Kafka (one KRaft node, from Maven Central's jars) and
PostgreSQL (a cluster of the project's own), brought up, checked and stopped by plain functions.

    info = await ensure_stack(topic_prefix="t1234.")   # starts what is missing, waits, topics, migrates
    url = await create_database(info.database_url, "caseway_t1234")   # a fresh, migrated database
    ...
    await stop_stack()                                   # stops what the stack started

``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL`` name existing servers instead: then nothing of that kind
is started; the stack only waits for it, creates the topics and migrates. A second ``ensure_stack``
reuses what runs. A file lock makes concurrent callers (parallel test workers) start things once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from caseway_ops import kafka_broker, postgres_server
from caseway_ops.database import (
    create_database,
    current_revision,
    drop_database,
    host_and_port,
    migrate,
    redact,
)
from caseway_ops.errors import StackError
from caseway_ops.kafka_topics import TopicsReport, create_topics, delete_topics, existing_topics
from caseway_ops.processes import file_lock, port_is_open
from caseway_ops.stack_config import DB_USER, StackConfig
from caseway_ops.steps import StepReporter, Steps, StepTiming

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from pathlib import Path
    from typing import Any

__all__ = [
    "ComponentStatus",
    "StackConfig",
    "StackError",
    "StackInfo",
    "StackStatus",
    "StepReporter",
    "StepTiming",
    "TopicsReport",
    "create_database",
    "create_topics",
    "delete_topics",
    "drop_database",
    "ensure_stack",
    "migrate",
    "stack_status",
    "stop_stack",
]

EXTERNAL_READY_TIMEOUT = 30.0
SERVICE_ROLES = ("caseway_intake", "caseway_router", "caseway_notifier")


async def ensure_service_roles(config: StackConfig) -> str:
    """One NOLOGIN role per service (migration 0011 grants each its own schema), made by the local
    server's superuser, each granted to the application's role so that it may act as them (SET ROLE,
    CASEWAY_<SERVICE>_DATABASE_ROLE). On a production server an administrator does the same."""
    conn = await postgres_server._superuser_connection(config, "postgres")  # noqa: SLF001
    created: list[str] = []
    try:
        for role in SERVICE_ROLES:
            if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                await conn.execute(f"CREATE ROLE {role} NOLOGIN")
                created.append(role)
            await conn.execute(f"GRANT {role} TO {DB_USER}")
    finally:
        await conn.close()
    return f"created {', '.join(created)}" if created else "present"


@dataclass(frozen=True, slots=True)
class StackInfo:
    """A ready stack: where to connect, what this call started, and how long each step took."""

    bootstrap_servers: str
    database_url: str
    topic_prefix: str
    topics: TopicsReport
    kafka_managed: bool
    postgres_managed: bool
    started: tuple[str, ...]
    steps: tuple[StepTiming, ...]
    elapsed_seconds: float


async def _concurrently(*coroutines: Coroutine[Any, Any, Any]) -> list[Any]:
    """Run the coroutines together; if one fails the others are cancelled, and the failures surface as
    one `StackError` (or the first unexpected exception)."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coroutines]
    except BaseExceptionGroup as failed:
        flat: list[BaseException] = []
        pending: list[BaseException] = [failed]
        while pending:
            exc = pending.pop(0)
            if isinstance(exc, BaseExceptionGroup):
                pending.extend(exc.exceptions)
            else:
                flat.append(exc)
        unexpected = [e for e in flat if not isinstance(e, StackError)]
        if unexpected:
            raise unexpected[0] from failed
        raise StackError("\n".join(str(e) for e in flat)) from None
    return [t.result() for t in tasks]


async def _ensure_kafka(config: StackConfig, steps: Steps, started: list[str]) -> None:
    if not config.manages_kafka:
        with steps.step("kafka: wait (external)") as step:
            try:
                step.detail = await kafka_broker.wait_ready(
                    config.bootstrap_servers,
                    time_limit=EXTERNAL_READY_TIMEOUT,
                    client_options=config.kafka_client_options,
                )
            except StackError as exc:
                raise StackError(
                    f"{exc}\nKAFKA_BOOTSTRAP_SERVERS is set, so the stack starts no broker of its own; "
                    "unset it to let `caseway stack up` run one."
                ) from None
        return
    with steps.step("kafka: jars") as step:
        step.detail = jars = await kafka_broker.ensure_jars(config)
    kafka_broker.write_configuration(config)
    pid = kafka_broker.running_pid(config)
    if pid is None:
        with steps.step("kafka: format storage") as step:
            step.detail = await kafka_broker.format_storage(config)
        with steps.step("kafka: start") as step:
            pid = kafka_broker.start(config)
            started.append("kafka")
            step.detail = f"pid {pid}, {config.bootstrap_servers}"
    elif jars.startswith("fetched"):
        with steps.step("kafka: note") as step:
            step.detail = f"the broker (pid {pid}) still runs the old jars until `caseway stack down` + `up`"
    with steps.step("kafka: ready") as step:
        detail = await kafka_broker.wait_ready(config.bootstrap_servers, config=config, pid=pid)
        step.detail = f"{detail} (pid {pid}{', already running' if 'kafka' not in started else ''})"


async def _ensure_postgres(config: StackConfig, steps: Steps, started: list[str]) -> None:
    if not config.manages_postgres:
        with steps.step("postgres: wait (external)") as step:
            try:
                step.detail = await postgres_server.wait_ready(
                    config.database_url, time_limit=EXTERNAL_READY_TIMEOUT
                )
            except StackError as exc:
                raise StackError(
                    f"{exc} at {redact(config.database_url)}\nDATABASE_URL is set, so the stack starts no "
                    "PostgreSQL of its own; unset it to let `caseway stack up` run one."
                ) from None
        return
    with steps.step("postgres: initdb") as step:
        step.detail = await postgres_server.ensure_cluster(config)
    with steps.step("postgres: start") as step:
        step.detail = await postgres_server.start(config)
        if step.detail.startswith("started"):
            started.append("postgres")
    with steps.step("postgres: roles") as step:
        step.detail = await postgres_server.ensure_roles(config)
    with steps.step("postgres: service roles") as step:
        step.detail = await ensure_service_roles(config)
    with steps.step("postgres: ready") as step:
        step.detail = await postgres_server.wait_ready(config.database_url)


async def _create_topics(config: StackConfig, steps: Steps, prefix: str) -> TopicsReport:
    with steps.step("kafka: topics") as step:
        if config.manages_kafka:
            # The stack's own broker is one KRaft node: one copy is all it can hold.
            report = await create_topics(
                config.bootstrap_servers, prefix, client_options=config.kafka_client_options
            )
        else:
            report = await create_topics(
                config.bootstrap_servers,
                prefix,
                production=True,
                replication_factor=config.topic_replication_factor,
                single_broker=config.kafka_single_broker,
                client_options=config.kafka_client_options,
            )
        step.detail = f"{len(report.created)} created, {len(report.existing)} already there"
        step.detail += f", replication factor {report.replication_factor}"
        if prefix:
            step.detail += f" (prefix {prefix!r})"
        if report.partition_mismatches or report.replication_mismatches:
            mismatches = (*report.partition_mismatches, *report.replication_mismatches)
            step.detail += "; WARNING " + "; ".join(mismatches)
    return report


async def _migrate(config: StackConfig, steps: Steps) -> None:
    with steps.step("postgres: migrate") as step:
        try:
            await asyncio.to_thread(migrate, config.database_url)
        except Exception as exc:
            # A failed upgrade rolls back as a whole (one transaction); say which error, not the stack.
            cause = getattr(exc, "orig", None) or exc
            raise StackError(
                f"alembic upgrade head failed on {redact(config.database_url)} (nothing was applied): "
                f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}\n"
                "run `uv run alembic -c deploy/alembic.ini upgrade head` for the full traceback"
            ) from exc
        step.detail = f"at revision {await current_revision(config.database_url)}"


async def ensure_stack(
    *,
    topic_prefix: str = "",
    config: StackConfig | None = None,
    migrate_database: bool = True,
    reporter: StepReporter | None = None,
) -> StackInfo:
    """Bring the stack to ready: start Kafka and PostgreSQL unless they run (or are external), wait
    until both truly answer, create the catalogue's topics under ``topic_prefix`` and migrate the
    database to head. Idempotent; raises `StackError` with a message for a person."""
    config = config or StackConfig.from_env()
    steps = Steps(reporter)
    started: list[str] = []
    config.state_dir.mkdir(parents=True, exist_ok=True)

    async def kafka() -> TopicsReport:
        await _ensure_kafka(config, steps, started)
        return await _create_topics(config, steps, topic_prefix)

    async def postgres() -> None:
        await _ensure_postgres(config, steps, started)
        if migrate_database:
            await _migrate(config, steps)

    # The two servers are independent: each is started, awaited and prepared on its own, side by side.
    async with file_lock(config.lock_file):
        topics, _ = await _concurrently(kafka(), postgres())
    return StackInfo(
        bootstrap_servers=config.bootstrap_servers,
        database_url=config.database_url,
        topic_prefix=topic_prefix,
        topics=topics,
        kafka_managed=config.manages_kafka,
        postgres_managed=config.manages_postgres,
        started=tuple(started),
        steps=tuple(steps.timings),
        elapsed_seconds=steps.elapsed(),
    )


async def stop_stack(
    *, config: StackConfig | None = None, reporter: StepReporter | None = None
) -> tuple[StepTiming, ...]:
    """Stop the Kafka broker and the PostgreSQL server this stack started (found by their pid files,
    whatever the environment says now); external servers are never touched."""
    config = config or StackConfig.from_env()
    steps = Steps(reporter)
    config.state_dir.mkdir(parents=True, exist_ok=True)

    async def kafka() -> None:
        with steps.step("kafka: stop") as step:
            step.detail = await kafka_broker.stop(config)

    async def postgres() -> None:
        with steps.step("postgres: stop") as step:
            step.detail = (
                await postgres_server.stop(config)
                if postgres_server.is_initialised(config)
                else "not initialised"
            )

    async with file_lock(config.lock_file):
        await _concurrently(kafka(), postgres())
    return tuple(steps.timings)


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    name: str
    managed: bool
    pid: int | None
    address: str
    listening: bool
    ready: bool
    detail: str
    log: Path | None


@dataclass(frozen=True, slots=True)
class StackStatus:
    components: tuple[ComponentStatus, ...]
    topics: tuple[str, ...] | None
    revision: str | None

    @property
    def ready(self) -> bool:
        return all(c.ready for c in self.components)


def _host_port(address: str, default_port: int) -> tuple[str, int]:
    host, _, port = address.split(",", maxsplit=1)[0].rpartition(":")
    try:
        return host or address, int(port)
    except ValueError:
        return address, default_port


async def _kafka_status(config: StackConfig) -> ComponentStatus:
    pid = kafka_broker.running_pid(config) if config.manages_kafka else None
    host, port = _host_port(config.bootstrap_servers, config.kafka_port)
    listening = port_is_open(host, port)
    if listening:
        probe = await kafka_broker.probe(
            config.bootstrap_servers, time_limit=3.0, client_options=config.kafka_client_options
        )
        ready, detail = probe.ready, probe.detail
    else:
        ready, detail = False, "not listening"
    if config.manages_kafka and pid is None and listening:
        detail += " — but this stack did not start it"
    return ComponentStatus(
        name="kafka",
        managed=config.manages_kafka,
        pid=pid,
        address=config.bootstrap_servers,
        listening=listening,
        ready=ready and (pid is not None or not config.manages_kafka),
        detail=detail,
        log=config.logs_dir / "kafka.log" if config.manages_kafka else None,
    )


async def _postgres_status(config: StackConfig) -> ComponentStatus:
    pid = postgres_server.running_pid(config) if config.manages_postgres else None
    host, port = host_and_port(config.database_url, config.postgres_port)
    listening = port_is_open(host, port)
    if listening:
        probe = await postgres_server.probe(config.database_url, time_limit=3.0)
        ready, detail = probe.ready, probe.detail
    else:
        ready, detail = False, "not listening"
    if config.manages_postgres and pid is None and listening:
        detail += " — but this stack did not start it"
    return ComponentStatus(
        name="postgres",
        managed=config.manages_postgres,
        pid=pid,
        address=redact(config.database_url),
        listening=listening,
        ready=ready and (pid is not None or not config.manages_postgres),
        detail=detail,
        log=postgres_server.log_file(config) if config.manages_postgres else None,
    )


async def stack_status(*, config: StackConfig | None = None) -> StackStatus:
    """What runs, with pids, addresses and readiness; the catalogue's topics (no prefix) and the
    database's revision when the servers answer."""
    config = config or StackConfig.from_env()
    kafka, postgres = await asyncio.gather(_kafka_status(config), _postgres_status(config))
    topics = (
        await existing_topics(config.bootstrap_servers, client_options=config.kafka_client_options)
        if kafka.ready
        else None
    )
    revision = await current_revision(config.database_url) if postgres.ready else None
    return StackStatus(components=(kafka, postgres), topics=topics, revision=revision)
