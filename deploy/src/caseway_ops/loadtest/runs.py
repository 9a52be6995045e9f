"""Opening one run of the load test, as the benchmark, the fault suite and the fuzz run all do: the
stack up, fresh topics and database, the services' settings with a seeded Open311 key, and a publisher."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from caseway_ops.loadtest.harness import Publisher
from caseway_ops.loadtest.services import ServiceSet

if TYPE_CHECKING:
    from caseway_ops.loadtest.stack import LoadtestStack, RunEnvironment


@dataclass(frozen=True, slots=True)
class Run:
    env: RunEnvironment
    services: ServiceSet
    publisher: Publisher
    api_key: str


async def open_run(stack: LoadtestStack, run_id: str) -> Run:
    """A new run on `stack` (started if need be); the caller starts the services and the publisher."""
    await stack.up()
    env = await stack.new_run(run_id)
    api_key = secrets.token_urlsafe(32)
    services = ServiceSet(
        env={**env.env(), "CASEWAY_INTAKE_OPEN311_SEED_API_KEY": api_key},
        logs_dir=stack.config.logs_dir,
        run_id=run_id,
        mail_file=stack.config.logs_dir / f"{run_id}-mail.tsv",
    )
    publisher = Publisher(
        bootstrap=env.bootstrap_servers,
        prefix=env.topic_prefix,
        intake_port=services.ports["intake"],
        api_key=api_key,
    )
    return Run(env=env, services=services, publisher=publisher, api_key=api_key)
