"""Offline validation of deploy/: the Dockerfile, the Compose file and the Kubernetes manifests.

``python -m caseway_ops.deploy_lint`` (``make lint`` runs it) checks, with no network and no Docker or
Kubernetes cluster, using only tools the project's own files install (dev dependencies in uv.lock):

- ``deploy/Dockerfile`` with hadolint (its PyPI wheel), then the rules that matter here: every base image
  pinned to a version tag, no ``ADD`` of a URL, a non-root ``USER`` in the final stage, a
  ``HEALTHCHECK``.
- ``deploy/compose.yaml`` against the Compose Specification's JSON schema (vendored in
  ``deploy/schemas/``); every ``depends_on`` names a service; every long-running service has a health
  check; no service is given a ``CASEWAY_`` variable that none of its settings reads.
- ``deploy/k8s``: the base and every overlay rendered by ``kubectl kustomize`` (kubectl's PyPI wheel);
  every resource validated strictly (unknown fields are errors) against the Kubernetes JSON schemas that
  kubernetes-validate ships, for the oldest and the newest Kubernetes version supported, and Strimzi's
  ``KafkaTopic`` / ``KafkaUser`` against the CRDs of Strimzi 1.2.0 (vendored); then that every
  Deployment has liveness and readiness probes, requests and limits, a non-root user and a
  PodDisruptionBudget; every referenced Secret or ConfigMap exists or is one Strimzi makes; the
  generated Strimzi files match the topic catalogue; and no container is given a ``CASEWAY_`` variable
  its service does not read (``CASEWAY_ENV=production`` would refuse to start).

Exit status 0 when everything passes; otherwise every problem is printed, one per line.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, cast

import jsonschema
import referencing
import yaml
from kubernetes_validate import utils as kubernetes_validate

from caseway_intake.settings import IntakeSettings
from caseway_notifier.settings import NotifierSettings
from caseway_ops import k8s
from caseway_router.settings import RouterSettings
from caseway_shared.settings import ServiceSettings, unknown_caseway_settings

DEPLOY_DIR = Path(__file__).resolve().parents[2]
SCHEMAS_DIR = DEPLOY_DIR / "schemas"
DOCKERFILE = DEPLOY_DIR / "Dockerfile"
COMPOSE_FILE = DEPLOY_DIR / "compose.yaml"
K8S_DIR = DEPLOY_DIR / "k8s"
# The oldest Kubernetes release still supported upstream when this was written, and the newest the
# schemas cover.
KUBERNETES_VERSIONS = ("1.32", "1.37")
SETTINGS: dict[str, type[ServiceSettings]] = {
    "caseway-intake": IntakeSettings,
    "caseway-router": RouterSettings,
    "caseway-notifier": NotifierSettings,
}
STRIMZI_CRDS = {
    "KafkaTopic": "strimzi/043-Crd-kafkatopic.yaml",
    "KafkaUser": "strimzi/044-Crd-kafkauser.yaml",
}
_PINNED_TAG = re.compile(r"^[^:@\s]+(:[^:@\s]*\d[^:@\s]*)(@sha256:[0-9a-f]{64})?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)

    def fail(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")


# Dockerfile -------------------------------------------------------------------------------------------


def _tool(name: str) -> str:
    """A tool installed in this virtual environment (next to the interpreter), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed: run `uv sync` (it is a dev dependency)")
    return found


def _instructions(text: str) -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    result = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def _base_image_problems(instructions: list[tuple[str, str]]) -> list[str]:
    """Every FROM names a version tag (or an earlier stage); ARG defaults are substituted."""
    args = {}
    for keyword, rest in instructions:
        if keyword == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name.strip()] = value.strip().strip('"')
    stages: list[str] = []
    problems = []
    for keyword, rest in instructions:
        if keyword != "FROM":
            continue
        words = [w for w in rest.split() if not w.startswith("--")]
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), words[0])
        if image not in stages and image != "scratch" and not _PINNED_TAG.match(image):
            problems.append(f"base image {image!r} is not pinned to a version tag")
        if len(words) >= 3 and words[1].upper() == "AS":  # noqa: PLR2004 - FROM image AS name
            stages.append(words[2])
    return problems


def _final_user(instructions: list[tuple[str, str]]) -> str | None:
    """The USER in force at the end of the last stage (None: none set there)."""
    user = None
    for keyword, rest in instructions:
        if keyword == "FROM":
            user = None
        elif keyword == "USER":
            user = rest.split(":")[0]
    return user


def dockerfile_problems(text: str) -> list[str]:
    """The rules that matter for Caseway's image, on the Dockerfile's text."""
    instructions = _instructions(text)
    problems = _base_image_problems(instructions)
    problems.extend(
        f"ADD of a URL ({rest.split()[0]}): download in a RUN step with a checksum"
        for keyword, rest in instructions
        if keyword == "ADD" and re.search(r"\b(https?|ftp)://", rest)
    )
    user = _final_user(instructions)
    if user is None:
        problems.append("the final stage sets no USER: it would run as root")
    elif user in {"root", "0"}:
        problems.append("the final stage runs as root")
    if not any(
        keyword == "HEALTHCHECK" and not rest.upper().startswith("NONE") for keyword, rest in instructions
    ):
        problems.append("no HEALTHCHECK")
    return problems


def check_dockerfile(report: Report, path: Path = DOCKERFILE) -> None:
    where = str(path.relative_to(DEPLOY_DIR.parent))
    run = subprocess.run(  # noqa: S603 - the project's own hadolint on the project's own file
        [_tool("hadolint"), "--no-color", str(path)], capture_output=True, text=True, check=False
    )
    for line in (run.stdout + run.stderr).splitlines():
        if line.strip():
            report.fail(where, f"hadolint: {line.strip()}")
    if run.returncode != 0 and not (run.stdout + run.stderr).strip():
        report.fail(where, f"hadolint exited {run.returncode}")
    for problem in dockerfile_problems(path.read_text()):
        report.fail(where, problem)
    report.passed.append(f"{where}: hadolint and the image rules")


# Environment names -----------------------------------------------------------------------------------


def unknown_names(service: str, names: list[str]) -> list[str]:
    """The ``CASEWAY_`` names among ``names`` that ``service`` (caseway-intake, ...) does not read."""
    settings = SETTINGS[service].model_construct()
    return unknown_caseway_settings(settings, dict.fromkeys(names, ""))


def _service_of(command: list[str] | str | None) -> str | None:
    words = command.split() if isinstance(command, str) else list(command or [])
    return next((word for word in words[:1] if word in SETTINGS), None)


# Compose ---------------------------------------------------------------------------------------------


def compose_problems(document: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    problems = [
        f"{'.'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        for error in sorted(
            jsonschema.Draft7Validator(schema).iter_errors(document), key=lambda e: list(e.absolute_path)
        )
    ]
    services: dict[str, Any] = document.get("services") or {}
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        problems.extend(
            f"services.{name}.depends_on: no service {other!r}" for other in depends if other not in services
        )
        one_shot = service.get("restart") == "no"
        health = service.get("healthcheck") or {}
        runs_tool = _service_of(service.get("command")) is None and "build" in service
        if not one_shot and not runs_tool and (not health or health.get("disable")):
            problems.append(f"services.{name}: no healthcheck")
        caseway_service = _service_of(service.get("command"))
        if caseway_service:
            environment = service.get("environment") or {}
            names = (
                list(environment) if isinstance(environment, dict) else [e.split("=")[0] for e in environment]
            )
            problems.extend(
                f"services.{name}.environment: {caseway_service} reads no {unknown}"
                for unknown in unknown_names(caseway_service, names)
            )
    return problems


def check_compose(report: Report, path: Path = COMPOSE_FILE) -> None:
    where = str(path.relative_to(DEPLOY_DIR.parent))
    schema = json.loads((SCHEMAS_DIR / "compose-spec.json").read_text())
    for problem in compose_problems(yaml.safe_load(path.read_text()), schema):
        report.fail(where, problem)
    report.passed.append(f"{where}: the Compose Specification's schema, depends_on, healthchecks, settings")


# Kubernetes ------------------------------------------------------------------------------------------


def _strict(schema: object) -> object:
    """An OpenAPI v3 CRD schema as a JSON schema that refuses unknown fields (as `kubectl apply`'s
    strict field validation does), except where the CRD keeps unknown fields on purpose."""
    if isinstance(schema, dict):
        strict = {key: _strict(value) for key, value in schema.items() if not key.startswith("x-kubernetes")}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            strict["additionalProperties"] = False
        return strict
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@cache
def crd_schema(kind: str) -> tuple[str, dict[str, Any]]:
    """(apiVersion, strict JSON schema) of the served version of a vendored Strimzi CRD."""
    crd = yaml.safe_load((SCHEMAS_DIR / STRIMZI_CRDS[kind]).read_text())
    version = next(v for v in crd["spec"]["versions"] if v.get("served") and v.get("storage"))
    strict = cast("dict[str, Any]", _strict(version["schema"]["openAPIV3Schema"]))
    return f"{crd['spec']['group']}/{version['name']}", strict


@cache
def kubernetes_validator(kind: str, api_version: str, version: str) -> jsonschema.Draft202012Validator | None:
    """A validator of one built-in kind from the strict schemas kubernetes-validate ships (its own
    `validate` stops at the first error; this reports them all). None: no such kind at that version."""
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    directory = f"kubernetes-json-schema/v{version}.0-local-strict"
    try:
        schema = kubernetes_validate.schema_contents(
            f"{directory}/{kind.lower()}-{group_version}.json", version
        )
    except FileNotFoundError:
        return None
    definitions = kubernetes_validate.schema_contents(f"{directory}/_definitions.json", version)
    registry: referencing.Registry[Any] = referencing.Registry().with_resources(
        [
            ("", referencing.Resource.from_contents(schema)),
            ("_definitions.json", referencing.Resource.from_contents(definitions)),
        ]
    )
    return jsonschema.Draft202012Validator(schema, registry=registry)


def resource_problems(resource: dict[str, Any], versions: tuple[str, ...] = KUBERNETES_VERSIONS) -> list[str]:
    """Schema problems of one resource: Kubernetes' kinds against their schemas at each version, the
    Strimzi kinds against their CRD."""
    kind = resource.get("kind", "?")
    name = (resource.get("metadata") or {}).get("name", "?")
    problems = []
    if not _DNS_SUBDOMAIN.match(str(name)) or len(str(name)) > 253:  # noqa: PLR2004 - Kubernetes' limit
        problems.append(f"{kind}/{name}: not a valid resource name")
    if kind in STRIMZI_CRDS:
        api_version, schema = crd_schema(kind)
        if resource.get("apiVersion") != api_version:
            problems.append(
                f"{kind}/{name}: apiVersion {resource.get('apiVersion')} (Strimzi serves {api_version})"
            )
        problems.extend(
            f"{kind}/{name}: {'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in jsonschema.Draft7Validator(schema).iter_errors(resource)
        )
        return problems
    for version in versions:
        validator = kubernetes_validator(kind, str(resource.get("apiVersion")), version)
        if validator is not None:
            problems.extend(
                f"{kind}/{name} (Kubernetes {version}): {'.'.join(map(str, e.absolute_path))}: {e.message}"
                for e in validator.iter_errors(resource)
            )
        else:
            problems.append(
                f"{kind}/{name}: no schema for {resource.get('apiVersion')} {kind} in Kubernetes {version}"
            )
    return problems


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def _pod_specs(resources: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{r['kind']}/{r['metadata']['name']}", r["spec"]["template"]["spec"])
        for r in resources
        if r["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}
    ]


def _env_references(container: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for source in container.get("envFrom", []):
        if "secretRef" in source:
            found.append(("Secret", source["secretRef"]["name"]))
        if "configMapRef" in source:
            found.append(("ConfigMap", source["configMapRef"]["name"]))
    for variable in container.get("env", []):
        value_from = variable.get("valueFrom") or {}
        if "secretKeyRef" in value_from:
            found.append(("Secret", value_from["secretKeyRef"]["name"]))
        if "configMapKeyRef" in value_from:
            found.append(("ConfigMap", value_from["configMapKeyRef"]["name"]))
    return found


def _references(pod: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, name) of every Secret and ConfigMap a pod spec uses."""
    found = []
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        found.extend(_env_references(container))
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            found.append(("Secret", volume["secret"]["secretName"]))
        if "configMap" in volume:
            found.append(("ConfigMap", volume["configMap"]["name"]))
    return found


def strimzi_secrets(resources: list[dict[str, Any]]) -> set[str]:
    """Secrets Strimzi makes for these resources: one per KafkaUser, and each cluster's CA."""
    made = set()
    for resource in resources:
        if resource["kind"] == "KafkaUser":
            made.add(resource["metadata"]["name"])
        if resource["kind"] in STRIMZI_CRDS:
            made.add(f"{resource['metadata']['labels']['strimzi.io/cluster']}-cluster-ca-cert")
    return made


def manifest_problems(resources: list[dict[str, Any]]) -> list[str]:
    """What a schema cannot say: probes, resources, non-root, PDBs, references, settings names."""
    problems = []
    defined = {(r["kind"], r["metadata"]["name"]) for r in resources}
    external = {("Secret", name) for name in strimzi_secrets(resources)}
    pdbs = [r for r in resources if r["kind"] == "PodDisruptionBudget"]
    for resource in resources:
        if resource["kind"] != "Deployment":
            continue
        where = f"Deployment/{resource['metadata']['name']}"
        labels = resource["spec"]["template"]["metadata"].get("labels", {})
        if not any(_selects(p["spec"].get("selector", {}).get("matchLabels", {}), labels) for p in pdbs):
            problems.append(f"{where}: no PodDisruptionBudget selects its pods")
        pod = resource["spec"]["template"]["spec"]
        if not (pod.get("securityContext") or {}).get("runAsNonRoot"):
            problems.append(f"{where}: runAsNonRoot is not set")
        for container in pod["containers"]:
            cwhere = f"{where} container {container['name']}"
            problems.extend(
                f"{cwhere}: no {probe}"
                for probe in ("livenessProbe", "readinessProbe")
                if probe not in container
            )
            limits = container.get("resources") or {}
            problems.extend(
                f"{cwhere}: no {part}.{unit}"
                for part in ("requests", "limits")
                for unit in ("cpu", "memory")
                if unit not in (limits.get(part) or {})
            )
    for where, pod in _pod_specs(resources):
        problems.extend(
            f"{where}: uses {kind} {name!r}, which is neither defined nor made by Strimzi"
            for kind, name in _references(pod)
            if (kind, name) not in defined and (kind, name) not in external
        )
        configmaps = {r["metadata"]["name"]: r.get("data", {}) for r in resources if r["kind"] == "ConfigMap"}
        for container in pod["containers"]:
            service = _service_of(container.get("command"))
            if service is None:
                continue
            names = [v["name"] for v in container.get("env", [])]
            for source in container.get("envFrom", []):
                names.extend(configmaps.get((source.get("configMapRef") or {}).get("name", ""), {}))
            problems.extend(
                f"{where} container {container['name']}: {service} reads no {unknown} "
                "(CASEWAY_ENV=production refuses to start)"
                for unknown in unknown_names(service, names)
            )
    services = [r for r in resources if r["kind"] == "Service"]
    templates = [
        r["spec"]["template"]["metadata"].get("labels", {}) for r in resources if r["kind"] == "Deployment"
    ]
    problems.extend(
        f"Service/{s['metadata']['name']}: selects no Deployment's pods"
        for s in services
        if not any(_selects(s["spec"].get("selector", {}), labels) for labels in templates)
    )
    return problems


def render_kustomization(directory: Path) -> list[dict[str, Any]]:
    run = subprocess.run(  # noqa: S603 - the project's own kubectl on the project's own files
        [_tool("kubectl"), "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    if run.returncode != 0:
        raise ValueError(run.stderr.strip() or f"kubectl kustomize exited {run.returncode}")
    return [document for document in yaml.safe_load_all(run.stdout) if document]


def kustomizations(root: Path = K8S_DIR) -> list[Path]:
    return sorted(path.parent for path in root.rglob("kustomization.yaml"))


def check_kubernetes(report: Report, root: Path = K8S_DIR) -> None:
    for stale in k8s.stale_files():
        report.fail(f"deploy/k8s/base/{stale}", "differs from the topic catalogue: run `caseway k8s --write`")
    for directory in kustomizations(root):
        where = str(directory.relative_to(DEPLOY_DIR.parent))
        try:
            resources = render_kustomization(directory)
        except ValueError as exc:
            report.fail(where, f"kubectl kustomize: {exc}")
            continue
        for resource in resources:
            for problem in resource_problems(resource):
                report.fail(where, problem)
        for problem in manifest_problems(resources):
            report.fail(where, problem)
        kinds = sorted({r["kind"] for r in resources})
        report.passed.append(
            f"{where}: {len(resources)} resources ({', '.join(kinds)}) against Kubernetes "
            f"{' and '.join(KUBERNETES_VERSIONS)} schemas and Strimzi's CRDs"
        )


def main() -> int:
    began = time.monotonic()
    report = Report()
    check_dockerfile(report)
    check_compose(report)
    check_kubernetes(report)
    for line in report.passed:
        print(f"ok    {line}")  # noqa: T201 - a command-line report
    for line in report.problems:
        print(f"FAIL  {line}")  # noqa: T201
    verdict = "failed" if report.problems else "passed"
    print(f"deploy/ validation {verdict} in {time.monotonic() - began:.1f} s")  # noqa: T201
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
