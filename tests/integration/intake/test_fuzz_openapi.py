"""A fuzz run of the Open311 API generated from its own OpenAPI document, against intake running as a
process over the real broker and database: whatever arrives, the answer is never a 5xx."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import Counter

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

# The same key as the other intake tests: the seed is stored once per database under one name.
from .conftest import API_KEY

pytestmark = pytest.mark.infra

EXAMPLES = int(os.environ.get("CASEWAY_FUZZ_EXAMPLES", "40"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def intake_url(infra, tmp_path_factory):
    port = _free_port()
    log_path = tmp_path_factory.mktemp("fuzz") / "intake.log"
    env = {
        **os.environ,
        **infra.env(),
        "CASEWAY_INTAKE_HTTP_PORT": str(port),
        "CASEWAY_INTAKE_OPEN311_SEED_API_KEY": API_KEY,
        "CASEWAY_LOG_FORMAT": "json",
    }
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "caseway_intake"], env=env, stdout=log_file, stderr=log_file
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 180  # a loaded 2-core machine starts slowly
            while True:
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert process.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, "intake did not become ready"
                time.sleep(0.3)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=20)


def test_no_input_makes_the_open311_api_fail_with_a_server_error(intake_url):
    """Every operation of the served OpenAPI document, with inputs generated from it (valid and not)."""
    schema = schemathesis.openapi.from_url(f"{intake_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert any(op.path.startswith("/open311/v2/requests") for op in operations)
    calls: list[tuple[str, str, int]] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def call(case):
            # Half the posts carry a valid key, so generated bodies reach validation and storage.
            if case.method == "POST" and isinstance(case.body, dict) and len(calls) % 2:
                case.body["api_key"] = API_KEY
            response = case.call(base_url=intake_url, timeout=15)
            calls.append((case.method, case.formatted_path, response.status_code))
            case.validate_response(response, checks=[not_a_server_error])

        call()
    assert len(calls) >= len(operations)
    assert not [c for c in calls if c[2] >= 500]
    print("fuzz calls by status:", sorted(Counter(c[2] for c in calls).items()))  # noqa: T201 - shown with -s
