"""The Open311 GeoReport v2 HTTP API under /open311/v2: thin handlers over `open311` and the service.

JSON or XML by the path's extension, as the spec does; errors as the spec's list of {code, description}
with 400 (invalid, every reason at once), 403 (API key) and 404 (no such thing).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.responses import Response

from caseway_intake import open311
from caseway_intake.formats import MEDIA_TYPES, Format, render
from caseway_intake.store import find_requests, report_of_token
from caseway_intake.validation import Invalid, text_problems
from caseway_shared.consuming import is_infrastructure_error

if TYPE_CHECKING:
    from fastapi import FastAPI

    from caseway_intake.service import IntakeService
    from caseway_intake.settings import IntakeSettings

PREFIX = "/open311/v2"
_CLIENT_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_FORM = "application/x-www-form-urlencoded"


class Open311Error(Exception):
    """An answer in the spec's error format; `reasons` are all given at once."""

    def __init__(self, status: int, reasons: list[str] | tuple[str, ...]) -> None:
        super().__init__("; ".join(reasons))
        self.status = status
        self.reasons = list(reasons)


def answer(fmt: Format, root: str, data: object, status: int = 200) -> Response:
    return Response(render(fmt, root, data), status_code=status, media_type=MEDIA_TYPES[fmt])


def error_answer(path: str, status: int, reasons: list[str]) -> Response:
    fmt: Format = "xml" if path.endswith(".xml") else "json"
    return answer(fmt, "errors", open311.errors(status, reasons), status)


_FMT = Annotated[Format, Path(description="The answer's format: json or xml.")]
_JURISDICTION = Annotated[
    str | None, Query(max_length=64, description="Only needed where a server serves several.")
]
_ERRORS = {
    400: {"description": "Invalid: every reason, as [{code, description}]"},
    403: {"description": "API key missing or not valid"},
    404: {"description": "No such service, request or token"},
}
_POST_FIELDS: dict[str, Any] = {
    "type": "object",
    "required": ["api_key", "service_code"],
    "properties": {
        "api_key": {"type": "string", "maxLength": 256},
        "jurisdiction_id": {"type": "string", "maxLength": 64},
        "service_code": {"type": "string", "maxLength": 64},
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        "long": {"type": "number", "minimum": -180, "maximum": 180},
        "address_string": {"type": "string", "maxLength": 500},
        "address_id": {"type": "string", "pattern": "^[0-9]{1,12}$"},
        "email": {"type": "string", "maxLength": 254},
        "device_id": {"type": "string", "maxLength": 128},
        "account_id": {"type": "string", "maxLength": 128},
        "first_name": {"type": "string", "maxLength": 99},
        "last_name": {"type": "string", "maxLength": 99},
        "phone": {"type": "string", "maxLength": 32},
        "description": {"type": "string", "maxLength": 4000},
        "media_url": {"type": "string", "format": "uri"},
    },
    "additionalProperties": {"type": "string"},
}


def open311_router(*, service: IntakeService, settings: IntakeSettings) -> APIRouter:  # noqa: C901, PLR0915 - one closure per endpoint, in the spec's order
    """The spec's six endpoints, bound to one service instance."""
    router = APIRouter(prefix=PREFIX, tags=["Open311 GeoReport v2"], responses=_ERRORS)  # type: ignore[arg-type]
    council = service.council

    def check_jurisdiction(jurisdiction_id: str | None) -> None:
        wanted = settings.open311_jurisdiction_id
        if jurisdiction_id and wanted and jurisdiction_id != wanted:
            raise Open311Error(404, ["jurisdiction_id: not served here"])

    @router.get("/services.{fmt}", summary="GET Service List")
    async def services(fmt: _FMT, jurisdiction_id: _JURISDICTION = None) -> Response:
        check_jurisdiction(jurisdiction_id)
        return answer(fmt, "services", open311.service_list(council))

    @router.get("/services/{service_code}.{fmt}", summary="GET Service Definition")
    async def service_definition(
        service_code: Annotated[str, Path(max_length=64)], fmt: _FMT, jurisdiction_id: _JURISDICTION = None
    ) -> Response:
        check_jurisdiction(jurisdiction_id)
        category = council.categories.get(service_code)
        if category is None:
            raise Open311Error(404, [f"service_code: no service {service_code[:64]!r}"])
        return answer(fmt, "service_definition", open311.service_definition(category))

    @router.post(
        "/requests.{fmt}",
        summary="POST Service Request",
        description="Form-encoded as the spec says (JSON accepted too). An `Idempotency-Key` header makes "
        "a repeated POST answer with the first request instead of making another.",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {_FORM: {"schema": _POST_FIELDS}, "application/json": {"schema": _POST_FIELDS}},
            }
        },
    )
    async def post_request(fmt: _FMT, request: Request) -> Response:
        fields = await _fields(request, settings.open311_max_body_bytes)
        jurisdiction = _first(fields, "jurisdiction_id") or request.query_params.get("jurisdiction_id")
        check_jurisdiction(jurisdiction)
        api_key = _first(fields, "api_key") or request.query_params.get("api_key")
        key_name = await service.api_keys.name_of(api_key)
        if key_name is None:
            raise Open311Error(403, ["api_key: missing or not valid"])
        parsed = open311.parse_service_request(fields, council)
        client_key = request.headers.get("idempotency-key")
        reasons = list(parsed.reasons) if isinstance(parsed, Invalid) else []
        if client_key is not None and not _CLIENT_KEY.match(client_key):
            reasons.append("Idempotency-Key: 1-64 letters, digits, '.', '_', ':' or '-'")
        if reasons or isinstance(parsed, Invalid):
            raise Open311Error(400, reasons)
        accepted = open311.accept_service_request(
            parsed,
            key_name=key_name,
            request_key=uuid.uuid4().hex,
            client_key=client_key,
            token=uuid.uuid4().hex,
            now=datetime.now(UTC),
        )
        token = await service.submit(accepted)
        entry: dict[str, Any] = (
            {"token": token}
            if settings.open311_answer_with == "token"
            else {"service_request_id": str(accepted.event.report_id)}
        )
        entry |= {"service_notice": None, "account_id": parsed.form.account_id}
        return answer(fmt, "service_requests", [entry])

    @router.get("/requests.{fmt}", summary="GET Service Requests")
    async def requests(  # noqa: PLR0917 - FastAPI reads the spec's query parameters from the signature
        fmt: _FMT,
        service_request_id: Annotated[str | None, Query(max_length=4000)] = None,
        service_code: Annotated[str | None, Query(max_length=1000)] = None,
        start_date: Annotated[str | None, Query(max_length=40)] = None,
        end_date: Annotated[str | None, Query(max_length=40)] = None,
        status: Annotated[str | None, Query(max_length=40)] = None,
        jurisdiction_id: _JURISDICTION = None,
    ) -> Response:
        check_jurisdiction(jurisdiction_id)
        reasons: list[str] = []
        start = _date("start_date", start_date, reasons)
        end = _date("end_date", end_date, reasons)
        statuses = _list(status)
        if statuses and not set(statuses) <= {"open", "closed"}:
            reasons.append("status: open, closed, or both separated by a comma")
        if reasons:
            raise Open311Error(400, reasons)
        ids = _list(service_request_id)
        if ids is not None:
            # The spec: service_request_id wins over every other filter.
            report_ids = [parsed for value in ids if (parsed := _uuid(value))]
            codes, statuses, start, end = None, None, None, None
        else:
            report_ids = None
            codes = _list(service_code)
            if start is None and end is None:
                start = datetime.now(UTC) - timedelta(days=settings.open311_default_days)
        async with service.pool.acquire() as connection:
            views = await find_requests(
                connection,
                report_ids=report_ids,
                service_codes=codes,
                start=start,
                end=end,
                statuses=statuses,
                limit=settings.open311_max_results,
            )
        return answer(fmt, "service_requests", [open311.request_entry(view, council) for view in views])

    @router.get("/requests/{service_request_id}.{fmt}", summary="GET Service Request")
    async def one_request(
        service_request_id: Annotated[str, Path(max_length=64)],
        fmt: _FMT,
        jurisdiction_id: _JURISDICTION = None,
    ) -> Response:
        check_jurisdiction(jurisdiction_id)
        report_id = _uuid(service_request_id)
        views = []
        if report_id is not None:
            async with service.pool.acquire() as connection:
                views = await find_requests(
                    connection,
                    report_ids=[report_id],
                    service_codes=None,
                    start=None,
                    end=None,
                    statuses=None,
                    limit=1,
                )
        if not views:
            raise Open311Error(404, ["service_request_id: no such request"])
        return answer(fmt, "service_requests", [open311.request_entry(views[0], council)])

    @router.get("/tokens/{token}.{fmt}", summary="GET service_request_id from a token")
    async def token(
        token: Annotated[str, Path(max_length=64)], fmt: _FMT, jurisdiction_id: _JURISDICTION = None
    ) -> Response:
        check_jurisdiction(jurisdiction_id)
        report_id = None
        if not text_problems("token", (token,)):
            async with service.pool.acquire() as connection:
                report_id = await report_of_token(connection, token)
        if report_id is None:
            raise Open311Error(404, ["token: no such token"])
        return answer(fmt, "service_requests", [{"service_request_id": str(report_id), "token": token}])

    return router


def install_error_handlers(app: FastAPI) -> None:
    """Every error under /open311 in the spec's format; FastAPI's own shapes elsewhere."""

    async def open311_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, Open311Error)  # noqa: S101 - registered for this type only
        return error_answer(request.url.path, error.status, error.reasons)

    async def invalid(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)  # noqa: S101 - registered for this type only
        reasons = [
            f"{'.'.join(str(part) for part in item['loc'][1:]) or 'request'}: {item['msg']}"
            for item in error.errors()
        ]
        # A path whose format is neither json nor xml names no resource of the spec.
        status = 404 if any(item["loc"][-1] == "fmt" for item in error.errors()) else 400
        return error_answer(request.url.path, status, reasons)

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)  # noqa: S101 - registered for this type only
        if request.url.path.startswith(PREFIX):
            return error_answer(request.url.path, error.status_code, [str(error.detail)])
        return Response(
            json.dumps({"detail": error.detail}), status_code=error.status_code, media_type="application/json"
        )

    async def unavailable(request: Request, error: Exception) -> Response:
        # The database or broker did not answer: the client may retry (with its Idempotency-Key).
        if not is_infrastructure_error(error):
            raise error
        return error_answer(request.url.path, 503, ["service temporarily unavailable: try again shortly"])

    app.add_exception_handler(Exception, unavailable)
    app.add_exception_handler(Open311Error, open311_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)


async def _fields(request: Request, limit: int) -> dict[str, list[str]]:
    """The POSTed fields (name -> values) of a form-encoded, multipart or JSON body of at most `limit`."""
    length = request.headers.get("content-length")
    if length and (not length.isdigit() or int(length) > limit):
        raise Open311Error(400, [f"body: larger than {limit} bytes"])
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Open311Error(400, [f"body: larger than {limit} bytes"])
    content_type = request.headers.get("content-type", _FORM).split(";")[0].strip().lower()
    if content_type == "application/json":
        return _json_fields(bytes(body))
    if content_type in {_FORM, ""}:
        try:
            pairs = parse_qsl(
                body.decode("utf-8"),
                keep_blank_values=True,
                errors="strict",
                max_num_fields=open311.MAX_FIELDS * open311.MAX_VALUES_PER_FIELD,
            )
        except (UnicodeDecodeError, ValueError):
            raise Open311Error(400, ["body: not a UTF-8 form (application/x-www-form-urlencoded)"]) from None
        fields: dict[str, list[str]] = {}
        for name, value in pairs:
            fields.setdefault(name, []).append(value)
        return fields
    if content_type == "multipart/form-data":
        return await _multipart_fields(request)
    raise Open311Error(400, ["Content-Type: send application/x-www-form-urlencoded or application/json"])


async def _multipart_fields(request: Request) -> dict[str, list[str]]:
    try:
        form = await request.form(max_files=0, max_fields=open311.MAX_FIELDS)
    except Exception:  # the parser's errors differ by version; all mean "not a form we can read"
        raise Open311Error(400, ["body: not a readable multipart form without files"]) from None
    fields: dict[str, list[str]] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            raise Open311Error(400, [f"{name}: files are not accepted; give media_url"])
        fields.setdefault(name, []).append(value)
    return fields


def _json_fields(body: bytes) -> dict[str, list[str]]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Open311Error(400, ["body: not valid UTF-8 JSON"]) from None
    if not isinstance(document, dict):
        raise Open311Error(400, ["body: must be a JSON object"])
    fields: dict[str, list[str]] = {}
    reasons: list[str] = []
    for name, value in document.items():
        if name == "attribute" and isinstance(value, dict):
            for code, answer_ in value.items():
                _add_json_value(fields, f"attribute[{code}]", answer_, reasons)
        else:
            _add_json_value(fields, name, value, reasons)
    if reasons:
        raise Open311Error(400, reasons)
    return fields


def _add_json_value(fields: dict[str, list[str]], name: str, value: object, reasons: list[str]) -> None:
    values = value if isinstance(value, list) else [value]
    for item in values:
        if item is None:
            continue
        if isinstance(item, str):
            fields.setdefault(name, []).append(item)
        elif isinstance(item, int | float) and not isinstance(item, bool):
            fields.setdefault(name, []).append(repr(item))
        else:
            reasons.append(f"{name}: must be text or a number")
            return


def _first(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None


def _list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    return items or None


def _date(name: str, value: str | None, reasons: list[str]) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        reasons.append(f"{name}: must be a W3C date and time, e.g. 2026-11-23T09:00:00Z")
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
