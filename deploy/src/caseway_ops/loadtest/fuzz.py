"""The fuzz run: generated bad inputs through both intake paths. Every input must be accounted for as
accepted (in intake.reports) or rejected with its reason (reports.rejected.v1 on the Kafka path, or
ops.deadletter.v1 with the error when intake could not even reject it, counted apart as
``kafka_deadlettered``; a 4xx answer with reasons on the HTTP path); no crash (intake still runs and
answers) and no 5xx."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx

from caseway_ops.loadtest.generator import GeneratedReport
from caseway_ops.loadtest.harness import OPEN311_PATH, provenance, read_topic, wait_quiet
from caseway_ops.loadtest.runs import open_run
from caseway_ops.loadtest.services import SERVICES
from caseway_shared.events import report_id_for
from caseway_shared.topics import Topic, topic_name

if TYPE_CHECKING:
    from collections.abc import Callable

    from caseway_ops.loadtest.stack import LoadtestStack

_FIELDS = ("source_system", "source_id", "channel", "received_at", "location", "description", "category")
_WRONG: tuple[object, ...] = (0, -1, 1.5, True, None, [], {}, [1, 2], {"a": 1}, "", "x" * 70)
_BAD_LATS = (91, -90.0001, 1e308, "abc", "NaN", float("inf"), None, [53.4])


def _base(source_id: str, rng: random.Random) -> dict[str, Any]:
    return {
        "source_system": "fuzz",
        "source_id": source_id,
        "channel": rng.choice(["phone", "web", "app"]),
        "received_at": datetime.now(UTC).isoformat(),
        "category": rng.choice(["fly-tipping", "litter", "pothole"]),
        "location": {"lat": 53.40 + rng.random() / 50, "lon": -2.98 + rng.random() / 50},
        "description": "fuzzed",
    }


def kafka_input(n: int, rng: random.Random, *, deep: bool = True) -> tuple[str, bytes, dict[str, Any] | None]:  # noqa: C901, PLR0912
    """(mutation, bytes, the event as a dict when it is one) for fuzz input `n`.

    ``deep`` adds JSON nested deeper than Python's recursion limit: found by this fuzz run, intake's parser
    raises RecursionError on it and the batch consumer retries the batch for ever (the partition stalls);
    the reduced CI run leaves it out until intake rejects it.
    """
    source_id = f"FZ-{n}"
    event = _base(source_id, rng)
    kind = rng.randrange(14)
    if kind == 0:
        return "random-bytes", bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200))), None
    if kind == 1:
        raw = json.dumps(event).encode().replace(b"fuzzed", b"fuzz\xff\xfe\xc3(")
        return "bad-utf8", raw, None
    if kind == 2:  # noqa: PLR2004
        del event[rng.choice(_FIELDS)]
    elif kind == 3:  # noqa: PLR2004
        event[rng.choice(_FIELDS)] = rng.choice(_WRONG)
    elif kind == 4:  # noqa: PLR2004
        where = rng.choice(["description", "category_text", "source_id"])
        event[where] = "é" * rng.choice([4001, 70_000, 200_000])
    elif kind == 5:  # noqa: PLR2004
        event["location"] = (
            {"lat": rng.choice(_BAD_LATS), "lon": -2.98}
            if rng.random() < 0.7  # noqa: PLR2004
            else {"lat": 53.4}
        )
    elif kind == 6:  # noqa: PLR2004
        event[f"unknown_{rng.randrange(9)}"] = "surprise"
    elif kind == 7:  # noqa: PLR2004
        event["received_at"] = rng.choice(
            ["2026-13-45T99:00:00", "2026-01-01T10:00:00", "yesterday", 1700000000]
        )
    elif kind == 8:  # noqa: PLR2004
        return "not-an-object", json.dumps(rng.choice([[event], 42, "text", None, True])).encode(), None
    elif kind == 9:  # noqa: PLR2004
        return "empty", b"", None
    elif kind == 10:  # noqa: PLR2004
        depth = rng.choice([100, 1000, 20_000] if deep else [100, 900])
        return "deep-nesting", (b"[" * depth + b"]" * depth), None
    elif kind == 11:  # noqa: PLR2004
        event["schema_version"] = rng.choice([0, 2, "1", None])
    elif kind == 12:  # noqa: PLR2004
        event["channel"] = rng.choice(["fax", "", "PHONE", 7])
        event["reporter"] = {"email": "no-at-sign", "phone": "call me"}
    else:
        event["attachments"] = rng.choice([["not a url"], ["http://x"] * 11, "http://x", [None]])
    mutation = (
        "",
        "",
        "missing-field",
        "wrong-type",
        "huge-string",
        "bad-coordinates",
        "extra-field",
        "bad-datetime",
        "",
        "",
        "",
        "schema-version",
        "bad-channel-contact",
        "bad-attachments",
    )[kind]
    return mutation, json.dumps(event, allow_nan=True, ensure_ascii=False).encode(), event


def http_input(n: int, rng: random.Random, api_key: str) -> tuple[str, dict[str, Any]]:  # noqa: C901, PLR0912
    """(mutation, httpx request arguments) for fuzz input `n`."""
    form: dict[str, Any] = {
        "api_key": api_key,
        "service_code": rng.choice(["fly-tipping", "litter", "pothole"]),
        "lat": f"{53.40 + rng.random() / 50:.6f}",
        "long": f"{-2.98 + rng.random() / 50:.6f}",
        "description": "fuzzed",
    }
    kind = rng.randrange(14)
    headers: dict[str, str | bytes] = {"Idempotency-Key": f"FZ-{n}"}
    if kind == 0:
        del form["service_code"]
    elif kind == 1:
        form["service_code"] = rng.choice(["nope", "", "x" * 100, "fly-tipping\x00"])
    elif kind == 2:  # noqa: PLR2004
        form["lat"] = rng.choice(["91", "-1e9", "abc", "NaN", "inf", ""])
    elif kind == 3:  # noqa: PLR2004
        del form["long"]
    elif kind == 4:  # noqa: PLR2004
        form["description"] = "é" * rng.choice([4001, 30_000])
    elif kind == 5:  # noqa: PLR2004
        form["email"] = rng.choice(["no-at", "a@b", "x" * 300 + "@example.org"])
    elif kind == 6:  # noqa: PLR2004
        return "bad-utf8", {
            "content": b"api_key="
            + api_key.encode()
            + b"&service_code=litter&description=%FF%FE&lat=53.4&long=-2.9",
            "headers": {**headers, "content-type": "application/x-www-form-urlencoded"},
        }
    elif kind == 7:  # noqa: PLR2004
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        return "random-body", {
            "content": junk,
            "headers": {
                **headers,
                "content-type": rng.choice(
                    [
                        "application/x-www-form-urlencoded",
                        "application/json",
                        "multipart/form-data",
                        "text/plain",
                    ]
                ),
            },
        }
    elif kind == 8:  # noqa: PLR2004
        form["api_key"] = rng.choice(["", "wrong", "x" * 300])
    elif kind == 9:  # noqa: PLR2004
        return "too-big", {
            "content": b"description=" + b"a" * 70_000 + b"&api_key=" + api_key.encode(),
            "headers": {**headers, "content-type": "application/x-www-form-urlencoded"},
        }
    elif kind == 10:  # noqa: PLR2004
        form["attribute[nonsense]"] = "yes"
    elif kind == 11:  # noqa: PLR2004
        form["media_url"] = rng.choice(["not a url", "javascript:alert(1)", "ftp://"])
    elif kind == 12:  # noqa: PLR2004
        return "bad-json", {
            "content": b'{"api_key": "' + api_key.encode() + b'", "service_code": ',
            "headers": {**headers, "content-type": "application/json"},
        }
    else:
        bad_keys: list[str | bytes] = ["has space", "x" * 65, "\u00fc".encode()]
        headers["Idempotency-Key"] = rng.choice(bad_keys)
    mutation = (
        "missing-service-code",
        "bad-service-code",
        "bad-lat",
        "missing-long",
        "huge-description",
        "bad-email",
        "",
        "",
        "bad-api-key",
        "",
        "unknown-attribute",
        "bad-media-url",
        "",
        "bad-idempotency-key",
    )[kind]
    return mutation, {"data": form, "headers": headers}


async def run_fuzz(  # noqa: C901, PLR0912, PLR0915 - one run's steps and accounting, in order
    count: int,
    *,
    stack: LoadtestStack,
    say: Callable[[str], None] = print,
    keep_stack: bool = False,
    seed: int = 3,
    deep_nesting: bool = True,
) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 - reproducible inputs, not a secret
    run_id = f"z{uuid.uuid4().hex[:8]}"
    say(f"fuzz {run_id}: {count} bad inputs on the load test's own stack")
    run = await open_run(stack, run_id)
    env, services, publisher, api_key = run.env, run.services, run.publisher, run.api_key
    try:
        await services.start_all()
        await publisher.start()
        kafka_n = count // 2
        expected_ids: dict[int, uuid.UUID] = {}
        kafka_sent = []
        mutations: Counter[str] = Counter()
        for n in range(kafka_n):
            mutation, value, event = kafka_input(n, rng, deep=deep_nesting)
            mutations[f"kafka:{mutation}"] += 1
            if (
                event is not None
                and isinstance(event.get("source_system"), str)
                and isinstance(event.get("source_id"), str)
            ):
                expected_ids[n] = report_id_for(event["source_system"], event["source_id"])
            report = GeneratedReport(n, "kafka", "malformed", f"FZ-{n}", key=f"FZ-{n}".encode(), value=value)
            kafka_sent.append(publisher.send(report))
        sent = await asyncio.gather(*kafka_sent)

        http_results: Counter[str] = Counter()
        http_accepted: set[uuid.UUID] = set()
        url = f"http://127.0.0.1:{services.ports['intake']}{OPEN311_PATH}"
        limit = asyncio.Semaphore(32)
        async with httpx.AsyncClient(timeout=30) as client:

            async def post(n: int) -> None:
                mutation, request = http_input(n, rng, api_key)
                mutations[f"http:{mutation}"] += 1
                async with limit:
                    try:
                        response = await client.post(url, **request)
                    except httpx.HTTPError as error:
                        http_results[f"error:{type(error).__name__}"] += 1
                        return
                status = response.status_code
                if status >= 500:  # noqa: PLR2004
                    http_results["5xx"] += 1
                elif status == 200:  # noqa: PLR2004
                    http_results["accepted"] += 1
                    http_accepted.add(uuid.UUID(response.json()[0]["service_request_id"]))
                elif 400 <= status < 500 and _has_reason(response):  # noqa: PLR2004
                    http_results["rejected"] += 1
                else:
                    http_results[f"unexplained:{status}"] += 1

            await asyncio.gather(*(post(n) for n in range(kafka_n, count)))

        await wait_quiet(
            env.database_url, env.bootstrap_servers, env.topic_prefix, expect_reports=None, timeout=300
        )
        db = await asyncpg.connect(env.database_url)
        try:
            in_intake = {r["report_id"] for r in await db.fetch("SELECT report_id FROM intake.reports")}
        finally:
            await db.close()
        rejected = provenance(
            await read_topic(env.bootstrap_servers, topic_name(Topic.REPORTS_REJECTED, env.topic_prefix))
        )
        dead = provenance(
            await read_topic(env.bootstrap_servers, topic_name(Topic.DEADLETTER, env.topic_prefix))
        )
        kafka_rejected = kafka_accepted = kafka_dead = 0
        unaccounted = []
        for n, s in enumerate(sent):
            where = (s.topic, s.partition, s.offset)
            if rejected.get(where):
                kafka_rejected += 1
            elif n in expected_ids and expected_ids[n] in in_intake:
                kafka_accepted += 1
            elif dead.get(where):
                kafka_dead += 1
            else:
                unaccounted.append(n)
        alive = [name for name in SERVICES if services.alive(name)]
        http_n = count - kafka_n
        problems = []
        if unaccounted:
            problems.append(f"{len(unaccounted)} Kafka inputs unaccounted for (e.g. {unaccounted[:5]})")
        if http_results["accepted"] + http_results["rejected"] != http_n:
            problems.append(f"HTTP answers not all accepted or rejected with reasons: {dict(http_results)}")
        if len(http_accepted - in_intake):
            problems.append(f"{len(http_accepted - in_intake)} HTTP acceptances not in intake.reports")
        if len(alive) != len(SERVICES):
            problems.append(f"services not running at the end: {set(SERVICES) - set(alive)}")
        return {
            "inputs": count,
            "kafka_inputs": kafka_n,
            "kafka_accepted": kafka_accepted,
            "kafka_rejected": kafka_rejected,
            "kafka_deadlettered": kafka_dead,
            "kafka_unaccounted": len(unaccounted),
            "http_inputs": http_n,
            "http_accepted": http_results["accepted"],
            "http_rejected": http_results["rejected"],
            "http_5xx": http_results["5xx"],
            "http_other": {k: v for k, v in http_results.items() if k not in ("accepted", "rejected", "5xx")},
            "services_alive": alive,
            "mutations": dict(sorted(mutations.items())),
            "problems": problems,
        }
    finally:
        await publisher.stop()
        await services.stop_all()
        if not keep_stack:
            await stack.drop_run(env)
            await stack.down()


def _has_reason(response: httpx.Response) -> bool:
    """A 4xx answer that says why: Open311 errors are a list of {code, description}."""
    try:
        body = response.json()
    except ValueError:
        return bool(response.text.strip())
    if isinstance(body, list):
        return all(isinstance(item, dict) and item.get("description") for item in body) and bool(body)
    return bool(body)
