"""The published JSON Schema of contact-centre.reports.v1, generated from the pydantic model.

`uv run python -m caseway_intake.entrypoints.schemas` rewrites shared/schemas/; a unit test fails when the
stored file and the model disagree, so the published contract never drifts from the code that enforces it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from caseway_shared.contact_centre import ContactCentreReport
from caseway_shared.topics import Topic

SCHEMAS_DIR = Path(__file__).resolve().parents[5] / "shared" / "schemas"
CONTACT_CENTRE_FILE = f"{Topic.CONTACT_CENTRE_REPORTS.value}.schema.json"


def contact_centre_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of what upstream systems publish to contact-centre.reports.v1."""
    schema = ContactCentreReport.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://caseway.example/schemas/{CONTACT_CENTRE_FILE}",
        **schema,
    }


def render() -> str:
    return json.dumps(contact_centre_schema(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    target = SCHEMAS_DIR / CONTACT_CENTRE_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render())
    sys.stdout.write(f"wrote {target}\n")


if __name__ == "__main__":
    main()
