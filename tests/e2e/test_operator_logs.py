"""What the local host's console (and Application Insights) shows people: one line per client error, a
WARNING line when work gives up or a cross-link fails, and no per-request chatter from the MCP SDK."""

from __future__ import annotations

import time
import uuid

import httpx

from tests.e2e.helpers import INITIALIZE, aimed_handoff_body, handoff_body


def wait_line(broker, start: int, needle: str, timeout: float = 20) -> str:
    """The first line written after offset ``start`` of the broker's log that contains ``needle``."""
    deadline = time.monotonic() + timeout
    while True:
        for line in broker.logs()[start:].splitlines():
            if needle in line:
                return line
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} not logged within {timeout}s")
        time.sleep(0.1)


def test_each_client_error_is_one_line_with_route_status_and_title(broker):
    start = len(broker.logs())
    marker = f"secret-{uuid.uuid4().hex}"
    bad = broker.client.post("/api/handoffs", json={"source": {"agent": marker}}, params={"code": marker})
    assert bad.status_code == 422, bad.text
    missing = broker.client.get(f"/api/handoffs/{uuid.uuid4()}")
    assert missing.status_code == 404
    title = bad.json()["title"]
    line = wait_line(broker, start, "client error: POST /api/handoffs answered 422")
    assert line.endswith(f"client error: POST /api/handoffs answered 422 ({title})")
    assert wait_line(broker, start, "client error: GET /api/handoffs/{id}").endswith(
        "client error: GET /api/handoffs/{id} answered 404 (Not found)"
    )
    assert marker not in broker.logs()[start:]


def test_mcp_requests_leave_no_session_manager_lines(broker):
    start = len(broker.logs())
    for _ in range(3):
        answer = httpx.post(
            f"{broker.url}/api/mcp",
            json=INITIALIZE,
            headers={"Accept": "application/json, text/event-stream"},
        )
        assert answer.status_code == 200
    # The host logs each invocation once it ends: wait for the three, then look for the SDK's lines.
    deadline = time.monotonic() + 20
    while broker.logs()[start:].count("Executed 'Functions.mcp'") < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert broker.logs()[start:].count("Executed 'Functions.mcp'") >= 3
    written = broker.logs()[start:]
    assert "StreamableHTTP session manager" not in written
    assert "Created new transport" not in written


def test_a_delivery_that_gives_up_is_a_warning_line(broker, clean_fakes):
    start = len(broker.logs())
    body, marker = aimed_handoff_body(None)
    clean_fakes.agents["checkout"].inject("POST", "/api/v1/threads", 400, times=1, body_contains=marker)
    handoff_id = broker.client.post("/api/handoffs", json=body).json()["id"]
    broker.wait_status(handoff_id, "failed", timeout=20)
    line = wait_line(broker, start, f"handoff gave up: work=deliver handoff={handoff_id}")
    assert "attempts=1 reason=" in line and "400" in line


def test_a_cross_link_that_fails_is_a_warning_line(broker, clean_fakes):
    start = len(broker.logs())
    ops = clean_fakes.agents["ops"]
    source_thread = ops.create_thread("Ops: cross-link refused")["id"]
    ops.inject("POST", f"/api/v1/threads/{source_thread}/messages", 404, times=1)
    handoff_id = broker.client.post("/api/handoffs", json=handoff_body(source_thread)).json()["id"]
    line = wait_line(broker, start, f"handoff cross-link failed: handoff={handoff_id}")
    assert "how=failed reason=" in line and "404" in line
    assert broker.client.get(f"/api/handoffs/{handoff_id}").json()["status"] == "delivered"
