"""`caseway bench`, `caseway faults` and `caseway fuzz`: each runs on the load test's own stack."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Annotated

import typer

from caseway_ops.loadtest.stack import LoadtestStack


def _quiet_clients() -> None:
    # aiokafka logs every failed connection while the broker is down on purpose: noise, not news.
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def bench(
    backlog: Annotated[int, typer.Option(help="Reports in the peak-throughput backlog.")] = 20_000,
    rates: Annotated[
        str, typer.Option(help="Offered rates for latency, reports/s, comma-separated.")
    ] = "50,200,1000",
    phase_seconds: Annotated[float, typer.Option(help="Seconds of paced load at each rate.")] = 60.0,
    *,
    keep_stack: Annotated[bool, typer.Option(help="Leave the load test's stack running.")] = False,
) -> None:
    """Benchmark: sustained reports/s to notification recorded against a three-hop raw Kafka chain and a
    PostgreSQL-only floor, latency of every report at fixed rates, peak memory, CPU of every process, top
    statements and flame graphs; writes bench/results.json, bench/latency.png and bench/flame-*.svg."""
    from caseway_ops.loadtest.bench import BenchPlan, run_bench  # noqa: PLC0415 - heavy imports, only here
    from caseway_ops.loadtest.results import bench_dir, goals_met, machine, plot_latency, write_json  # noqa: PLC0415

    _quiet_clients()
    # The services log at their production level while measured (the load test's default is warning).
    os.environ.setdefault("CASEWAY_LOADTEST_LOG_LEVEL", "info")
    plan = BenchPlan(
        backlog=backlog, rates=tuple(int(r) for r in rates.split(",")), phase_seconds=phase_seconds
    )
    results = asyncio.run(run_bench(plan, stack=LoadtestStack(), say=typer.echo, keep_stack=keep_stack))
    results |= {"goals_met": goals_met(results), "machine": machine()}
    path = write_json("results.json", results)
    png = plot_latency(results, bench_dir() / "latency.png")
    typer.echo(
        f"end to end {results['end_to_end_rps']:,.0f} reports/s; three-hop chain"
        f" {results['ceiling_chain_rps']:,.0f} (ratio {results['ratio_chain']}); PostgreSQL floor"
        f" {results['db_floor_rps']:,.0f} (ratio {results['ratio_db_floor']}); mix {results['mix']}"
    )
    typer.echo(f"peak RSS MB: {results['peak_rss_mb']}; goals met: {results['goals_met']}")
    typer.echo(f"wrote {path} and {png}")


def faults(  # noqa: PLR0917 - typer maps each option to a parameter
    rate: Annotated[float, typer.Option(help="Steady load, reports/s.")] = 100.0,
    service_kills: Annotated[int, typer.Option(help="kill -9 of each service.")] = 5,
    kafka_kills: Annotated[int, typer.Option(help="kill -9 and restart of the broker.")] = 3,
    postgres_restarts: Annotated[int, typer.Option(help="Restarts of PostgreSQL.")] = 2,
    gap_seconds: Annotated[float, typer.Option(help="Steady load between faults.")] = 8.0,
    poison_every: Annotated[int, typer.Option(help="One poison message in this many.")] = 1000,
    preload_cases: Annotated[
        int, typer.Option(help="Cases already stored before the load starts (months of a council's work).")
    ] = 10_000,
    service_terms: Annotated[int, typer.Option(help="SIGTERM and restart of each service.")] = 7,
    smtp_outage_seconds: Annotated[float, typer.Option(help="The SMTP server down this long, once.")] = 180.0,
    webhook_500_seconds: Annotated[
        float, typer.Option(help="The webhook server answering 500 this long, once.")
    ] = 60.0,
    replicas: Annotated[int, typer.Option(help="Processes of each service.")] = 2,
    rebalances: Annotated[
        int, typer.Option(help="Per service: one more replica started, then stopped, under load.")
    ] = 2,
    digest_every: Annotated[int, typer.Option(help="One team in this many wants digests (0: none).")] = 4,
    digest_minutes: Annotated[
        int, typer.Option(min=1, help="Every team's digest period, minutes (the run waits for the last).")
    ] = 5,
    hours_every: Annotated[
        int,
        typer.Option(
            help="One team in this many starts work during the run, one more has quiet hours in it."
        ),
    ] = 5,
    hours_open_after: Annotated[
        float, typer.Option(help="Seconds from the start until the late starters open.")
    ] = 600.0,
    close_every: Annotated[
        float, typer.Option(help="Seconds between rounds of cases closed by staff (0: none).")
    ] = 20.0,
    address_only_share: Annotated[
        float, typer.Option(help="Share of reports with an address and no coordinates.")
    ] = 0.15,
    brokers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Kafka brokers (more than 1: a cluster on free ports, topics replicated 3 times with"
            " min.insync.replicas 2; each Kafka kill -9 hits the node leading the most partitions).",
        ),
    ] = 1,
    *,
    tracing: Annotated[bool, typer.Option(help="Services export traces (OTLP).")] = True,
    keep_stack: Annotated[bool, typer.Option(help="Leave the load test's stack running.")] = False,
) -> None:
    """Fault suite under steady load; proves nothing lost, duplicated, sent to a closed case or out of a
    team's hours, and every digest whole; writes bench/faults.json."""
    from caseway_ops.loadtest.faults import FaultPlan, run_faults  # noqa: PLC0415
    from caseway_ops.loadtest.results import machine, write_json  # noqa: PLC0415

    _quiet_clients()
    plan = FaultPlan(
        rate=rate,
        service_kills=service_kills,
        kafka_kills=kafka_kills,
        postgres_restarts=postgres_restarts,
        gap_seconds=gap_seconds,
        poison_every=poison_every,
        preload_cases=preload_cases,
        service_terms=service_terms,
        smtp_outage_seconds=smtp_outage_seconds,
        webhook_500_seconds=webhook_500_seconds,
        tracing=tracing,
        replicas=replicas,
        rebalances=rebalances,
        digest_every=digest_every,
        digest_minutes=digest_minutes,
        hours_every=hours_every,
        hours_open_after_s=hours_open_after,
        close_every_s=close_every,
        address_only_share=address_only_share,
    )
    stack = LoadtestStack(brokers=brokers)
    run = asyncio.run(run_faults(plan, stack=stack, say=typer.echo, keep_stack=keep_stack))
    data = {**run.as_dict(), "problems": run.problems(), "machine": machine()}
    path = write_json("faults.json" if brokers == 1 else f"faults-{brokers}-brokers.json", data)
    for name, value in data.items():
        if name not in ("faults", "machine"):
            typer.echo(f"  {name}: {value}")
    typer.echo(f"wrote {path}")
    if run.problems():
        typer.echo("FAILED: " + "; ".join(run.problems()), err=True)
        raise typer.Exit(1)


def fuzz(
    count: Annotated[
        int, typer.Option(help="Bad inputs to generate (split over both intake paths).")
    ] = 10_000,
    *,
    keep_stack: Annotated[bool, typer.Option(help="Leave the load test's stack running.")] = False,
) -> None:
    """Fuzz both intake paths with generated bad inputs; every one accepted or rejected with a reason,
    no crash, no 5xx; writes bench/fuzz.json."""
    from caseway_ops.loadtest.fuzz import run_fuzz  # noqa: PLC0415
    from caseway_ops.loadtest.results import machine, write_json  # noqa: PLC0415

    _quiet_clients()
    result = asyncio.run(run_fuzz(count, stack=LoadtestStack(), say=typer.echo, keep_stack=keep_stack))
    data = {**result, "machine": machine()}
    path = write_json("fuzz.json", data)
    for name, value in result.items():
        typer.echo(f"  {name}: {value}")
    typer.echo(f"wrote {path}")
    if result["problems"]:
        raise typer.Exit(1)
