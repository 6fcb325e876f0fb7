"""Traces and metrics: the small API the rest of the broker uses, a no-op while telemetry is off.

Telemetry is on when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` (Azure Monitor, through the
``azure-monitor-opentelemetry`` distro) or ``OTEL_EXPORTER_OTLP_ENDPOINT`` (OTLP over HTTP/protobuf) is
set; :func:`configure` then imports OpenTelemetry and starts the exporters (:mod:`.setup`). Without
either, nothing of OpenTelemetry is imported and every call here returns at once, so importing the app
stays cheap and the broker behaves as it always has.

The API:

* ``with span(name, attributes, kind=..., parent=headers) as current:`` one span; ``current.set({...})``
  adds attributes (ids, agent names, ops, methods, hosts, statuses only: never a body, a token or a URL
  with its query, and strings are redacted and cut to size again here);
* :func:`inject` puts the current W3C trace context (``traceparent``, ``tracestate``) into outgoing
  headers or a queue message, :func:`trace_context` reads one out of a queue message, and
  :func:`from_caller` the part of a caller's request headers the broker continues (see there);
* :func:`count` and :func:`observe` add to the counters and histograms of :data:`METRICS`.

Services do not call this module: the entrypoints and adapters do (:mod:`.wiring` wraps the queue and
the lifecycle listener; the one HTTP client factory wraps its transports).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from handoff.adapters.telemetry.runtime import METRICS, Runtime

if TYPE_CHECKING:
    from handoff.settings import Settings

__all__ = [
    "METRICS",
    "Runtime",
    "Span",
    "configure",
    "count",
    "current_span",
    "enabled",
    "from_caller",
    "inject",
    "observe",
    "span",
    "trace_context",
    "use",
]

log = logging.getLogger("handoff")

SpanKind = Literal["internal", "server", "client", "producer", "consumer"]
AttributeValue = str | int | float | bool
Attributes = Mapping[str, AttributeValue | None]

TRACE_HEADERS = ("traceparent", "tracestate")
"""The W3C trace-context fields carried on HTTP requests and in queue messages."""
_MAX_ATTRIBUTE_CHARS = 256
# A version-00 traceparent: trace id, parent span id, flags (an all-zero id is no trace context).
_TRACEPARENT = re.compile(r"00-(?!0{32})([0-9a-f]{32})-(?!0{16})([0-9a-f]{16})-[0-9a-f]{2}")

_runtime: Runtime | None = None


def enabled() -> bool:
    """Whether telemetry is on in this process."""
    return _runtime is not None


def exporters_of(settings: Settings) -> tuple[str, ...]:
    """The exporters ``settings`` ask for: ``azure-monitor`` and/or ``otlp`` (none: telemetry off)."""
    names = []
    if settings.applicationinsights_connection_string:
        names.append("azure-monitor")
    if settings.otlp_endpoint:
        names.append("otlp")
    return tuple(names)


def configure(settings: Settings) -> tuple[str, ...]:
    """Start the exporters ``settings`` ask for, once per process; the exporters started (none when
    telemetry is off or already on). A failure to start is logged and leaves telemetry off: telemetry
    never stops the broker."""
    global _runtime
    wanted = exporters_of(settings)
    if _runtime is not None or not wanted:
        return ()
    try:
        from handoff.adapters.telemetry.setup import start

        _runtime = start(settings, wanted)
    except Exception as exc:  # a bad endpoint or connection string: say so, run without telemetry
        log.error("telemetry could not start (%s): %s", ", ".join(wanted), type(exc).__name__)
        return ()
    log.info("telemetry on: %s", ", ".join(wanted))
    return wanted


def use(runtime: Runtime | None) -> Runtime | None:
    """Put ``runtime`` in place (tests, with in-memory exporters); the one it replaces."""
    global _runtime
    previous, _runtime = _runtime, runtime
    return previous


def clean(value: AttributeValue | None) -> AttributeValue | None:
    """An attribute value as it may be recorded: numbers and booleans as they are; strings without a
    URL's query or fragment, redacted and at most a few hundred characters."""
    if value is None or isinstance(value, bool | int | float):
        return value
    from handoff.domain.redaction import redact

    text = str(value)
    if "://" in text:
        text = text.split("?", 1)[0].split("#", 1)[0]
    return redact(text)[:_MAX_ATTRIBUTE_CHARS]


def _cleaned(attributes: Attributes | None) -> dict[str, AttributeValue]:
    result: dict[str, AttributeValue] = {}
    for key, value in (attributes or {}).items():
        kept = clean(value)
        if kept is not None:
            result[key] = kept
    return result


class Span:
    """The span a ``with span(...)`` block runs in (a no-op one while telemetry is off)."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner

    def set(self, attributes: Attributes) -> None:
        """Add attributes (cleaned as :func:`clean` says)."""
        if self.inner is not None:
            self.inner.set_attributes(_cleaned(attributes))

    def event(self, name: str, attributes: Attributes | None = None) -> None:
        """Record a point in time within the span."""
        if self.inner is not None:
            self.inner.add_event(name, _cleaned(attributes))

    def fail(self, description: str) -> None:
        """Mark the span as failed, with a short secret-free description (an error type or status)."""
        if self.inner is not None:
            from opentelemetry.trace import Status, StatusCode

            self.inner.set_status(Status(StatusCode.ERROR, str(clean(description))))


@contextmanager
def span(
    name: str,
    attributes: Attributes | None = None,
    *,
    kind: SpanKind = "internal",
    parent: Mapping[str, Any] | None = None,
) -> Iterator[Span]:
    """Run the block in a span named ``name``, a child of the current span, or of the W3C trace context
    in ``parent`` (incoming headers, a queue message) when given. An exception leaving the block marks
    the span failed with the exception's type (never its message) and goes on."""
    runtime = _runtime
    if runtime is None:
        yield Span()
        return
    from opentelemetry.trace import SpanKind as OtelKind

    context = runtime.propagator.extract(trace_context(parent)) if parent is not None else None
    with runtime.tracer.start_as_current_span(
        name,
        context=context,
        kind=getattr(OtelKind, kind.upper()),
        attributes=_cleaned(attributes),
        record_exception=False,
        set_status_on_exception=False,
    ) as inner:
        current = Span(inner)
        try:
            yield current
        except BaseException as exc:
            current.fail(type(exc).__name__)
            raise


def current_span() -> Span:
    """The span the caller runs in (a no-op one when there is none or telemetry is off)."""
    runtime = _runtime
    if runtime is None:
        return Span()
    inner = runtime.trace_api.get_current_span()
    return Span(inner if inner.is_recording() else None)


def trace_context(carrier: Mapping[str, Any] | None) -> dict[str, str]:
    """The W3C trace-context fields of ``carrier`` (headers in any case, or a queue message)."""
    found: dict[str, str] = {}
    for key, value in (carrier or {}).items():
        name = str(key).lower()
        if name in TRACE_HEADERS and isinstance(value, str) and len(value) <= 512:
            found[name] = value
    return found


def from_caller(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """The trace context of a caller's request (REST, MCP, A2A) that the broker continues: the caller's
    trace and parent span, so its request and all the work it starts join the caller's trace, and nothing
    else. The sampled flag is set, so a caller cannot switch tracing off for its request and everything it
    queues; the caller's ``tracestate`` is dropped, as the broker would otherwise keep it in queue messages
    and send it to every agent and partner the handoff reaches."""
    parent = trace_context(headers).get("traceparent", "").strip().lower()
    found = _TRACEPARENT.fullmatch(parent)
    return {"traceparent": f"00-{found[1]}-{found[2]}-01"} if found else {}


def inject(carrier: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Put the current trace context into ``carrier`` (outgoing headers, a queue message) and return
    it; leaves it as it is while telemetry is off or no span is current."""
    runtime = _runtime
    if runtime is not None and runtime.trace_api.get_current_span().get_span_context().is_valid:
        fields: dict[str, str] = {}
        runtime.propagator.inject(fields)
        carrier.update(trace_context(fields))
    return carrier


def count(name: str, attributes: Attributes | None = None, value: int = 1) -> None:
    """Add ``value`` to the counter ``name`` (one of :data:`METRICS`)."""
    runtime = _runtime
    if runtime is not None:
        runtime.instrument(name).add(value, _cleaned(attributes))


def observe(name: str, value: float, attributes: Attributes | None = None) -> None:
    """Record ``value`` in the histogram ``name`` (one of :data:`METRICS`)."""
    runtime = _runtime
    if runtime is not None:
        runtime.instrument(name).record(max(0.0, value), _cleaned(attributes))
