"""structlog set up once per process: JSON lines in production, readable lines in development.

Context such as the correlation id, topic, partition and offset is bound with `structlog.contextvars`, so
every log line written while a message is handled carries it without being passed around.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog


def configure_logging(*, service: str, log_format: Literal["json", "console"], level: str = "info") -> None:
    """Route structlog and the standard library's loggers (faststream, aiokafka, uvicorn) to stderr."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if log_format == "json" else structlog.dev.ConsoleRenderer()
    )
    numeric_level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric_level, logging.INFO))
    # aiokafka reports every reconnect attempt at ERROR while a broker restarts; keep them, but quieter.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    # httpx logs every request at INFO with its full URL ("HTTP Request: POST https://..."), and a team's
    # webhook URL is a secret (issue 13 item 6; found by tests/e2e/test_canary.py): only its warnings, at
    # any level. httpcore's debug lines name hosts and ports: the same.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    structlog.contextvars.bind_contextvars(service=service)
