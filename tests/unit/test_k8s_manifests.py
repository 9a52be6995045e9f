"""deploy/: the Strimzi resources in deploy/k8s/base are the ones the topic catalogue generates, and the
offline checks that `make lint` runs catch what they are there to catch (pure: no kubectl, no cluster)."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
from pathlib import Path

import yaml

from caseway_ops import deploy_lint, k8s
from caseway_ops.kafka_security import acl_bindings
from caseway_shared.topics import ACCESS, CATALOGUE

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "k8s" / "base"


def _documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((BASE / name).read_text()) if d]


def test_the_committed_strimzi_files_are_the_ones_the_catalogue_generates():
    assert k8s.stale_files() == [], "deploy/k8s/base is stale: run `uv run caseway k8s --write`"


def test_every_topic_of_the_catalogue_has_its_kafka_topic_with_production_settings():
    topics = {d["spec"].get("topicName", d["metadata"]["name"]): d for d in _documents(k8s.TOPICS_FILE)}
    assert set(topics) == {entry.topic.value for entry in CATALOGUE}
    for entry in CATALOGUE:
        resource = topics[entry.topic.value]
        assert resource["metadata"]["labels"]["strimzi.io/cluster"] == k8s.DEFAULT_CLUSTER
        assert resource["spec"]["partitions"] == entry.partitions
        assert resource["spec"]["replicas"] == 3
        config = resource["spec"]["config"]
        assert config["min.insync.replicas"] == "2"
        assert int(config["retention.ms"]) == int(entry.retention.total_seconds() * 1000)
        assert config["cleanup.policy"] == entry.cleanup_policy
        assert config["unclean.leader.election.enable"] == "false"


def test_every_service_has_a_scram_user_with_exactly_the_acls_the_secured_broker_tests_prove():
    users = {d["metadata"]["name"]: d for d in _documents(k8s.USERS_FILE)}
    assert set(users) == {entry.principal for entry in ACCESS}
    for entry in ACCESS:
        spec = users[entry.principal]["spec"]
        assert spec["authentication"] == {"type": "scram-sha-512"}
        granted = {
            (acl["resource"]["type"], acl["resource"]["name"], operation)
            for acl in spec["authorization"]["acls"]
            for operation in acl["operations"]
        }
        expected = {
            (b.resource_type.name.lower(), b.resource_name, b.operation.name.title())
            for b in acl_bindings("", [entry])
        }
        assert granted == expected
    # The notifier never reads reports; only intake writes reports.received.v1.
    notifier = {acl["resource"]["name"] for acl in users["caseway-notifier"]["spec"]["authorization"]["acls"]}
    assert "reports.received.v1" not in notifier
    writers = [
        name
        for name, user in users.items()
        for acl in user["spec"]["authorization"]["acls"]
        if acl["resource"]["name"] == "reports.received.v1" and "Write" in acl["operations"]
    ]
    assert writers == ["caseway-intake"]


def test_the_generated_resources_validate_against_strimzis_crds():
    for name in (k8s.TOPICS_FILE, k8s.USERS_FILE):
        for resource in _documents(name):
            assert deploy_lint.resource_problems(resource) == []


def test_a_typo_in_a_strimzi_resource_is_caught():
    topic = copy.deepcopy(_documents(k8s.TOPICS_FILE)[0])
    topic["spec"]["replica"] = topic["spec"].pop("replicas")
    user = copy.deepcopy(_documents(k8s.USERS_FILE)[0])
    user["spec"]["authorization"]["acls"][0]["operations"] = ["Reed"]
    user["apiVersion"] = "kafka.strimzi.io/v1beta2"
    assert any("replica" in p for p in deploy_lint.resource_problems(topic))
    problems = deploy_lint.resource_problems(user)
    assert any("Reed" in p for p in problems)
    assert any("apiVersion" in p for p in problems)


def _deployment() -> dict:
    documents = [d for d in yaml.safe_load_all((BASE / "intake.yaml").read_text()) if d]
    return next(d for d in documents if d["kind"] == "Deployment")


def test_kubernetes_schemas_refuse_unknown_fields_and_wrong_types():
    deployment = _deployment()
    assert deploy_lint.resource_problems(deployment) == []
    broken = copy.deepcopy(deployment)
    broken["spec"]["replica"] = 2
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    problems = deploy_lint.resource_problems(broken)
    assert any("replica" in p for p in problems)
    assert any("containerPort" in p or "ports" in p for p in problems)


def test_a_deployment_without_probes_limits_budget_or_with_a_misspelt_setting_is_refused():
    deployment = _deployment()
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    del container["readinessProbe"]
    del container["resources"]["limits"]["memory"]
    container["env"].append({"name": "CASEWAY_INTAKE_HTTP_PROT", "value": "8080"})
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "caseway-config"}, "data": {}}
    problems = deploy_lint.manifest_problems([deployment, config])
    assert any("readinessProbe" in p for p in problems)
    assert any("limits.memory" in p for p in problems)
    assert any("PodDisruptionBudget" in p for p in problems)
    assert any("CASEWAY_INTAKE_HTTP_PROT" in p for p in problems)
    # caseway-database is neither defined here nor made by Strimzi.
    assert any("caseway-database" in p for p in problems)


def test_the_shared_config_map_holds_only_names_every_service_reads():
    config = yaml.safe_load((BASE / "config.yaml").read_text())
    for service in deploy_lint.SETTINGS:
        assert deploy_lint.unknown_names(service, list(config["data"])) == []
    assert config["data"]["CASEWAY_ENV"] == "production"


def test_the_dockerfile_rules():
    assert deploy_lint.dockerfile_problems((ROOT / "deploy" / "Dockerfile").read_text()) == []
    bad = "FROM python:latest AS build\nFROM build\nADD https://example.invalid/x.tgz /x\nUSER root\n"
    problems = deploy_lint.dockerfile_problems(bad)
    assert "base image 'python:latest' is not pinned to a version tag" in problems
    assert any(p.startswith("ADD of a URL") for p in problems)
    assert "the final stage runs as root" in problems
    assert "no HEALTHCHECK" in problems
    # A USER in an earlier stage does not count for the last one.
    assert "the final stage sets no USER: it would run as root" in deploy_lint.dockerfile_problems(
        "FROM python:3.11.14-slim AS a\nUSER 10001\nFROM python:3.11.14-slim\nHEALTHCHECK CMD true\n"
    )


def test_the_compose_file_is_valid_and_a_broken_one_is_not():
    schema = json.loads((ROOT / "deploy" / "schemas" / "compose-spec.json").read_text())
    document = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    assert deploy_lint.compose_problems(document, schema) == []
    broken = copy.deepcopy(document)
    broken["services"]["intake"]["depends_on"]["kafak"] = {"condition": "service_healthy"}
    broken["services"]["router"]["environment"]["CASEWAY_ROUTER_HTTP_HOTS"] = "router"
    broken["services"]["notifier"]["healthcheck"] = {"disable": True}
    broken["services"]["intake"]["helthcheck"] = {"test": ["CMD", "true"]}
    problems = deploy_lint.compose_problems(broken, schema)
    assert any("kafak" in p for p in problems)
    assert any("CASEWAY_ROUTER_HTTP_HOTS" in p for p in problems)
    assert any("notifier: no healthcheck" in p for p in problems)
    assert any("helthcheck" in p for p in problems)


def test_the_image_health_check_finds_the_service_the_container_runs(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "healthcheck", ROOT / "deploy" / "docker" / "healthcheck.py"
    )
    assert spec is not None
    assert spec.loader is not None
    healthcheck = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(healthcheck)
    (tmp_path / "self").mkdir()
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "cmdline").write_bytes(b"/app/.venv/bin/python\0/app/.venv/bin/caseway-router\0")
    assert healthcheck.running_service(tmp_path) == "caseway-router"
    (tmp_path / "1" / "cmdline").write_bytes(b"caseway\0stack\0up\0")
    assert healthcheck.running_service(tmp_path) is None


def _environment(container: dict, config: dict, secrets: dict) -> dict[str, str]:
    """A container's environment as Kubernetes would give it (secrets from the placeholders)."""
    environment = dict(config["data"])
    for variable in container["env"]:
        source = variable.get("valueFrom") or {}
        if "secretKeyRef" in source:
            reference = source["secretKeyRef"]
            # Strimzi makes the KafkaUser's Secret; the others are the base's placeholders.
            environment[variable["name"]] = secrets.get(reference["name"], {}).get(
                reference["key"], "generated"
            )
        elif "fieldRef" in source:
            environment[variable["name"]] = "caseway-pod-0"
        else:
            environment[variable["name"]] = variable["value"]
    return environment


def test_each_deployment_starts_under_the_production_profile(monkeypatch):
    config = yaml.safe_load((BASE / "config.yaml").read_text())
    secrets = {
        d["metadata"]["name"]: d["stringData"]
        for d in yaml.safe_load_all((BASE / "secrets.yaml").read_text())
    }
    for service, settings_class in deploy_lint.SETTINGS.items():
        short = service.removeprefix("caseway-")
        documents = list(yaml.safe_load_all((BASE / f"{short}.yaml").read_text()))
        deployment = next(d for d in documents if d["kind"] == "Deployment")
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        environment = _environment(container, config, secrets)
        for name in [n for n in os.environ if n.startswith(("CASEWAY_", "KAFKA_", "DATABASE_"))]:
            monkeypatch.delenv(name)
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        settings = settings_class()  # CASEWAY_ENV=production: raises naming every problem
        assert settings.environment == "production"
        assert settings.kafka_sasl_username == service
        assert settings.http_host == "0.0.0.0"  # noqa: S104 - a container listens on its pod's address
        assert settings.database_role == f"caseway_{short}"
