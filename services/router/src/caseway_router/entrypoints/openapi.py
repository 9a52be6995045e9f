"""The OpenAPI document of the router's staff JSON API (served at /openapi.json), written out by hand so
that it says exactly what the handlers in `staff_http` accept."""

from __future__ import annotations

from typing import Any

from caseway_router.domain.casefile import NOTE_VISIBILITY, RESOLUTIONS
from caseway_shared.events import CaseStatus


def _action(summary: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": [{"$ref": "#/components/parameters/reference"}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
            "responses": _responses("The case after the change.", "#/components/schemas/Case"),
        }
    }


def _responses(ok: str, ref: str) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {
        "200": {"description": ok, "content": {"application/json": {"schema": {"$ref": ref}}}},
        "400": {"description": "The request is not valid.", **error},
        "401": {"description": "Nobody is signed in.", **error},
        "403": {
            "description": "Not this person's case or neighbourhood, or the staff header came from an "
            "address that is not the sign-on proxy.",
            **error,
        },
        "404": {"description": "No such case, report or neighbourhood.", **error},
        "409": {"description": "The case's state does not allow it (closed, not awaiting review).", **error},
    }


def _object(required: list[str], **properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties, "additionalProperties": False}


def openapi_document(staff_header: str) -> dict[str, Any]:
    text = {"type": "string"}
    department = {"type": "string", "description": "A department code of the council's configuration."}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Caseway router: staff API",
            "version": "1",
            "description": "Cases as staff see them and what staff do to them. Every request is made as "
            f"the staff member the council's sign-on proxy names in the `{staff_header}` header (accepted "
            "only from the proxy's addresses); each person reads and changes only their neighbourhoods' and "
            "departments' cases. Residents' phone numbers and email addresses are masked in every text. "
            "Every change is recorded in the case's history with who made it and published as a case "
            "event on cases.v1. POST bodies must be JSON (Content-Type: application/json).",
        },
        "components": {
            "securitySchemes": {"signOnProxy": {"type": "apiKey", "in": "header", "name": staff_header}},
            "parameters": {
                "reference": {"name": "reference", "in": "path", "required": True, "schema": text},
            },
            "schemas": {
                "Error": _object(["error"], error=text),
                "Case": {
                    "type": "object",
                    "description": "A case: category, place, departments with their states, reports "
                    "(masked), possible duplicates, notes and full history.",
                    "properties": {
                        "reference": text,
                        "status": {"enum": [status.value for status in CaseStatus]},
                        "resolution": {"enum": [*RESOLUTIONS, None]},
                        "overdue": {"type": "boolean"},
                        "due_at": {"type": ["string", "null"], "format": "date-time"},
                        "departments": {"type": "array", "items": {"type": "object"}},
                        "reports": {"type": "array", "items": {"type": "object"}},
                        "possible_duplicates": {"type": "array", "items": {"type": "object"}},
                        "history": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "Board": {"type": "object", "description": "A neighbourhood's open cases and its figures."},
                "Me": {"type": "object", "description": "Who is signed in and what they may see."},
                "Unlinked": _object(["new_case"], new_case=text),
            },
        },
        "security": [{"signOnProxy": []}],
        "paths": {
            "/api/me": {
                "get": {
                    "summary": "Who is signed in.",
                    "responses": _responses("Me.", "#/components/schemas/Me"),
                }
            },
            "/api/cases/{reference}": {
                "get": {
                    "summary": "One case.",
                    "parameters": [{"$ref": "#/components/parameters/reference"}],
                    "responses": _responses("The case.", "#/components/schemas/Case"),
                }
            },
            "/api/cases/{reference}/acknowledge": _action(
                "Acknowledge a department's part (default: the caller's); the case becomes acknowledged "
                "and is no longer escalated.",
                _object([], department=department),
            ),
            "/api/cases/{reference}/reassign": _action(
                "Give `from_department`'s part to `to_department` (or add `to_department` with `role`).",
                _object(
                    ["to_department"],
                    to_department=department,
                    from_department=department,
                    role={"enum": ["lead", "contributor"], "default": "contributor"},
                ),
            ),
            "/api/cases/{reference}/note": _action(
                "Add a note: internal, or public (the resident sees it; contact details are masked).",
                _object(
                    ["text", "visibility"],
                    text={"type": "string", "maxLength": 4000},
                    visibility={"enum": list(NOTE_VISIBILITY)},
                ),
            ),
            "/api/cases/{reference}/close": _action(
                "Close with a resolution; `duplicate` needs `duplicate_of` (the case's reports move there).",
                _object(["resolution"], resolution={"enum": list(RESOLUTIONS)}, note=text, duplicate_of=text),
            ),
            "/api/cases/{reference}/duplicate": _action(
                "Review a possible duplicate: the same problem (merged into `other` and closed) or not.",
                _object(["other", "same_problem"], other=text, same_problem={"type": "boolean"}),
            ),
            "/api/cases/{reference}/link": _action(
                "Move a report from another case into this one (a case left empty closes as a duplicate).",
                _object(["report_id"], report_id={"type": "string", "format": "uuid"}),
            ),
            "/api/cases/{reference}/reports/{report_id}/unlink": {
                "post": {
                    "summary": "Take a report out of this case into a new case of its own.",
                    "parameters": [
                        {"$ref": "#/components/parameters/reference"},
                        {
                            "name": "report_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "format": "uuid"},
                        },
                    ],
                    "responses": _responses("The new case's reference.", "#/components/schemas/Unlinked"),
                }
            },
            "/api/neighbourhoods/{name}/board": {
                "get": {
                    "summary": "A neighbourhood's open cases (overdue first) and figures for the week.",
                    "parameters": [
                        {"name": "name", "in": "path", "required": True, "schema": text},
                        {"name": "category", "in": "query", "schema": text},
                        {"name": "department", "in": "query", "schema": text},
                        {
                            "name": "state",
                            "in": "query",
                            "schema": {"enum": [CaseStatus.OPEN.value, CaseStatus.ACKNOWLEDGED.value]},
                        },
                    ],
                    "responses": _responses("The board.", "#/components/schemas/Board"),
                }
            },
        },
    }
