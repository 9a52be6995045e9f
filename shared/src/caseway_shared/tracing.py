"""OpenTelemetry tracing of each report across the three services, exported when an endpoint is set.

A report's trace follows it hop by hop: a `process <topic>` span per consumed record (child of the
context its producer put in the record's `traceparent` header), then, through the transactional outbox,
a `publish <topic>` span for each event the record led to, whose context travels in the new message's
headers to the next service. Batches do not break the chain: the outbox message remembers the context
of the record it came from (by correlation id).

Tracing is on when the process has an SDK tracer provider: the service installs one exporting over OTLP
when OTEL_EXPORTER_OTLP_ENDPOINT is set; tests install one with an in-memory exporter. Otherwise every
function here returns at once.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from caseway_shared import headers as h

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, MutableMapping, Sequence

    from caseway_shared.kafka import Record

_TRACER = "caseway"
# The span context of each record being processed, by correlation id, for the batch in hand.
_record_contexts: ContextVar[dict[str, otel_context.Context] | None] = ContextVar(
    "record_contexts", default=None
)


def install_otlp_exporter(*, service: str, endpoint: str | None) -> None:
    """Export spans over OTLP/HTTP to `endpoint`, unless an SDK provider is installed already."""
    if not endpoint or tracing_active():
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415

    provider = TracerProvider(resource=Resource.create({"service.name": f"caseway-{service}"}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces"))
    )
    trace.set_tracer_provider(provider)


def tracing_active() -> bool:
    return isinstance(trace.get_tracer_provider(), TracerProvider)


@contextlib.contextmanager
def processing(
    records: Sequence[Record], *, service: str, correlate: Callable[[Record], str | None] | None = None
) -> Iterator[None]:
    """Spans for the records of a batch while it is processed; outbox messages made meanwhile carry them.

    A record's correlation id is its header's; `correlate` derives it for records that come without one
    (upstream systems do not set it: intake derives it from the report's ids).
    """
    if not tracing_active():
        yield
        return
    tracer = trace.get_tracer(_TRACER)
    spans = []
    contexts: dict[str, otel_context.Context] = {}
    for record in records:
        parent = propagate.extract(record.headers)
        span = tracer.start_span(
            f"process {record.topic}",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": record.topic,
                "messaging.kafka.destination.partition": record.partition,
                "messaging.kafka.message.offset": record.offset,
                "caseway.service": service,
                "caseway.correlation_id": record.headers.get(h.CORRELATION_ID, ""),
            },
        )
        spans.append(span)
        correlation_id = record.headers.get(h.CORRELATION_ID) or _correlation(record, correlate)
        if correlation_id:
            contexts[correlation_id] = trace.set_span_in_context(span, parent)
    token = _record_contexts.set(contexts)
    try:
        yield
    finally:
        _record_contexts.reset(token)
        for span in spans:
            span.end()


def _correlation(record: Record, correlate: Callable[[Record], str | None] | None) -> str | None:
    """The record's derived correlation id; None when deriving it fails in any way (a record of 20,000
    nested brackets raises RecursionError in a JSON parser): tracing must never be why a batch fails."""
    if correlate is None:
        return None
    try:
        return correlate(record)
    except Exception:  # the record is the handler's to judge, not tracing's
        return None


def inject_for(correlation_id: str, headers: MutableMapping[str, str]) -> None:
    """Put the trace context of the record with `correlation_id` (being processed now) into `headers`."""
    contexts = _record_contexts.get()
    if contexts and (found := contexts.get(correlation_id)) is not None:
        propagate.inject(headers, context=found)


@contextlib.contextmanager
def publishing(topic: str, headers: MutableMapping[str, str]) -> Iterator[None]:
    """A `publish` span for one outgoing message, child of the context in its headers, which it updates."""
    if not tracing_active() or "traceparent" not in headers:
        yield
        return
    tracer = trace.get_tracer(_TRACER)
    with tracer.start_as_current_span(
        f"publish {topic}",
        context=propagate.extract(headers),
        kind=trace.SpanKind.PRODUCER,
        attributes={"messaging.system": "kafka", "messaging.destination.name": topic},
    ):
        propagate.inject(headers)
        yield
