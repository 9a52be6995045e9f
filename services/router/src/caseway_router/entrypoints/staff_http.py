"""Staff HTTP on the router's port: server-rendered pages (no build step, no JavaScript needed), HTML forms
that POST and redirect back, and the same actions as a JSON API under the same rules, described in
/openapi.json.

Who is asking comes from the sign-on proxy's header (`domain.access.identify`); a form carries an
anti-forgery token bound to the person; a JSON request must say it is JSON (which a page on another site
cannot send without the browser asking this server first).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import jinja2
import structlog
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from caseway_router.domain.access import Identified, IdentityRules, StaffMember, identify
from caseway_router.domain.casefile import RESOLUTIONS, local_time, overdue_by
from caseway_router.domain.maps import Area, Mark, draw_map, ward_areas
from caseway_router.entrypoints.openapi import openapi_document
from caseway_router.staff import Forbidden, StaffError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.requests import Request

    from caseway_router.domain.access import StaffDirectory
    from caseway_router.settings import RouterSettings
    from caseway_router.staff import BoardView, CaseView, StaffDesk

log = structlog.get_logger(__name__)
ACTION_NAMES = {
    "acknowledge": "Acknowledged",
    "reassign": "Reassigned",
    "note": "Note added",
    "close": "Closed",
    "duplicate": "Duplicate reviewed",
    "link": "Report linked",
    "unlink": "Report moved to a case of its own",
}


class _Unauthorised(StaffError):
    status = 401


@dataclass
class StaffHttp:
    desk: StaffDesk
    directory: StaffDirectory
    settings: RouterSettings

    def __post_init__(self) -> None:
        self._rules = IdentityRules(
            header=self.settings.staff_header,
            trusted_proxies=tuple(self.settings.trusted_proxies),
            development_user=self.settings.development_user or None,
        )
        secret = self.settings.form_secret.get_secret_value() if self.settings.form_secret else None
        self._secret = (secret or secrets.token_hex(32)).encode()
        self._templates = jinja2.Environment(
            loader=jinja2.PackageLoader("caseway_router", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        tz = self.desk.council.timezone
        self._templates.filters["when"] = lambda moment: local_time(moment, tz)
        self._templates.filters["department"] = self.desk.department_name
        self._templates.filters["category"] = self.desk.category_name
        self._templates.filters["url"] = lambda value: quote(str(value), safe="")
        self._css = resources.files("caseway_router").joinpath("static/staff.css").read_bytes()
        council = self.desk.council
        self._wards = ward_areas(council.wards_geojson, name_property=council.ward_name_property)

    def routes(self) -> list[Route]:
        return [
            Route("/", self.home, methods=["GET"]),
            Route("/static/staff.css", self.css, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
            Route("/cases/{reference}", self.html(self.case_page), methods=["GET"]),
            Route("/cases/{reference}/{action}", self.html(self.case_form), methods=["POST"]),
            Route(
                "/cases/{reference}/reports/{report_id}/unlink", self.html(self.unlink_form), methods=["POST"]
            ),
            Route("/neighbourhoods/{name}", self.html(self.board_page), methods=["GET"]),
            Route("/api/me", self.json(self.api_me), methods=["GET"]),
            Route("/api/cases/{reference}", self.json(self.api_case), methods=["GET"]),
            Route("/api/cases/{reference}/{action}", self.json(self.api_action), methods=["POST"]),
            Route(
                "/api/cases/{reference}/reports/{report_id}/unlink",
                self.json(self.api_unlink),
                methods=["POST"],
            ),
            Route("/api/neighbourhoods/{name}/board", self.json(self.api_board), methods=["GET"]),
        ]

    # --- who is asking ------------------------------------------------------------------------------

    def member(self, request: Request) -> StaffMember:
        client = request.client.host if request.client else None
        found = identify(self._rules, client=client, header_value=request.headers.get(self._rules.header))
        if not isinstance(found, Identified):
            log.warning("staff_request_refused", client=client, status=found.status, path=request.url.path)
            error = (
                Forbidden(found.reason) if found.status == Forbidden.status else _Unauthorised(found.reason)
            )
            raise error
        member = self.directory.get(found.staff_id)
        if member is None:
            raise Forbidden(f"{found.staff_id} is not in the staff directory")
        return member

    def token(self, member: StaffMember) -> str:
        return hmac.new(self._secret, member.id.encode(), hashlib.sha256).hexdigest()[:40]

    # --- wrappers -----------------------------------------------------------------------------------

    def html(
        self, page: Callable[[Request, StaffMember], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            member: StaffMember | None = None
            try:
                member = self.member(request)
                return await page(request, member)
            except StaffError as error:
                return self.render(
                    "error.html",
                    member,
                    status_code=error.status,
                    title={401: "Sign in needed", 403: "Not yours to see", 404: "Not found"}.get(
                        error.status, "That did not work"
                    ),
                    message=str(error),
                    back=request.headers.get("referer") if error.status in (400, 409) else None,
                )

        return endpoint

    def json(
        self, handler: Callable[[Request, StaffMember], Awaitable[object]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                member = self.member(request)
                _require_json(request)
                return JSONResponse(await handler(request, member))
            except StaffError as error:
                return JSONResponse({"error": str(error)}, status_code=error.status)

        return endpoint

    def render(
        self, template: str, member: StaffMember | None, *, status_code: int = 200, **context: object
    ) -> HTMLResponse:
        body = self._templates.get_template(template).render(
            member=member,
            token=self.token(member) if member else "",
            boards=member.neighbourhoods(self.desk.council.neighbourhoods) if member else [],
            **context,
        )
        return HTMLResponse(body, status_code=status_code, headers=_SECURITY_HEADERS)

    # --- pages --------------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        try:
            member = self.member(request)
        except StaffError as error:
            return self.render(
                "error.html",
                None,
                status_code=error.status,
                title="Sign in needed",
                message=str(error),
                back=None,
            )
        boards = member.neighbourhoods(self.desk.council.neighbourhoods)
        if not boards:
            return self.render(
                "error.html",
                member,
                status_code=403,
                title="No boards",
                message="You have no neighbourhoods.",
                back=None,
            )
        return RedirectResponse(f"/neighbourhoods/{quote(boards[0], safe='')}", status_code=303)

    async def css(self, _request: Request) -> Response:
        return Response(self._css, media_type="text/css", headers={"Cache-Control": "max-age=300"})

    async def openapi(self, _request: Request) -> Response:
        return JSONResponse(openapi_document(self.settings.staff_header))

    async def case_page(self, request: Request, member: StaffMember) -> Response:
        view = await self.desk.case_view(member, request.path_params["reference"])
        now = datetime.now(UTC)
        return self.render(
            "case.html",
            member,
            view=view,
            case=view.case,
            overdue_for=overdue_by(view.case.due_at, now) if view.overdue and view.case.due_at else None,
            done=ACTION_NAMES.get(request.query_params.get("done", "")),
            resolutions=RESOLUTIONS,
            departments=self.desk.council.departments,
            case_map=self.case_map(view),
        )

    async def board_page(self, request: Request, member: StaffMember) -> Response:
        params = request.query_params
        filters = {key: params.get(key) or None for key in ("category", "department", "state")}
        board = await self.desk.board(member, request.path_params["name"], **filters)
        return self.render(
            "board.html",
            member,
            board=board,
            filters=filters,
            categories={c: cat.name for c, cat in self.desk.council.categories.items()},
            departments=self.desk.council.departments,
            ward_names=self.desk.ward_name,
            board_map=self.board_map(board),
            query=urlencode({k: v for k, v in filters.items() if v}),
        )

    async def case_form(self, request: Request, member: StaffMember) -> Response:
        reference, action = request.path_params["reference"], request.path_params["action"]
        form = await request.form()
        if not hmac.compare_digest(str(form.get("csrf", "")), self.token(member)):
            raise Forbidden(
                "the form has expired or did not come from Caseway: reload the page and try again"
            )
        values = {key: str(value) for key, value in form.items() if key != "csrf"}
        target = await self.act(member, reference, action, values)
        return RedirectResponse(f"/cases/{quote(target, safe='')}?done={action}", status_code=303)

    async def unlink_form(self, request: Request, member: StaffMember) -> Response:
        form = await request.form()
        if not hmac.compare_digest(str(form.get("csrf", "")), self.token(member)):
            raise Forbidden(
                "the form has expired or did not come from Caseway: reload the page and try again"
            )
        reference = request.path_params["reference"]
        await self.desk.unlink_report(member, reference, report_id=_uuid(request.path_params["report_id"]))
        return RedirectResponse(f"/cases/{quote(reference, safe='')}?done=unlink", status_code=303)

    # --- actions, shared by forms and JSON ----------------------------------------------------------

    async def act(self, member: StaffMember, reference: str, action: str, values: dict[str, Any]) -> str:
        """Do `action` on `reference`; returns the case to show next."""
        desk = self.desk
        text = {key: (str(value).strip() if value is not None else "") for key, value in values.items()}
        if action == "acknowledge":
            await desk.acknowledge(member, reference, department=text.get("department") or None)
        elif action == "reassign":
            await desk.reassign(
                member,
                reference,
                to_department=text.get("to_department", ""),
                from_department=text.get("from_department") or None,
                role=text.get("role") or "contributor",
            )
        elif action == "note":
            await desk.add_note(
                member, reference, text=text.get("text", ""), visibility=text.get("visibility", "")
            )
        elif action == "close":
            await desk.close(
                member,
                reference,
                resolution=text.get("resolution", ""),
                note=text.get("note") or None,
                duplicate_of=text.get("duplicate_of") or None,
            )
        elif action == "duplicate":
            decision = text.get("decision", "")
            if decision not in ("same", "different"):
                raise StaffError("decision is same or different")
            await desk.review_duplicate(
                member, reference, other=text.get("other", ""), same=decision == "same"
            )
        elif action == "link":
            await desk.link_report(member, reference, report_id=_uuid(text.get("report_id", "")))
        else:
            raise StaffError(f"no action {action}")
        return reference

    async def api_me(self, _request: Request, member: StaffMember) -> object:
        return {
            "id": member.id,
            "name": member.name,
            "role": member.role,
            "teams": [team.id for team in member.teams],
            "manages": sorted(member.manages),
            "neighbourhoods": member.neighbourhoods(self.desk.council.neighbourhoods),
        }

    async def api_case(self, request: Request, member: StaffMember) -> object:
        return case_json(await self.desk.case_view(member, request.path_params["reference"]), self.desk)

    async def api_action(self, request: Request, member: StaffMember) -> object:
        try:
            body = await request.json()
        except ValueError as error:
            raise StaffError("the body is not JSON") from error
        if not isinstance(body, dict):
            raise StaffError("the body is a JSON object")
        action = request.path_params["action"]
        if action == "duplicate" and isinstance(body.get("same_problem"), bool):
            body["decision"] = "same" if body["same_problem"] else "different"
        reference = await self.act(member, request.path_params["reference"], action, body)
        return case_json(await self.desk.case_view(member, reference), self.desk)

    async def api_unlink(self, request: Request, member: StaffMember) -> object:
        new = await self.desk.unlink_report(
            member, request.path_params["reference"], report_id=_uuid(request.path_params["report_id"])
        )
        return {"new_case": new}

    async def api_board(self, request: Request, member: StaffMember) -> object:
        params = request.query_params
        board = await self.desk.board(
            member,
            request.path_params["name"],
            category=params.get("category") or None,
            department=params.get("department") or None,
            state=params.get("state") or None,
        )
        return {
            "neighbourhood": board.neighbourhood,
            "figures": {
                **{k: v for k, v in board.figures.items() if k != "merged"},
                "merged_by_department": dict(board.figures["merged"]),
            },
            "cases": [
                {
                    "reference": c.reference,
                    "category": c.category,
                    "status": c.status,
                    "priority": c.priority,
                    "summary": c.summary,
                    "due_at": c.due_at.isoformat() if c.due_at else None,
                    "overdue": c.reference in board.overdue,
                    "reports_count": c.reports_count,
                    "departments": [{"department": d, "role": r, "state": s} for d, r, s in c.departments],
                    "flags": list(c.flags),
                }
                for c in board.cases
            ],
        }

    # --- maps ---------------------------------------------------------------------------------------

    def case_map(self, view: CaseView) -> str:
        case = view.case
        ward = self._wards.get(view.ward_name or "")
        areas = [Area(ward.name, ward.rings, emphasis=True)] if ward else []
        marks = [
            Mark(r.lat, r.lon, f"Report received {local_time(r.received_at, self.desk.council.timezone)}")
            for r in view.reports
            if r.lat is not None and r.lon is not None
        ]
        if case.lat is not None and case.lon is not None:
            marks.append(
                Mark(case.lat, case.lon, f"Case {case.reference}", overdue=view.overdue, emphasis=True)
            )
        if not areas and not marks:
            return ""
        return draw_map(areas, marks, title=f"Where case {case.reference} is", width=360)

    def board_map(self, board: BoardView) -> str:
        names = set(self.desk.council.neighbourhoods.get(board.neighbourhood, ()))
        areas = [area for name, area in self._wards.items() if name in names]
        marks = [
            Mark(
                c.lat,
                c.lon,
                f"{c.reference}: {self.desk.category_name(c.category)}"
                + (" (overdue)" if c.reference in board.overdue else ""),
                href=f"/cases/{quote(c.reference, safe='')}",
                overdue=c.reference in board.overdue,
            )
            for c in board.cases
            if c.lat is not None and c.lon is not None
        ]
        return draw_map(areas, marks, title=f"Open cases in {board.neighbourhood}", width=640)


_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _require_json(request: Request) -> None:
    if request.method == "POST" and not request.headers.get("content-type", "").startswith(
        "application/json"
    ):
        raise StaffError("send JSON (Content-Type: application/json)")


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value.strip())
    except ValueError as error:
        raise StaffError(f"{value!r} is not a report id") from error


def case_json(view: CaseView, desk: StaffDesk) -> dict[str, Any]:
    case = view.case

    def when(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return {
        "reference": case.reference,
        "category": case.category,
        "category_name": desk.category_name(case.category),
        "status": case.status,
        "priority": case.priority,
        "resolution": case.resolution,
        "duplicate_of": case.duplicate_of,
        "neighbourhood": case.neighbourhood,
        "ward_code": case.ward_code,
        "ward_name": view.ward_name,
        "address": case.address,
        "point": {"lat": case.lat, "lon": case.lon} if case.lat is not None else None,
        "flags": list(case.flags),
        "near_boundary": "near-boundary" in case.flags,
        "opened_at": when(case.opened_at),
        "due_at": when(case.due_at),
        "overdue": view.overdue,
        "closed_at": when(case.closed_at),
        "description": case.description,
        "departments": [
            {
                "department": a.department,
                "name": desk.department_name(a.department),
                "role": a.role,
                "state": a.state,
                "state_at": when(a.state_at),
                "state_by": a.state_by,
            }
            for a in view.assignments
        ],
        "reports": [
            {
                "report_id": str(r.report_id),
                "received_at": when(r.received_at),
                "source_system": r.source_system,
                "address": r.address,
                "description": r.description,
                "linked_by_score": r.link_score,
            }
            for r in view.reports
        ],
        "possible_duplicates": [
            {"reference": p.reference, "score": p.score, "status": other[0] if other else None}
            for p, other in view.duplicates
        ],
        "notes": [
            {"at": when(n.at), "by": n.actor, "visibility": n.visibility, "text": n.body} for n in view.notes
        ],
        "history": [
            {"at": when(h.at), "by": h.actor, "action": h.action, "detail": h.detail} for h in view.history
        ],
    }
