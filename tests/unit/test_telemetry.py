"""The telemetry adapter: a no-op (and nothing imported) while off; with a runtime on in-memory exporters,
the spans, the trace context across HTTP and the queue, the metrics, and what attributes may hold."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import httpx
import pytest
from azure.functions.queue import QueueMessage
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from handoff.adapters import telemetry
from handoff.adapters.http import TracedTransport
from handoff.adapters.telemetry.setup import exports_logs, runtime_of
from handoff.adapters.telemetry.wiring import MeteredLifecycle, TracedQueue
from handoff.domain.work import parse_work
from handoff.entrypoints import http_api, responses
from handoff.entrypoints.queue_triggers import consume
from handoff.settings import APP_ROOT, Settings
from tests.unit.conftest import OPS, RecordingListener, World, build_world, handoff_body

H1 = "3f2b8c1e-9a4d-4e2b-8c1e-9a4d4e2b8c1e"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TELEMETRY_SETTINGS = ("APPLICATIONINSIGHTS_CONNECTION_STRING", "OTEL_EXPORTER_OTLP_ENDPOINT")


@dataclass
class Recorded:
    """What an in-memory telemetry runtime recorded."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if name is None or s.name == name]

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        return [
            point
            for resource in (data.resource_metrics if data else [])
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    previous = telemetry.use(runtime_of(tracer_provider, MeterProvider(metric_readers=[reader]), ("memory",)))
    yield Recorded(exporter, reader)
    telemetry.use(previous)


def _run_python(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k not in TELEMETRY_SETTINGS}
    environ.update({"HANDOFF_CONFIG": str(APP_ROOT / "handoff.config.sample.json"), **env})
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=APP_ROOT, env=environ, capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1]


# ---------------------------------------------------------------- off


def test_without_either_setting_importing_the_app_imports_no_opentelemetry() -> None:
    code = (
        "import sys, function_app\n"
        "from handoff.adapters import telemetry\n"
        "print([m for m in sys.modules if m.split('.')[0] == 'opentelemetry'], telemetry.enabled())"
    )
    assert _run_python(code) == "[] False"


def test_with_an_otlp_endpoint_the_app_starts_the_otlp_exporters() -> None:
    code = (
        "import os, sys, function_app\n"
        "from handoff.adapters import telemetry\n"
        "from opentelemetry import trace\n"
        "print(telemetry.enabled(), type(trace.get_tracer_provider()).__name__, "
        "'azure.monitor.opentelemetry' in sys.modules)\n"
        "sys.stdout.flush(); os._exit(0)"  # leave before the exit hook would export to nowhere
    )
    assert _run_python(code, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9") == "True TracerProvider False"


def test_with_a_connection_string_the_azure_monitor_distro_takes_the_broker_s_options() -> None:
    code = (
        "import logging, os, sys, function_app\n"
        "from handoff.adapters import telemetry\n"
        "from opentelemetry import trace\n"
        "processors = trace.get_tracer_provider()._active_span_processor._span_processors\n"
        "exporters = sorted(type(getattr(p, 'span_exporter', p)).__name__ for p in processors)\n"
        "handlers = [type(h).__name__ for h in logging.getLogger('handoff').handlers]\n"
        "print(telemetry.enabled(), exporters, handlers, sep='|')\n"
        "sys.stdout.flush(); os._exit(0)"
    )
    env = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": (
            "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/"
        ),
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        "WEBSITE_HOSTNAME": "broker.azurewebsites.net",  # in Azure: the host ships the log lines itself
    }
    enabled, exporters, handlers = _run_python(code, **env).split("|")
    assert enabled == "True" and "AzureMonitorTraceExporter" in exporters and "OTLPSpanExporter" in exporters
    assert handlers == "[]"


def test_telemetry_that_cannot_start_is_logged_and_left_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from handoff.adapters.telemetry import setup

    def broken(*_args: Any) -> Any:
        raise ValueError("bad endpoint https://collector.example.test/?key=secret")

    monkeypatch.setattr(setup, "start", broken)
    previous = telemetry.use(None)
    try:
        with caplog.at_level(logging.ERROR, logger="handoff"):
            assert telemetry.configure(Settings(otlp_endpoint="http://127.0.0.1:9")) == ()
        assert not telemetry.enabled()
        assert "telemetry could not start (otlp): ValueError" in caplog.text
        assert "secret" not in caplog.text
    finally:
        telemetry.use(previous)


def test_while_off_every_call_is_a_no_op() -> None:
    previous = telemetry.use(None)
    try:
        with telemetry.span("anything", {"handoff.id": H1}, parent={"traceparent": TRACEPARENT}) as current:
            current.set({"a": 1})
            current.event("e")
            current.fail("boom")
        carrier: dict[str, Any] = {"op": "deliver"}
        assert telemetry.inject(carrier) == {"op": "deliver"}
        telemetry.count("handoff.accepted", {"handoff.target": "checkout"})
        telemetry.observe("handoff.queue.age", 1.0)
        sent: list[dict[str, Any]] = []
        queue = TracedQueue(_ListQueue(sent), "handoff-deliveries")
        message = {"op": "deliver", "handoffId": H1, "attempt": 1}
        queue.send(message)
        assert sent == [message]
    finally:
        telemetry.use(previous)


def test_logs_go_out_over_otlp_and_to_azure_monitor_only_outside_azure() -> None:
    assert exports_logs(Settings(), ("otlp",))
    assert exports_logs(Settings(), ("azure-monitor",))
    in_azure = Settings(website_hostname="broker.azurewebsites.net")
    assert not exports_logs(in_azure, ("azure-monitor",))
    assert not exports_logs(in_azure, ("azure-monitor", "otlp"))
    assert exports_logs(in_azure.model_copy(update={"telemetry_logs": "on"}), ("azure-monitor",))
    assert not exports_logs(Settings(telemetry_logs="off"), ("otlp",))


# ---------------------------------------------------------------- spans and trace context


def test_attributes_lose_url_queries_and_secrets(recorded: Recorded) -> None:
    token = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghijklmnopqrstuv"
    with telemetry.span(
        "x", {"url": "https://agent.example.test/api/v1/threads?sig=abc#frag", "auth": token}
    ):
        pass
    [span] = recorded.spans("x")
    assert span.attributes is not None
    assert span.attributes["url"] == "https://agent.example.test/api/v1/threads"
    assert "eyJ" not in str(span.attributes["auth"])
    with telemetry.span("long", {"text": "x" * 5000}):
        pass
    assert len(str(recorded.spans("long")[0].attributes["text"])) <= 256  # type: ignore[index]  # set above


def test_a_span_continues_the_trace_context_it_is_given(recorded: Recorded) -> None:
    with telemetry.span("outer") as outer:
        carrier = telemetry.inject({})
        assert outer.inner is not None
    with telemetry.span("inner", parent=carrier):
        pass
    with telemetry.span("from headers", parent={"TraceParent": TRACEPARENT}):
        pass
    first, second, third = recorded.spans()
    assert carrier["traceparent"].split("-")[1] == format(first.context.trace_id, "032x")
    assert second.context.trace_id == first.context.trace_id
    assert second.parent is not None and second.parent.span_id == first.context.span_id
    assert format(third.context.trace_id, "032x") == TRACEPARENT.split("-")[1]


def test_an_exception_marks_the_span_failed_with_its_type_only(recorded: Recorded) -> None:
    with pytest.raises(RuntimeError), telemetry.span("failing"):
        raise RuntimeError("detail with a secret")
    [span] = recorded.spans("failing")
    assert span.status.status_code.name == "ERROR"
    assert span.status.description == "RuntimeError"


class _ListQueue:
    def __init__(self, sent: list[dict[str, Any]]) -> None:
        self.sent = sent
        self.poison: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any], delay_seconds: float = 0) -> None:
        self.sent.append(message)

    def send_poison(self, message: dict[str, Any]) -> None:
        self.poison.append(message)


def test_queue_messages_carry_the_trace_context_across_the_hop(recorded: Recorded) -> None:
    sent: list[dict[str, Any]] = []
    queue = TracedQueue(_ListQueue(sent), "handoff-deliveries")
    with telemetry.span("accept"):
        queue.send({"op": "deliver", "handoffId": H1, "attempt": 1})
    [message] = sent
    work = parse_work(message)
    assert work.traceparent == message["traceparent"]
    msg = QueueMessage(
        id="m1", body=json.dumps(message).encode(), insertion_time=datetime.now(UTC) - timedelta(seconds=5)
    )
    with consume("handoff-deliveries", msg, message):
        pass
    accept, producer, consumer = (
        recorded.spans(n)[0] for n in ("accept", "send handoff-deliveries", "process deliver")
    )
    assert producer.kind == SpanKind.PRODUCER and consumer.kind == SpanKind.CONSUMER
    assert producer.parent is not None and producer.parent.span_id == accept.context.span_id
    assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id
    assert consumer.attributes is not None and consumer.attributes["handoff.id"] == H1
    [age] = recorded.points("handoff.queue.age")
    assert age.count == 1 and age.sum >= 5
    queue.send_poison({"op": "deliver", "handoffId": H1})
    [poisoned] = recorded.points("handoff.poison")
    assert (
        poisoned.value == 1
        and dict(poisoned.attributes)["messaging.destination.name"] == "handoff-deliveries"
    )


def test_a_message_without_trace_context_starts_its_own_trace(recorded: Recorded) -> None:
    message = {"op": "deliver", "handoffId": H1, "attempt": 1, "traceparent": "not-a-traceparent"}
    assert parse_work(message).traceparent is None  # dropped, never a reason to refuse the work
    assert "traceparent" not in parse_work({"op": "deliver", "handoffId": H1}).wire()
    with consume("handoff-deliveries", QueueMessage(id="m1", body=b"{}"), message):
        pass
    [consumer] = recorded.spans("process deliver")
    assert consumer.parent is None


# ---------------------------------------------------------------- outbound HTTP


def test_outbound_calls_send_traceparent_and_record_no_path_or_query(recorded: Recorded) -> None:
    seen: list[httpx.Request] = []

    def agent(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": "t1"})

    with httpx.Client(transport=TracedTransport(httpx.MockTransport(agent))) as client:
        with telemetry.span("deliver"):
            client.post("https://agent.example.test/api/v1/threads?api-version=1&sig=secret", json={})
        previous = telemetry.use(None)
        try:
            client.post("https://agent.example.test/api/v1/threads", json={})
        finally:
            telemetry.use(previous)
    traced, untraced = seen
    [deliver] = recorded.spans("deliver")
    [call] = recorded.spans("POST")
    assert traced.headers["traceparent"].split("-")[1] == format(deliver.context.trace_id, "032x")
    assert traced.headers["traceparent"].split("-")[2] == format(call.context.span_id, "032x")[16:]
    assert "traceparent" not in untraced.headers
    assert call.kind == SpanKind.CLIENT
    assert dict(call.attributes or {}) == {
        "http.request.method": "POST",
        "url.scheme": "https",
        "server.address": "agent.example.test",
        "server.port": 443,
        "http.response.status_code": 201,
    }


# ---------------------------------------------------------------- lifecycle metrics


def test_deliveries_and_failures_are_counted_by_target(recorded: Recorded) -> None:
    seen: list[tuple[str, str, dict[str, Any]]] = []
    world = build_world(listener=MeteredLifecycle(RecordingListener(seen)))
    view, _ = world.accept(handoff_body(world.source_thread()))
    delivered = view.id
    world.clock.advance(3)
    with telemetry.span("process deliver"):
        world.run()
    [span] = recorded.spans("process deliver")
    attributes = dict(span.attributes or {})
    assert attributes == {
        "handoff.id": delivered,
        "handoff.chain_id": delivered,
        "handoff.source": "ops",
        "handoff.target": "checkout",
    }
    assert [event.name for event in span.events] == ["handoff.delivered"]
    [count] = recorded.points("handoff.delivered")
    assert (count.value, dict(count.attributes)) == (1, {"handoff.target": "checkout"})
    [latency] = recorded.points("handoff.delivery.duration")
    assert latency.count == 1 and latency.sum >= 3
    assert [point for _, point, _ in seen] == ["delivered"]  # passed on

    world.agents.faults.fail_next(status=403, ops={"create_thread"})
    world.accept(handoff_body(world.source_thread()))
    world.run()
    [failed] = recorded.points("handoff.failed")
    assert (failed.value, dict(failed.attributes)) == (1, {"handoff.target": "checkout"})


# ---------------------------------------------------------------- the REST entrypoint


def _create(monkeypatch: pytest.MonkeyPatch, world: World) -> Any:
    monkeypatch.setattr(http_api, "get_handoffs", lambda: world.handoffs)
    monkeypatch.setattr(responses, "caller_of", lambda req, rate_limited=True: OPS)
    return http_api.create_handoff._function.get_user_function()  # type: ignore[attr-defined]  # azure-functions builder


def _post(route: Any, body: bytes, **headers: str) -> func.HttpResponse:
    request = func.HttpRequest(
        "POST",
        "http://localhost/api/handoffs?code=function-key",
        body=body,
        headers={"Content-Type": "application/json", **headers},
    )
    response: func.HttpResponse = route(request)
    return response


def test_a_request_is_a_server_span_in_the_callers_trace_and_counts_what_it_accepted(
    monkeypatch: pytest.MonkeyPatch, world: World, recorded: Recorded
) -> None:
    route = _create(monkeypatch, world)
    body = json.dumps(handoff_body(world.source_thread())).encode()
    answer = _post(route, body, traceparent=TRACEPARENT)
    assert answer.status_code == 202
    handoff_id = json.loads(answer.get_body())["id"]
    [server] = recorded.spans("POST /api/handoffs")
    [accept] = recorded.spans("handoff.accept")
    assert server.kind == SpanKind.SERVER
    assert format(server.context.trace_id, "032x") == TRACEPARENT.split("-")[1]
    assert dict(server.attributes or {})["http.response.status_code"] == 202
    assert accept.parent is not None and accept.parent.span_id == server.context.span_id
    assert dict(accept.attributes or {}) == {
        "handoff.via": "rest",
        "handoff.id": handoff_id,
        "handoff.chain_id": handoff_id,
        "handoff.source": "ops",
        "handoff.target": "checkout",
        "handoff.created": True,
    }
    _post(route, body, **{"Idempotency-Key": "k1"})
    _post(route, body, **{"Idempotency-Key": "k1"})  # a replay is not a new handoff
    [accepted] = recorded.points("handoff.accepted")
    assert (accepted.value, dict(accepted.attributes)) == (
        2,
        {"handoff.target": "checkout", "handoff.via": "rest"},
    )


def test_a_caller_continues_its_trace_but_cannot_switch_tracing_off_or_pass_a_tracestate_on(
    monkeypatch: pytest.MonkeyPatch, world: World, recorded: Recorded
) -> None:
    route = _create(monkeypatch, world)
    unsampled = TRACEPARENT[:-2] + "00"
    tracestate = "evil=x,congo=t61rcWkgMzE"
    body = json.dumps(handoff_body(world.source_thread())).encode()

    assert _post(route, body, traceparent=unsampled, tracestate=tracestate).status_code == 202

    # Recorded (a caller's "not sampled" does not hide its request and the work it queues), in its trace.
    [server] = recorded.spans("POST /api/handoffs")
    [accept] = recorded.spans("handoff.accept")
    assert format(server.context.trace_id, "032x") == TRACEPARENT.split("-")[1]
    assert server.context.trace_flags.sampled
    # Its tracestate is not the broker's: nothing the request queues or sends to an agent carries it.
    assert len(server.context.trace_state) == 0 and len(accept.context.trace_state) == 0
    _post(route, body, traceparent=TRACEPARENT, tracestate=tracestate, **{"Idempotency-Key": "k2"})
    assert [len(span.context.trace_state) for span in recorded.spans("POST /api/handoffs")] == [0, 0]
    with telemetry.span(
        "child", parent=telemetry.from_caller({"traceparent": unsampled, "tracestate": tracestate})
    ):
        carried = telemetry.inject({})
    assert "tracestate" not in carried and carried["traceparent"].endswith("-01")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"traceparent": "not a traceparent"},
        {"traceparent": "00-" + "0" * 32 + "-b7ad6b7169203331-01"},
        {"traceparent": TRACEPARENT + "\r\nX-Injected: 1"},
        {"traceparent": "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        {"traceparent": TRACEPARENT.replace("0af7", "0AF7") + "-extra"},
        {"tracestate": "a=b"},
    ],
)
def test_what_is_no_w3c_traceparent_gives_no_trace_context(headers: dict[str, str]) -> None:
    assert telemetry.from_caller(headers) == {}


def test_a_client_error_is_one_log_line_without_the_body(
    monkeypatch: pytest.MonkeyPatch, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    route = _create(monkeypatch, world)
    with caplog.at_level(logging.INFO, logger="handoff"):
        answer = _post(route, b'{"source": "secret-body-text", "target": 42}')
    problem = json.loads(answer.get_body())
    assert 400 <= answer.status_code < 500
    lines = [r for r in caplog.records if r.getMessage().startswith(responses.CLIENT_ERROR_LOG_PREFIX)]
    assert [(r.levelno, r.getMessage()) for r in lines] == [
        (logging.INFO, f"client error: POST /api/handoffs answered {answer.status_code} ({problem['title']})")
    ]
    assert "secret-body-text" not in caplog.text and "function-key" not in caplog.text


def test_route_parameters_are_named_in_the_route() -> None:
    request = func.HttpRequest(
        "GET",
        f"http://localhost/api/handoffs/{H1}/audit?top=5",
        body=b"",
        route_params={"id": H1},
    )
    assert responses.route_of(request) == "/api/handoffs/{id}/audit"
    agent_thread = func.HttpRequest(
        "GET",
        "http://localhost/api/threads/ops/a%2Fb/links",
        body=b"",
        route_params={"agent": "ops", "threadId": "a/b"},
    )
    assert responses.route_of(agent_thread) == "/api/threads/{agent}/{threadId}/links"


def test_a_secret_in_a_path_no_route_matched_stays_out_of_the_client_error_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from handoff.domain.errors import NotFound
    from handoff.domain.redaction.logs import install_log_redaction

    install_log_redaction()
    token = "ghp_" + "A1b2C3d4E5" * 3 + "F6g7H8"
    request = func.HttpRequest("GET", f"http://localhost/api/{token}%0Ainjected: 1?code=k", body=b"")
    route = responses.route_of(request)
    with caplog.at_level(logging.INFO, logger="handoff"):
        logging.getLogger("handoff.test").info(
            "%s", responses.client_error_line("GET", route, NotFound(f"no route for {token}"))
        )
    [line] = [record.getMessage() for record in caplog.records]
    assert line.startswith("client error: GET /api/") and line.endswith("answered 404 (Not found)")
    assert token not in line and "\n" not in line and "code=k" not in line


def test_the_mcp_sdks_per_request_lines_are_not_logged_at_info() -> None:
    from handoff.adapters.operations_log import quiet_library_logs

    root, mcp = logging.getLogger(), logging.getLogger("mcp")
    saved = root.level, mcp.level
    root.setLevel(logging.DEBUG)  # as verbose as a host can be: only the app's own setting stands between
    mcp.setLevel(logging.NOTSET)
    try:
        manager = logging.getLogger("mcp.server.streamable_http_manager")
        assert manager.isEnabledFor(logging.INFO)
        quiet_library_logs()
        for logger in (mcp, manager, logging.getLogger("mcp.server.lowlevel.server")):
            assert not logger.isEnabledFor(logging.INFO) and logger.isEnabledFor(logging.WARNING)
    finally:
        root.setLevel(saved[0])
        mcp.setLevel(saved[1])
