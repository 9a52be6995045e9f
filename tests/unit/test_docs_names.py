"""The operators' documents cannot go stale silently: every setting they name (`CASEWAY_*`, and the shared
`KAFKA_*`, `DATABASE_*`, `OTEL_*`) is read by the service it belongs to or by the deployment tooling (the
check `caseway_ops.deploy_lint` applies to the manifests); every metric they name is one the services
serve at /metrics, as Prometheus spells it; and the scaling guide's partitions, benchmark run and fault
run are the catalogue's and the ones in bench/."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from caseway_intake.entrypoints.app import create_app as create_intake
from caseway_intake.settings import IntakeSettings
from caseway_notifier.entrypoints.app import create_app as create_notifier
from caseway_notifier.settings import NotifierSettings
from caseway_ops import deploy_lint
from caseway_router.entrypoints.app import create_app as create_router
from caseway_router.settings import RouterSettings
from caseway_shared.settings import known_environment_names
from caseway_shared.topics import CATALOGUE

ROOT = Path(__file__).resolve().parents[2]
SCALING = ROOT / "docs" / "scaling.md"
DOCUMENTS = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("**/*.md")])
SERVICES = ("intake", "router", "notifier")
SETTING = re.compile(r"\b(?:CASEWAY|KAFKA|DATABASE|OTEL)_[A-Z0-9_]*[A-Z0-9]\b")
# A metric-like word not part of a path or a dotted module name.
METRIC = re.compile(r"(?<![\w./-])((?:caseway|faststream)_[a-z0-9_]+)(?![\w.(/-])")
# Spelt like metrics, but the Python packages (and the PostgreSQL roles named after the services).
NOT_METRICS = {"caseway_shared", "caseway_ops", "caseway_intake", "caseway_router", "caseway_notifier"}
# What Prometheus sees of each kind of metric family.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("", "_bucket", "_sum", "_count", "_created"),
}


def _exposed_metrics() -> set[str]:
    names: set[str] = set()
    for create, settings in (
        (create_intake, IntakeSettings(environment="development")),
        (create_router, RouterSettings(environment="development")),
        (create_notifier, NotifierSettings(environment="development")),
    ):
        registry = create(settings).state.runtime.metrics  # builds the app; connects to nothing
        for family in registry.collect():
            names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def _unknown_setting(name: str, shared: set[str]) -> bool:
    if not name.startswith("CASEWAY_"):
        return name not in shared
    owner = [s for s in SERVICES if name.startswith(f"CASEWAY_{s.upper()}_")]
    # A service's own name must be its service's; any other must be read by some service or the tooling.
    return all(deploy_lint.unknown_names(f"caseway-{service}", [name]) for service in owner or SERVICES)


@pytest.fixture(scope="module")
def exposed_metrics() -> set[str]:
    return _exposed_metrics()


@pytest.fixture(scope="module")
def shared_settings() -> set[str]:
    return {
        name
        for settings in (IntakeSettings, RouterSettings, NotifierSettings)
        for name in known_environment_names(settings.model_construct())
        if not name.startswith("CASEWAY_")
    }


def test_the_scaling_guide_is_among_the_documents_checked():
    assert SCALING in DOCUMENTS
    assert "docs/scaling.md" in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_setting_a_document_names_is_read_by_its_service(document, shared_settings):
    names = set(SETTING.findall(document.read_text(encoding="utf-8")))
    assert sorted(n for n in names if _unknown_setting(n, shared_settings)) == []


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_metric_a_document_names_is_served(document, exposed_metrics):
    names = set(METRIC.findall(document.read_text(encoding="utf-8"))) - NOT_METRICS
    assert sorted(names - exposed_metrics) == []


def test_the_checks_catch_a_misspelt_setting_and_a_metric_without_its_suffix(
    exposed_metrics, shared_settings
):
    assert _unknown_setting("CASEWAY_ROUTER_MOST_LOCK_PER_TRANSACTION", shared_settings)
    assert _unknown_setting("CASEWAY_INTAKE_MOST_LOCKS_PER_TRANSACTION", shared_settings)  # the router's
    assert _unknown_setting("DATABASE_POOL_MAX", shared_settings)  # per service, never shared
    assert not _unknown_setting("CASEWAY_ROUTER_MOST_LOCKS_PER_TRANSACTION", shared_settings)
    assert not _unknown_setting("CASEWAY_STAFF_BASE_URL", shared_settings)  # router and notifier
    assert not _unknown_setting("DATABASE_SSL_MODE", shared_settings)
    assert "caseway_records_processed" not in exposed_metrics  # a counter is queried as ..._total
    assert "caseway_records_processed_total" in exposed_metrics
    assert "caseway_router_candidate_search_seconds_bucket" in exposed_metrics


def test_the_scaling_guides_partitions_are_the_catalogues():
    table_row = re.compile(r"^\| `([a-z0-9.-]+\.v\d+)` \| (\d+) \|", re.MULTILINE)
    rows = table_row.findall(SCALING.read_text(encoding="utf-8"))
    assert {name: int(count) for name, count in rows} == {
        spec.topic.value: spec.partitions for spec in CATALOGUE
    }
    assert len(rows) == len(CATALOGUE)


@pytest.mark.parametrize(("file", "stamp"), [("results.json", "run_id"), ("faults.json", None)])
def test_the_scaling_guides_figures_come_from_the_runs_in_bench(file, stamp):
    """A new `make bench` or `make faults` run fails this until the guide's figures are updated."""
    figures = json.loads((ROOT / "bench" / file).read_text(encoding="utf-8"))
    guide = SCALING.read_text(encoding="utf-8")
    assert figures["machine"]["at"] in guide, f"bench/{file} is from another run: update docs/scaling.md"
    if stamp is not None:
        assert f"`{figures[stamp]}`" in guide, f"bench/{file} is from another run: update docs/scaling.md"
