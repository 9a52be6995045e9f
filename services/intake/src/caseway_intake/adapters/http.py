"""The Open311 GeoReport v2 HTTP API under /open311/v2: thin handlers over `open311` and the service.

JSON or XML by the path's extension, as the spec does; errors as the spec's list of {code, description}
with 400 (invalid, every reason at once), 403 (API key) and 404 (no such thing).
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from caseway_intake.adapters.forms import FORM, MULTIPART, Body, BodyError, read_body
from caseway_intake.domain import open311, updates
from caseway_intake.domain.formats import MEDIA_TYPES, Format, render
from caseway_intake.domain.privacy import IdempotencyConflict
from caseway_intake.domain.validation import Invalid, text_problems
from caseway_shared.consuming import is_infrastructure_error
from caseway_shared.errors import validation_reasons

if TYPE_CHECKING:
    from fastapi import FastAPI

    from caseway_intake.service import IntakeService
    from caseway_intake.settings import IntakeSettings

PREFIX = "/open311/v2"
_CLIENT_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
MAX_PAGE = 100_000
_MAX_DIGITS = 9


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
_PAGE = Annotated[
    str | None, Query(max_length=12, description="Paging: page from 1; page_size from 1 to the most results.")
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
        "address_id": {"type": "string", "maxLength": 128, "description": "A UPRN, or any id, kept as sent"},
        "email": {"type": "string", "maxLength": 254},
        "device_id": {"type": "string", "maxLength": 128},
        "account_id": {"type": "string", "maxLength": 128},
        "first_name": {"type": "string", "maxLength": 99},
        "last_name": {"type": "string", "maxLength": 99},
        "phone": {"type": "string", "maxLength": 32},
        "description": {"type": "string", "maxLength": 4000},
        "media_url": {"type": "string", "format": "uri", "description": "May be given more than once"},
        "attribute[uprn]": {"type": "string", "pattern": "^[0-9]{1,12}$", "description": "The property"},
        "attribute[central_asset_id]": {
            "type": "string",
            "maxLength": 64,
            "description": "The street asset picked on the map (FixMyStreet); also attribute[feature_id] or"
            " attribute[asset_id]",
        },
    },
    "additionalProperties": {"type": "string"},
}
_UPDATE_FIELDS: dict[str, Any] = {
    "type": "object",
    "required": ["api_key", "service_request_id"],
    "properties": {
        "api_key": {"type": "string", "maxLength": 256},
        "jurisdiction_id": {"type": "string", "maxLength": 64},
        "service_request_id": {"type": "string", "maxLength": 64},
        "update_id": {"type": "string", "maxLength": 64, "description": "The front end's own id"},
        "status": {"type": "string", "enum": sorted(updates.POSTED_STATUSES)},
        "description": {"type": "string", "maxLength": 4000},
        "updated_datetime": {"type": "string", "format": "date-time"},
        "email": {"type": "string", "maxLength": 254},
        "first_name": {"type": "string", "maxLength": 99},
        "last_name": {"type": "string", "maxLength": 99},
        "phone": {"type": "string", "maxLength": 32},
        "media_url": {"type": "string", "format": "uri"},
    },
    "additionalProperties": {"type": "string"},
}


class _Endpoints:
    """The spec's endpoints and the updates extension, bound to one service instance. Each reads what it
    was sent, asks the service, and prints the answer: none opens a database connection itself.
    """

    def __init__(self, *, service: IntakeService, settings: IntakeSettings) -> None:
        self.service = service
        self.settings = settings
        self.council = service.council

    def check_jurisdiction(self, jurisdiction_id: str | None) -> None:
        wanted = self.settings.open311_jurisdiction_id
        if jurisdiction_id and wanted and jurisdiction_id != wanted:
            raise Open311Error(404, ["jurisdiction_id: not served here"])

    async def key_name(self, api_key: str | None) -> str:
        key_name = await self.service.api_keys.name_of(api_key)
        if key_name is None:
            raise Open311Error(403, ["api_key: missing or not valid"])
        return key_name

    async def body(self, request: Request) -> Body:
        settings = self.settings
        try:
            return await read_body(
                request,
                max_bytes=settings.open311_max_body_bytes,
                max_upload_bytes=settings.open311_max_upload_bytes,
                max_photo_bytes=settings.open311_max_photo_bytes,
            )
        except BodyError as error:
            raise Open311Error(400, error.reasons) from None

    def paging(self, page: str | None, page_size: str | None, reasons: list[str]) -> tuple[int, int]:
        """(limit, offset) of the page asked for: page from 1, page_size from 1 to the most results."""
        most = self.settings.open311_max_results
        number = _whole(page, 1)
        size = _whole(page_size, most)
        if number is None or number < 1 or number > MAX_PAGE:
            reasons.append(f"page: a whole number from 1 to {MAX_PAGE}")
        if size is None or not 1 <= size <= most:
            reasons.append(f"page_size: a whole number from 1 to {most}")
        if number is None or size is None:
            return most, 0
        return size, (max(number, 1) - 1) * size

    async def services(self, fmt: _FMT, jurisdiction_id: _JURISDICTION = None) -> Response:
        self.check_jurisdiction(jurisdiction_id)
        return answer(fmt, "services", open311.service_list(self.council))

    async def service_definition(
        self,
        service_code: Annotated[str, Path(max_length=64)],
        fmt: _FMT,
        jurisdiction_id: _JURISDICTION = None,
    ) -> Response:
        self.check_jurisdiction(jurisdiction_id)
        category = self.council.categories.get(service_code)
        if category is None:
            raise Open311Error(404, [f"service_code: no service {service_code[:64]!r}"])
        return answer(fmt, "service_definition", open311.service_definition(category))

    async def post_request(self, fmt: _FMT, request: Request) -> Response:
        body = await self.body(request)
        fields = body.fields
        self.check_jurisdiction(
            _first(fields, "jurisdiction_id") or request.query_params.get("jurisdiction_id")
        )
        key_name = await self.key_name(_first(fields, "api_key") or request.query_params.get("api_key"))
        parsed = open311.parse_service_request(fields, self.council)
        client_key = request.headers.get("idempotency-key")
        reasons = list(parsed.reasons) if isinstance(parsed, Invalid) else []
        if client_key is not None and not _CLIENT_KEY.match(client_key):
            reasons.append("Idempotency-Key: 1-64 letters, digits, '.', '_', ':' or '-'")
        if reasons or isinstance(parsed, Invalid):
            raise Open311Error(400, reasons)
        request_key = uuid.uuid4().hex
        ids = self.service.public_ids
        accepted = open311.accept_service_request(
            parsed,
            key_name=key_name,
            request_key=request_key,
            client_key=client_key,
            token=uuid.uuid4().hex,
            now=datetime.now(UTC),
            media_refs=[photo.ref for photo in body.photos],
            report_id=ids.request_id(open311.SOURCE_SYSTEM, f"{key_name}/{client_key or request_key}"),
            request_digest=ids.body_digest(fields, [photo.data for photo in body.photos]),
        )
        if body.photos:
            accepted = dataclasses.replace(accepted, photos=tuple(body.photos))
        try:
            token = await self.service.submit(accepted)
        except IdempotencyConflict:
            raise Open311Error(
                409, ["Idempotency-Key: already used for a request with another body; use a new key"]
            ) from None
        entry: dict[str, Any] = (
            {"token": token}
            if self.settings.open311_answer_with == "token"
            else {"service_request_id": str(accepted.event.report_id)}
        )
        entry |= {"service_notice": None, "account_id": parsed.form.account_id}
        return answer(fmt, "service_requests", [entry])

    async def requests(  # noqa: PLR0917 - FastAPI reads the spec's query parameters from the signature
        self,
        fmt: _FMT,
        service_request_id: Annotated[str | None, Query(max_length=4000)] = None,
        service_code: Annotated[str | None, Query(max_length=1000)] = None,
        start_date: Annotated[str | None, Query(max_length=40)] = None,
        end_date: Annotated[str | None, Query(max_length=40)] = None,
        status: Annotated[str | None, Query(max_length=40)] = None,
        jurisdiction_id: _JURISDICTION = None,
        page: _PAGE = None,
        page_size: _PAGE = None,
    ) -> Response:
        self.check_jurisdiction(jurisdiction_id)
        reasons: list[str] = []
        start, end = _window(start_date, end_date, reasons)
        limit, offset = self.paging(page, page_size, reasons)
        statuses = _list(status)
        if statuses and not set(statuses) <= {"open", "closed"}:
            reasons.append("status: open, closed, or both separated by a comma")
        if reasons:
            raise Open311Error(400, reasons)
        ids = _list(service_request_id)
        if ids is not None:
            # The spec: service_request_id wins over every other filter.
            report_ids = await self.service.report_ids_of(ids)
            codes, statuses, start, end = None, None, None, None
        else:
            report_ids = None
            codes = _list(service_code)
            if start is None and end is None:
                start = datetime.now(UTC) - timedelta(days=self.settings.open311_default_days)
        views = await self.service.find_requests(
            report_ids=report_ids,
            service_codes=codes,
            start=start,
            end=end,
            statuses=statuses,
            limit=limit,
            offset=offset,
        )
        return answer(fmt, "service_requests", [self.request_entry(view) for view in views])

    def request_entry(self, view: open311.RequestView) -> dict[str, Any]:
        public_id = self.service.public_id(view.report_id, str(view.event.get("source_system")))
        return open311.request_entry(view, self.council, public_id=public_id)

    async def one_request(
        self,
        service_request_id: Annotated[str, Path(max_length=64)],
        fmt: _FMT,
        jurisdiction_id: _JURISDICTION = None,
    ) -> Response:
        self.check_jurisdiction(jurisdiction_id)
        report_ids = await self.service.report_ids_of([service_request_id])
        views = []
        if report_ids:
            views = await self.service.find_requests(
                report_ids=report_ids, service_codes=None, start=None, end=None, statuses=None, limit=1
            )
        if not views:
            raise Open311Error(404, ["service_request_id: no such request"])
        return answer(fmt, "service_requests", [self.request_entry(views[0])])

    async def token(
        self, token: Annotated[str, Path(max_length=64)], fmt: _FMT, jurisdiction_id: _JURISDICTION = None
    ) -> Response:
        self.check_jurisdiction(jurisdiction_id)
        report_id = None if text_problems("token", (token,)) else await self.service.report_of_token(token)
        if report_id is None:
            raise Open311Error(404, ["token: no such token"])
        return answer(fmt, "service_requests", [{"service_request_id": str(report_id), "token": token}])

    async def updates(  # noqa: PLR0917 - FastAPI reads the query parameters from the signature
        self,
        fmt: _FMT,
        api_key: Annotated[str | None, Query(max_length=256)] = None,
        start_date: Annotated[str | None, Query(max_length=40)] = None,
        end_date: Annotated[str | None, Query(max_length=40)] = None,
        service_request_id: Annotated[str | None, Query(max_length=4000)] = None,
        jurisdiction_id: _JURISDICTION = None,
        page: _PAGE = None,
        page_size: _PAGE = None,
    ) -> Response:
        self.check_jurisdiction(jurisdiction_id)
        await self.key_name(api_key)
        reasons: list[str] = []
        start, end = _window(start_date, end_date, reasons)
        limit, offset = self.paging(page, page_size, reasons)
        if reasons:
            raise Open311Error(400, reasons)
        ids = _list(service_request_id)
        report_ids = None if ids is None else await self.service.report_ids_of(ids)
        if start is None and end is None and report_ids is None:
            start = datetime.now(UTC) - timedelta(days=self.settings.open311_default_days)
        views = await self.service.find_updates(
            start=start, end=end, report_ids=report_ids, limit=limit, offset=offset
        )
        entries = [
            open311.update_entry(view, public_id=self.service.public_id(view.report_id, view.source_system))
            for view in views
        ]
        return answer(fmt, "service_request_updates", entries)

    async def post_update(self, fmt: _FMT, request: Request) -> Response:
        body = await self.body(request)
        if body.photos:
            raise Open311Error(400, ["media: give media_url; photos are accepted with a request only"])
        fields = body.fields
        self.check_jurisdiction(
            _first(fields, "jurisdiction_id") or request.query_params.get("jurisdiction_id")
        )
        key_name = await self.key_name(_first(fields, "api_key") or request.query_params.get("api_key"))
        parsed = open311.parse_update(fields)
        if isinstance(parsed, Invalid):
            raise Open311Error(400, list(parsed.reasons))
        found = await self.service.report_ids_of([parsed.form.service_request_id])
        report_id = found[0] if found else None
        # The front end's own update id makes a retried post give the first answer back.
        client_key = f"{key_name}/{parsed.form.update_id}" if parsed.form.update_id else None
        update_id = None
        if report_id is not None:
            update_id = await self.service.post_update(
                parsed,
                report_id=report_id,
                update_id=updates.update_id(report_id, client_key or uuid.uuid4().hex),
                client_key=client_key,
            )
        if update_id is None:
            raise Open311Error(404, ["service_request_id: no such request"])
        return answer(fmt, "service_request_updates", [{"update_id": update_id}])

    async def media(
        self,
        media_id: Annotated[str, Path(max_length=64)],
        api_key: Annotated[str | None, Query(max_length=256)] = None,
    ) -> Response:
        await self.key_name(api_key)
        found = await self.service.photo(parsed) if (parsed := _uuid(media_id)) else None
        if found is None:
            raise Open311Error(404, ["media: no such photo"])
        content_type, data = found
        return Response(data, media_type=content_type, headers={"Cache-Control": "private, max-age=3600"})


def open311_router(*, service: IntakeService, settings: IntakeSettings) -> APIRouter:
    """The spec's six endpoints and the service-request-updates extension, bound to one service instance."""
    router = APIRouter(prefix=PREFIX, tags=["Open311 GeoReport v2"], responses=_ERRORS)  # type: ignore[arg-type]
    endpoints = _Endpoints(service=service, settings=settings)
    router.add_api_route("/services.{fmt}", endpoints.services, methods=["GET"], summary="GET Service List")
    router.add_api_route(
        "/services/{service_code}.{fmt}",
        endpoints.service_definition,
        methods=["GET"],
        summary="GET Service Definition",
    )
    router.add_api_route(
        "/requests.{fmt}",
        endpoints.post_request,
        methods=["POST"],
        summary="POST Service Request",
        description="Form-encoded as the spec says, multipart with photos (JPEG, PNG, GIF or WebP parts), or "
        "JSON. An `Idempotency-Key` header makes a repeated POST answer with the first request instead of "
        "making another.",
        openapi_extra=_body_schema(_POST_FIELDS),
    )
    router.add_api_route(
        "/requests.{fmt}", endpoints.requests, methods=["GET"], summary="GET Service Requests"
    )
    router.add_api_route(
        "/requests/{service_request_id}.{fmt}",
        endpoints.one_request,
        methods=["GET"],
        summary="GET Service Request",
    )
    router.add_api_route(
        "/tokens/{token}.{fmt}",
        endpoints.token,
        methods=["GET"],
        summary="GET service_request_id from a token",
    )
    router.add_api_route(
        "/servicerequestupdates.{fmt}",
        endpoints.updates,
        methods=["GET"],
        summary="GET Service Request Updates",
        description="The service-request-updates extension as FixMyStreet reads it: every update in "
        "[start_date, end_date], oldest first, with statuses of the extended vocabulary.",
    )
    router.add_api_route(
        "/servicerequestupdates.{fmt}",
        endpoints.post_update,
        methods=["POST"],
        summary="POST Service Request Update",
        description="A resident's comment on their request (a public note on its case) or a reopening "
        "(status REOPEN, or OPEN on a closed request).",
        openapi_extra=_body_schema(_UPDATE_FIELDS),
    )
    router.add_api_route(
        "/media/{media_id}", endpoints.media, methods=["GET"], summary="GET a photo sent with a request"
    )
    return router


def _body_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                FORM: {"schema": schema},
                MULTIPART: {"schema": schema},
                "application/json": {"schema": schema},
            },
        }
    }


def install_error_handlers(app: FastAPI) -> None:
    """Every error under /open311 in the spec's format; FastAPI's own shapes elsewhere."""

    async def open311_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, Open311Error)  # noqa: S101 - registered for this type only
        return error_answer(request.url.path, error.status, error.reasons)

    async def invalid(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)  # noqa: S101 - registered for this type only
        reasons = list(validation_reasons(error, skip=1, whole="request"))
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


def _whole(value: str | None, default: int) -> int | None:
    if value is None or value == "":
        return default
    return int(value) if value.isdigit() and len(value) <= _MAX_DIGITS else None


def _window(
    start_date: str | None, end_date: str | None, reasons: list[str]
) -> tuple[datetime | None, datetime | None]:
    start = _date("start_date", start_date, reasons)
    end = _date("end_date", end_date, reasons)
    if start is not None and end is not None and start > end:
        reasons.append("start_date, end_date: start_date must not be after end_date")
    return start, end


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
