"""How every service's `__main__` serves its app: one process, on its settings' host and port, with the
event loop and HTTP parser in C (uvloop, httptools), logging left to `caseway_shared.logging`, no access
log (request lines carry query strings, where Open311 clients may put an API key or a resident's details;
/metrics counts requests instead) and no X-Forwarded-For rewriting (the router trusts its staff header by
the peer's own address, which a forwarded header must not change)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import uvicorn

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from caseway_shared.settings import ServiceSettings


def serve(app: ASGIApp, settings: ServiceSettings) -> None:
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        loop="uvloop",
        http="httptools",
    )
