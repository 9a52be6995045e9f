"""How every service's `__main__` serves its app: one process, on its settings' host and port, with the
HTTP parser in C (httptools) on asyncio's own event loop, logging left to `caseway_shared.logging`, no access
log (request lines carry query strings, where Open311 clients may put an API key or a resident's details;
/metrics counts requests instead) and no X-Forwarded-For rewriting (the router trusts its staff header by
the peer's own address, which a forwarded header must not change)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import uvicorn

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from caseway_shared.settings import ServiceSettings

# Not uvloop: under it a write to a broker connection that closed raises RuntimeError, which aiokafka does
# not catch (aio-libs/aiokafka#1038): a consumer's group coordination dies after a broker restart and its
# partitions stall until another member rebalances the group (tests/unit/test_serving_loop.py).
EVENT_LOOP = "asyncio"


def serve(app: ASGIApp, settings: ServiceSettings) -> None:
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        loop=EVENT_LOOP,
        http="httptools",
    )
