"""The fault suite's stall figures (issue 11): a partition's stall counts as explained only while a fault
that can stop that service's consumers is on (its own restarts and rebalances, the broker's, the
database's), plus the tail a consumer group needs to notice and recover (`STALL_TAIL_S`); the rest of the
stall is what `make faults` reports as stall beyond faults, and what must be zero."""

from __future__ import annotations

from caseway_ops.loadtest.faults import STALL_TAIL_S, FaultRun, beyond_faults
from caseway_ops.loadtest.harness import Stall


class NoCounts:
    """The receivers' counts, not looked at here."""

    def as_dict(self) -> dict[str, object]:
        return {}


def fault(name: str, at: float, recovered: float) -> dict[str, object]:
    return {"fault": name, "at_s": at, "recovered_s": recovered}


def test_a_stall_inside_its_services_restart_is_explained() -> None:
    faults = [fault("intake", 100.0, 13.0)]
    assert beyond_faults(Stall("intake:cases.v1:3", 101.0, 100.0 + 13.0 + STALL_TAIL_S), faults) == 0.0


def test_what_a_stall_lasts_past_its_fault_and_tail_is_counted() -> None:
    faults = [fault("kafka", 100.0, 15.0)]
    end = 100.0 + 15.0 + STALL_TAIL_S + 40.0
    assert beyond_faults(Stall("router:reports.received.v1:0", 102.0, end), faults) == 40.0


def test_another_services_fault_or_a_channel_outage_explains_nothing() -> None:
    faults = [
        fault("router", 100.0, 13.0),
        fault("smtp-outage", 90.0, 180.0),
        fault("term:router", 95.0, 10.0),
    ]
    assert beyond_faults(Stall("notifier:cases.v1:1", 110.0, 150.0), faults) == 40.0


def test_the_longest_unexplained_stretch_between_two_faults_is_the_figure() -> None:
    faults = [fault("term:intake", 0.0, 10.0), fault("postgres", 100.0, 1.0)]
    # explained 0-27 and 100-118; unexplained 27-100 (73 s) and 118-130 (12 s)
    assert beyond_faults(Stall("intake:cases.v1:0", 5.0, 130.0), faults) == 73.0


def test_the_run_reports_per_partition_the_longest_stall_and_the_longest_unexplained_part() -> None:
    faults = [fault("notifier", 50.0, 10.0)]
    run = FaultRun(
        counts=NoCounts(),  # type: ignore[arg-type]
        replay_new_cases=0,
        replay_new_alerts=0,
        faults=faults,
        stalls=[
            Stall("notifier:cases.v1:0", 51.0, 70.0),
            Stall("notifier:cases.v1:0", 200.0, 206.0),
            Stall("intake:cases.v1:2", 10.0, 12.0),
        ],
    )
    figures = run.as_dict()
    assert figures["stall_s_per_partition"] == {"intake:cases.v1:2": 2.0, "notifier:cases.v1:0": 19.0}
    assert figures["stall_beyond_faults_s_per_partition"] == {
        "intake:cases.v1:2": 2.0,
        "notifier:cases.v1:0": 6.0,
    }
    assert figures["longest_stall_beyond_faults_s"] == 6.0
    assert [stall["faults"] for stall in figures["stalls"]] == [["notifier"], []]
