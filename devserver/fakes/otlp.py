"""A local OTLP/HTTP receiver: what an OpenTelemetry Collector does with the broker's telemetry, kept in
memory so tests (and people) can look at it.

It accepts ``POST /v1/traces``, ``/v1/metrics`` and ``/v1/logs`` in OTLP's protobuf encoding (gzip or
not), decodes them with ``opentelemetry-proto`` and keeps flat records: spans (ids as hex, kind, name,
attributes, the service), metric points and log records. ``GET /`` lists what arrived as JSON.

Run it on its own and point the broker at it::

    python -m devserver.fakes.otlp --port 4318        # prints one line per span as it arrives
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 make run
"""

from __future__ import annotations

import argparse
import gzip
import threading
import time
from collections.abc import Callable
from typing import Any, Self

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devserver.servers import ServerThread

SPAN_KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
PROTOBUF = "application/x-protobuf"


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def _attributes(values: Any) -> dict[str, Any]:
    pairs: list[KeyValue] = list(values)
    return {pair.key: _value(pair.value) for pair in pairs}


class OtlpReceiver:
    """The receiver's state and its ASGI app; ``start()`` serves it on 127.0.0.1 (``url``)."""

    def __init__(self, on_span: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.lock = threading.RLock()
        self.spans: list[dict[str, Any]] = []
        self.metrics: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []
        self.requests: dict[str, int] = {"traces": 0, "metrics": 0, "logs": 0}
        self.on_span = on_span
        self._server: ServerThread | None = None
        from starlette.applications import Starlette

        self.app = Starlette(
            routes=[
                Route("/v1/traces", self._traces, methods=["POST"]),
                Route("/v1/metrics", self._metrics, methods=["POST"]),
                Route("/v1/logs", self._logs, methods=["POST"]),
                Route("/", self._index, methods=["GET"]),
            ]
        )

    # ------------------------------------------------------------------ serving
    def start(self, port: int = 0) -> Self:
        """Serve on 127.0.0.1 (a free port unless ``port``)."""
        self._server = ServerThread(self.app, port=port, name="otlp-receiver").start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: the value of ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
        if self._server is None:
            raise RuntimeError("the receiver is not running")
        return str(self._server.url)

    # ------------------------------------------------------------------ reading
    def wait_for(self, predicate: Callable[[OtlpReceiver], bool], timeout: float = 20.0) -> None:
        """Wait until ``predicate(self)`` holds (AssertionError with what arrived otherwise)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(self):
                    return
            time.sleep(0.05)
        names = sorted({span["name"] for span in self.spans})
        raise AssertionError(f"telemetry did not arrive within {timeout}s; spans so far: {names}")

    def metric_points(self, name: str) -> list[dict[str, Any]]:
        """Every data point received for metric ``name``."""
        with self.lock:
            return [point for metric in self.metrics if metric["name"] == name for point in metric["points"]]

    # ------------------------------------------------------------------ handlers
    @staticmethod
    async def _body(request: Request) -> bytes:
        body = await request.body()
        if request.headers.get("content-encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        return body

    async def _parsed(self, request: Request, message: Any) -> bool:
        """Parse the export ``request`` into ``message``; False when it is not protobuf of that kind."""
        try:
            message.ParseFromString(await self._body(request))
        except DecodeError:
            return False
        return True

    async def _traces(self, request: Request) -> Response:
        message = ExportTraceServiceRequest()
        if not await self._parsed(request, message):
            return Response("not an OTLP trace export", 400)
        received = []
        for resource_spans in message.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        {
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "name": span.name,
                            "kind": SPAN_KINDS.get(span.kind, str(span.kind)),
                            "attributes": _attributes(span.attributes),
                            "events": [event.name for event in span.events],
                            "status": span.status.code,
                            "service": resource.get("service.name"),
                        }
                    )
        with self.lock:
            self.requests["traces"] += 1
            self.spans.extend(received)
        for span_record in received:
            if self.on_span is not None:
                self.on_span(span_record)
        return Response(ExportTraceServiceRequest().SerializeToString(), media_type=PROTOBUF)

    async def _metrics(self, request: Request) -> Response:
        message = ExportMetricsServiceRequest()
        if not await self._parsed(request, message):
            return Response("not an OTLP metrics export", 400)
        received = []
        for resource_metrics in message.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    data = metric.WhichOneof("data")
                    points = []
                    for point in getattr(metric, data).data_points if data else []:
                        value: Any = point.count if data == "histogram" else None
                        if data in ("sum", "gauge"):
                            value = getattr(point, point.WhichOneof("value") or "as_int")
                        points.append({"attributes": _attributes(point.attributes), "value": value})
                    received.append({"name": metric.name, "kind": data, "points": points})
        with self.lock:
            self.requests["metrics"] += 1
            self.metrics.extend(received)
        return Response(ExportMetricsServiceRequest().SerializeToString(), media_type=PROTOBUF)

    async def _logs(self, request: Request) -> Response:
        message = ExportLogsServiceRequest()
        if not await self._parsed(request, message):
            return Response("not an OTLP logs export", 400)
        received = [
            {
                "body": _value(record.body),
                "severity": record.severity_text,
                "trace_id": record.trace_id.hex(),
            }
            for resource_logs in message.resource_logs
            for scope_logs in resource_logs.scope_logs
            for record in scope_logs.log_records
        ]
        with self.lock:
            self.requests["logs"] += 1
            self.logs.extend(received)
        return Response(ExportLogsServiceRequest().SerializeToString(), media_type=PROTOBUF)

    async def _index(self, _request: Request) -> Response:
        with self.lock:
            return JSONResponse({"spans": self.spans, "metrics": self.metrics, "logs": self.logs})


def _print_span(span: dict[str, Any]) -> None:
    ids = {key: value for key, value in span["attributes"].items() if key.startswith("handoff.")}
    print(f"trace {span['trace_id']} {span['kind']:8s} {span['name']} {ids}", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Serve until Ctrl-C, printing each span as it arrives."""
    parser = argparse.ArgumentParser(prog="python -m devserver.fakes.otlp", description=__doc__)
    parser.add_argument("--port", type=int, default=4318)
    args = parser.parse_args(argv)
    receiver = OtlpReceiver(on_span=_print_span).start(args.port)
    print(f"OTLP/HTTP receiver on {receiver.url} (set OTEL_EXPORTER_OTLP_ENDPOINT to it)", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        receiver.stop()


if __name__ == "__main__":
    main()
