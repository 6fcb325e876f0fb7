"""OpenTelemetry end to end: a broker with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set sends its spans, metrics and
log records over OTLP/HTTP to a local receiver (devserver/fakes/otlp.py), and one trace runs from the
alert through accept, the queue, the delivery to the agent and the hand-back.

The broker here has an Azurite of its own, so no other broker of the session takes its queue messages
(their spans would go nowhere).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from devserver.azurite import start_azurite
from devserver.fakes.otlp import OtlpReceiver
from tests.e2e.alert_payloads import envelope
from tests.e2e.helpers import handback_body
from tests.support.broker import BrokerProcess


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    started = OtlpReceiver().start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def traced_broker(broker_env, receiver, tmp_path_factory) -> Iterator[BrokerProcess]:
    storage = start_azurite()
    env = {
        **broker_env,
        "HANDOFF_STORAGE": storage.connection_string,
        "AzureWebJobsStorage": storage.connection_string,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_SERVICE_NAME": "handoff-broker-e2e",
        # Spans leave within a tenth of a second; metrics only when the host stops (it flushes them).
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",
    }
    try:
        with BrokerProcess.running(env, tmp_path_factory.mktemp("traced-broker") / "host.log") as process:
            yield process
    finally:
        storage.stop()


def spans_of(receiver: OtlpReceiver, trace_id: str) -> list[dict[str, Any]]:
    with receiver.lock:
        return [span for span in receiver.spans if span["trace_id"] == trace_id]


def named(spans: list[dict[str, Any]], name: str, **attributes: Any) -> list[dict[str, Any]]:
    return [
        span
        for span in spans
        if span["name"] == name and all(span["attributes"].get(k) == v for k, v in attributes.items())
    ]


def test_one_trace_runs_from_the_alert_to_the_hand_back(traced_broker, receiver, clean_fakes):
    broker = traced_broker
    alert = envelope("metric-static-fired", "memory")  # the route that also writes to Jira
    answer = broker.client.post("/api/alerts", json=alert)
    assert answer.status_code == 202, answer.text
    handoff_id = answer.json()["routed"][0]["handoffId"]
    thread_id = broker.wait_status(handoff_id, "delivered", timeout=20)["target"]["threadId"]

    # The alert's span names the handoff it started; its trace is the one to follow.
    receiver.wait_for(lambda r: bool(named(r.spans, "handoff.alert", **{"handoff.id": handoff_id})))
    [alert_span] = named(receiver.spans, "handoff.alert", **{"handoff.id": handoff_id})
    trace_id = alert_span["trace_id"]

    # The agent was called with the trace context, and hands back with it, as an agent that propagates
    # W3C trace context does.
    checkout = clean_fakes.agents["checkout"]
    [create] = [
        request
        for request in checkout.requests("POST", "/api/v1/threads")
        if handoff_id in json.dumps(request["json"])
    ]
    traceparent = create["headers"]["traceparent"]
    assert traceparent.split("-")[1] == trace_id
    handback = broker.client.post(
        f"/api/handoffs/{handoff_id}/handback",
        json=handback_body(thread_id=thread_id),
        headers={"traceparent": traceparent},
    )
    assert handback.status_code == 202, handback.text
    broker.wait_status(handoff_id, "handedBack")

    ours = {"handoff.id": handoff_id}
    receiver.wait_for(lambda r: bool(named(spans_of(r, trace_id), "process handback", **ours)))
    spans = spans_of(receiver, trace_id)
    by_id = {span["span_id"]: span for span in spans}

    [request] = named(spans, "POST /api/alerts")
    assert request["kind"] == "server" and request["parent_span_id"] == ""
    assert request["attributes"]["http.response.status_code"] == 202
    [deliver] = named(spans, "process deliver", **ours)
    assert deliver["kind"] == "consumer"
    assert deliver["attributes"]["handoff.target"] == "checkout"
    assert deliver["attributes"]["handoff.chain_id"] == handoff_id
    assert deliver["attributes"]["handoff.source"] == "azure-monitor"
    assert "handoff.delivered" in deliver["events"]
    # The queue hop: the consumer span is a child of the producer span of the step that queued it.
    producer = by_id[deliver["parent_span_id"]]
    assert producer["name"] == "send handoff-deliveries" and producer["kind"] == "producer"
    agent_calls = [s for s in spans if s["kind"] == "client" and s["parent_span_id"] == deliver["span_id"]]
    assert any(
        s["name"] == "POST" and s["attributes"]["http.response.status_code"] in (200, 201)
        for s in agent_calls
    ), agent_calls
    assert traceparent.split("-")[2] in {s["span_id"] for s in agent_calls}
    [handback_request] = named(spans, "POST /api/handoffs/{id}/handback")
    assert handback_request["parent_span_id"] == traceparent.split("-")[2]
    assert named(spans, "handoff.handback.accept", **ours)
    [posting] = named(spans, "process handback", **ours)
    assert "handoff.handedBack" in posting["events"]
    receiver.wait_for(lambda r: bool(named(spans_of(r, trace_id), "process shared-memory-writes", **ours)))
    writes = named(spans_of(receiver, trace_id), "process shared-memory-writes", **ours)
    assert {w["attributes"]["shared_memory.backend"] for w in writes} == {"jira"}
    assert {w["attributes"]["handoff.point"] for w in writes} == {"handedBack"}
    assert all(span["service"] == "handoff-broker-e2e" for span in spans)

    # Nothing secret or caller-written in any attribute: no token, no query, no alert text.
    description = alert["data"]["essentials"].get("description") or "no description"
    for span in spans:
        for value in span["attributes"].values():
            text = str(value)
            assert "Bearer" not in text and "eyJ" not in text
            assert "?" not in text and description not in text, (span["name"], text)

    # The broker's log records go out too, in the trace of the step that wrote them.
    receiver.wait_for(
        lambda r: any(
            f"point=delivered handoff={handoff_id}" in str(record["body"]) and record["trace_id"] == trace_id
            for record in r.logs
        )
    )


def test_metrics_are_flushed_when_the_host_stops(traced_broker, receiver, clean_fakes):
    broker = traced_broker
    answer = broker.client.post("/api/alerts", json=envelope("metric-static-fired", "samples"))
    assert answer.status_code == 202, answer.text
    broker.wait_status(answer.json()["routed"][0]["handoffId"], "delivered", timeout=20)
    assert receiver.metric_points("handoff.accepted") == []  # the export interval is ten minutes

    broker.stop()

    receiver.wait_for(lambda r: bool(r.metric_points("handoff.delivered")))
    accepted = receiver.metric_points("handoff.accepted")
    assert any(
        p["attributes"] == {"handoff.target": "checkout", "handoff.via": "alert"} and p["value"] >= 1
        for p in accepted
    ), accepted
    assert any(
        p["attributes"]["handoff.target"] == "checkout" for p in receiver.metric_points("handoff.delivered")
    )
    assert receiver.metric_points("handoff.delivery.duration")
    ages = receiver.metric_points("handoff.queue.age")
    assert any(p["attributes"].get("handoff.op") == "deliver" and p["value"] >= 1 for p in ages), ages
