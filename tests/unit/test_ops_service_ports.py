"""Where `caseway services up` puts its processes: the ports come from the stack's configuration, so a
second set of processes (a test's, a second checkout's) runs beside the Quick start's instead of
failing on its ports, and the services follow the stack they were started for."""

from __future__ import annotations

from caseway_ops.service_processes import managed_processes, service_environment
from caseway_ops.stack_config import StackConfig

OTHER_PORTS = {
    "CASEWAY_STATE_DIR": "/tmp/caseway-other-state",
    "CASEWAY_MAIL_SINK_PORT": "21025",
    "CASEWAY_INTAKE_HTTP_PORT": "28080",
    "CASEWAY_ROUTER_HTTP_PORT": "28081",
    "CASEWAY_NOTIFIER_HTTP_PORT": "28082",
}


def _ports(config: StackConfig) -> dict[str, int]:
    return {process.name: process.port for process in managed_processes(config)}


def test_the_quick_start_uses_the_documented_ports():
    assert _ports(StackConfig.from_env({})) == {
        "mail-sink": 1025,
        "intake": 8080,
        "router": 8081,
        "notifier": 8082,
    }


def test_processes_started_with_other_ports_never_need_the_quick_starts_ports():
    quick_start = StackConfig.from_env({})
    other = StackConfig.from_env(OTHER_PORTS)
    assert _ports(other) == {"mail-sink": 21025, "intake": 28080, "router": 28081, "notifier": 28082}
    assert set(_ports(other).values()).isdisjoint(_ports(quick_start).values())


def test_each_service_listens_where_the_stack_waits_and_mails_the_stacks_sink():
    env = service_environment(StackConfig.from_env(OTHER_PORTS), {"PATH": "/usr/bin"})
    assert env["CASEWAY_INTAKE_HTTP_PORT"] == "28080"
    assert env["CASEWAY_ROUTER_HTTP_PORT"] == "28081"
    assert env["CASEWAY_NOTIFIER_HTTP_PORT"] == "28082"
    assert env["CASEWAY_NOTIFIER_SMTP_PORT"] == "21025"
    assert env["PATH"] == "/usr/bin"


def test_services_talk_to_the_stack_they_were_started_for():
    env = service_environment(
        StackConfig.from_env({"CASEWAY_KAFKA_PORT": "39092", "CASEWAY_POSTGRES_PORT": "35432"}), {}
    )
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:39092"
    assert env["DATABASE_URL"].endswith("@127.0.0.1:35432/caseway")
    external = StackConfig.from_env(
        {"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "DATABASE_URL": "postgresql://x"}
    )
    env = service_environment(external, {})
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["DATABASE_URL"] == "postgresql://x"


def test_an_smtp_server_named_in_the_environment_wins_over_the_mail_sink():
    env = service_environment(StackConfig.from_env({}), {"CASEWAY_NOTIFIER_SMTP_PORT": "2525"})
    assert env["CASEWAY_NOTIFIER_SMTP_PORT"] == "2525"
