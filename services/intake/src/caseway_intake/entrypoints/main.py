"""`caseway-intake`: serve the intake service (Kafka consumer, Open311 API, ops endpoints).

`caseway-intake api-key NAME` registers a new Open311 API key under NAME and prints it once: only its
digest is stored, so it cannot be shown again. `caseway-intake revoke-api-key NAME` revokes it.
`caseway-intake purge` purges residents' personal data past CASEWAY_INTAKE_RETENTION_DAYS once (the
running service does it every CASEWAY_INTAKE_PURGE_INTERVAL_SECONDS).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta

from caseway_intake.adapters.api_keys import new_api_key, register_api_key
from caseway_intake.adapters.store import purge_personal_data, revoke_api_key
from caseway_intake.entrypoints.app import create_app
from caseway_intake.settings import IntakeSettings
from caseway_shared.db import create_pool
from caseway_shared.serving import serve


async def _add_key(settings: IntakeSettings, name: str) -> int:
    pool = await create_pool(settings, application_name="caseway-intake-keys")
    try:
        key = new_api_key()
        if not await register_api_key(pool, name=name, key=key):
            sys.stderr.write(f"a key named {name!r} already exists\n")
            return 1
    finally:
        await pool.close()
    sys.stdout.write(key + "\n")
    return 0


async def _revoke_key(settings: IntakeSettings, name: str) -> int:
    pool = await create_pool(settings, application_name="caseway-intake-keys")
    try:
        async with pool.acquire() as connection:
            revoked = await revoke_api_key(connection, name)
    finally:
        await pool.close()
    return 0 if revoked else 1


async def _purge(settings: IntakeSettings) -> int:
    pool = await create_pool(settings, application_name="caseway-intake-purge")
    try:
        async with pool.acquire() as connection, connection.transaction():
            before = datetime.now(UTC) - timedelta(days=settings.retention_days)
            purged = await purge_personal_data(connection, before=before)
    finally:
        await pool.close()
    sys.stdout.write(json.dumps(purged) + "\n")
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="caseway-intake", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the intake service (the default)")
    add = commands.add_parser("api-key", help="register a new Open311 API key and print it once")
    add.add_argument("name", help="who the key is for: 1-40 lower-case letters, digits, hyphens")
    revoke = commands.add_parser("revoke-api-key", help="revoke the Open311 API key of NAME")
    revoke.add_argument("name")
    commands.add_parser("purge", help="purge residents' personal data past the retention period, once")
    arguments = parser.parse_args(argv)
    settings = IntakeSettings()
    if arguments.command == "api-key":
        sys.exit(asyncio.run(_add_key(settings, arguments.name)))
    if arguments.command == "revoke-api-key":
        sys.exit(asyncio.run(_revoke_key(settings, arguments.name)))
    if arguments.command == "purge":
        sys.exit(asyncio.run(_purge(settings)))
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
