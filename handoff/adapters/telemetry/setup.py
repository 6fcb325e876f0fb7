"""Starting OpenTelemetry, imported only when telemetry is on (:func:`handoff.adapters.telemetry.configure`).

* ``azure-monitor``: ``configure_azure_monitor`` of the ``azure-monitor-opentelemetry`` distro, with the
  managed identity when ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` says ``Authorization=AAD`` (the
  deployment's Application Insights accepts no local auth). The distro's own instrumentations are off:
  the broker makes its own spans (and its HTTP client spans carry no URL query), so nothing records a
  URL or a body behind its back.
* ``otlp``: the OTLP exporters over HTTP/protobuf for traces, metrics and logs; they read
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` (``/v1/traces``, ``/v1/metrics``, ``/v1/logs`` are appended) and the
  other standard ``OTEL_EXPORTER_OTLP_*`` and ``OTEL_BSP_*`` variables themselves.

Both at once: Azure Monitor's providers, with the OTLP processors added to them. Logs of the ``handoff``
logger are exported unless ``HANDOFF_TELEMETRY_LOGS`` says otherwise (``auto``: not when Azure Monitor
is on under the Functions host in Azure, which sends every log line to Application Insights already, so
the operations workbook does not count each line twice).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, propagate, trace

from handoff.adapters.telemetry.runtime import Runtime

if TYPE_CHECKING:
    from handoff.settings import Settings

INSTRUMENTATION_SCOPE = "handoff-broker"
LOGGER = "handoff"
NO_LOGS_LOGGER = "handoff.adapters.telemetry.unexported"
# The distro's instrumentations, all off (see the module docstring).
_DISTRO_INSTRUMENTATIONS = (
    "azure_sdk",
    "django",
    "fastapi",
    "flask",
    "httpx",
    "httpx2",
    "psycopg2",
    "requests",
    "urllib",
    "urllib3",
)


def exports_logs(settings: Settings, exporters: tuple[str, ...]) -> bool:
    """Whether the ``handoff`` logger's records are exported (see the module docstring)."""
    if settings.telemetry_logs != "auto":
        return settings.telemetry_logs == "on"
    return not ("azure-monitor" in exporters and settings.website_hostname)


def start(settings: Settings, exporters: tuple[str, ...]) -> Runtime:
    """Start the exporters named in ``exporters`` and return the runtime the API works with."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    resource = Resource.create({SERVICE_NAME: settings.otel_service_name})
    logs = exports_logs(settings, exporters)
    if "azure-monitor" in exporters:
        _azure_monitor(settings, resource, otlp="otlp" in exporters, logs=logs)
    else:
        _otlp(resource, logs=logs)
    return runtime_of(trace.get_tracer_provider(), metrics.get_meter_provider(), exporters)


def runtime_of(tracer_provider: Any, meter_provider: Any, exporters: tuple[str, ...]) -> Runtime:
    """The runtime over these providers (``start``'s global ones, or a test's in-memory ones)."""
    return Runtime(
        exporters=exporters,
        tracer=tracer_provider.get_tracer(INSTRUMENTATION_SCOPE),
        meter=meter_provider.get_meter(INSTRUMENTATION_SCOPE),
        propagator=propagate.get_global_textmap(),
        trace_api=trace,
    )


def _otlp_processors(logs: bool) -> dict[str, Any]:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    parts: dict[str, Any] = {
        "span_processors": [BatchSpanProcessor(OTLPSpanExporter())],
        "metric_readers": [PeriodicExportingMetricReader(OTLPMetricExporter())],
    }
    if logs:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        parts["log_record_processors"] = [BatchLogRecordProcessor(OTLPLogExporter())]
    return parts


def _otlp(resource: Any, *, logs: bool) -> None:
    """The SDK's providers with the OTLP exporters, made the global ones."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    parts = _otlp_processors(logs)
    tracer_provider = TracerProvider(resource=resource)
    for processor in parts["span_processors"]:
        tracer_provider.add_span_processor(processor)
    trace.set_tracer_provider(tracer_provider)
    meter_provider = MeterProvider(resource=resource, metric_readers=parts["metric_readers"])
    metrics.set_meter_provider(meter_provider)
    if logs:
        from opentelemetry import _logs
        from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler

        logger_provider = LoggerProvider(resource=resource)
        for log_processor in parts["log_record_processors"]:
            logger_provider.add_log_record_processor(log_processor)
        _logs.set_logger_provider(logger_provider)
        logging.getLogger(LOGGER).addHandler(LoggingHandler(logger_provider=logger_provider))


def _azure_monitor(settings: Settings, resource: Any, *, otlp: bool, logs: bool) -> None:
    from azure.monitor.opentelemetry import configure_azure_monitor

    options: dict[str, Any] = {
        "connection_string": settings.applicationinsights_connection_string,
        "resource": resource,
        # The distro takes its "disable logging" from OTEL_LOGS_EXPORTER alone; without logs its handler
        # goes on a logger nothing writes to.
        "logger_name": LOGGER if logs else NO_LOGS_LOGGER,
        "instrumentation_options": {name: {"enabled": False} for name in _DISTRO_INSTRUMENTATIONS},
    }
    credential = _entra_credential(settings)
    if credential is not None:
        options["credential"] = credential
    if otlp:
        options.update(_otlp_processors(logs))
    configure_azure_monitor(**options)


def _entra_credential(settings: Settings) -> Any:
    """The managed identity for ingestion when ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` is
    ``Authorization=AAD`` (with ``ClientId=...`` for a user-assigned identity); None otherwise."""
    parts = dict(
        part.split("=", 1)
        for part in (settings.applicationinsights_authentication_string or "").split(";")
        if "=" in part
    )
    if parts.get("Authorization", "").upper() != "AAD":
        return None
    from handoff.adapters.identity import make_credential

    return make_credential(settings, parts.get("ClientId") or None)
