"""Failure injection and the /_fake/ control API."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest

from .conftest import SRE_SCOPE

START = {"startMessage": {"text": "Handoff h-1: investigate", "userId": "svc", "displayName": "Svc"}}


def test_503_twice_then_success(stack, http, auth):
    agent = stack.agents["checkout"]
    agent.inject(method="POST", path="/api/v1/threads", status=503, times=2)
    url = f"{agent.endpoint}/api/v1/threads"
    statuses = [http.post(url, json=START, headers=auth()).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert len(agent.threads()) == 1
    assert agent.faults() == []
    recorded = agent.requests("POST", "/api/v1/threads")
    assert [item["status"] for item in recorded] == [503, 503, 200]
    assert recorded[0]["fault"]["status"] == 503
    assert recorded[2]["fault"] is None


def test_faults_only_match_their_method_and_path(stack, http, auth):
    agent = stack.agents["checkout"]
    agent.inject("POST", "/api/v1/threads/*/messages", 500, times=None)
    thread = http.post(f"{agent.endpoint}/api/v1/threads", json=START, headers=auth()).json()
    assert http.get(f"{agent.endpoint}/api/v1/threads", headers=auth()).status_code == 200
    url = f"{agent.endpoint}/API/v1/threads/{thread['id']}/messages"
    assert http.post(url, json={"text": "x"}, headers=auth()).status_code == 500
    assert http.post(url, json={"text": "x"}, headers=auth()).status_code == 500  # unlimited
    agent.clear_faults()
    assert http.post(url, json={"text": "x"}, headers=auth()).status_code == 200


def test_a_fault_scoped_to_a_body_spares_other_requests(stack, http, auth):
    agent = stack.agents["checkout"]
    agent.inject("POST", "/api/v1/threads", 502, body_contains="h-2")
    url = f"{agent.endpoint}/api/v1/threads"
    other = {"startMessage": {**START["startMessage"], "text": "Handoff h-2: investigate"}}
    assert http.post(url, json=START, headers=auth()).status_code == 200  # not its body: untouched
    assert agent.faults()[0].body_contains == "h-2"
    assert http.post(url, json=other, headers=auth()).status_code == 502
    assert agent.faults() == []


def test_429_with_retry_after(stack, http, auth):
    agent = stack.agents["ops"]
    agent.inject("GET", "/api/v1/threads", 429, retry_after=1)
    response = http.get(f"{agent.endpoint}/api/v1/threads", headers=auth())
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["code"] == "TooManyRequests"
    assert http.get(f"{agent.endpoint}/api/v1/threads", headers=auth()).status_code == 200


def test_perform_then_fail_creates_the_thread(stack, http, auth):
    agent = stack.agents["checkout"]
    agent.inject("POST", "/api/v1/threads", perform=True)
    response = http.post(f"{agent.endpoint}/api/v1/threads", json=START, headers=auth())
    assert response.status_code == 503
    [thread] = agent.threads()  # it happened anyway
    listed = http.get(
        f"{agent.endpoint}/api/v1/threads",
        params={"$orderby": "createdTimestamp desc", "$top": 50},
        headers=auth(),
    ).json()["value"]
    assert [item["id"] for item in listed] == [thread["id"]]
    assert "h-1" in listed[0]["title"]


def test_perform_then_drop_connection(stack, http, auth):
    agent = stack.agents["checkout"]
    agent.inject("POST", "/api/v1/threads", perform=True, drop=True)
    with pytest.raises(httpx.TransportError):
        http.post(f"{agent.endpoint}/api/v1/threads", json=START, headers=auth())
    assert len(agent.threads()) == 1
    assert agent.requests("POST")[0]["status"] is None
    # the server keeps serving
    assert http.get(f"{agent.endpoint}/api/v1/threads", headers=auth()).status_code == 200


def test_drop_without_performing(stack, http, auth):
    agent = stack.agents["checkout"]
    agent.inject("POST", "/api/v1/threads", drop=True)
    with pytest.raises(httpx.TransportError):
        http.post(f"{agent.endpoint}/api/v1/threads", json=START, headers=auth())
    assert agent.threads() == []


def test_slow_response(stack, http, auth):
    agent = stack.agents["ops"]
    agent.inject("GET", "/api/v1/threads", delay=0.3)
    started = time.monotonic()
    assert http.get(f"{agent.endpoint}/api/v1/threads", headers=auth()).status_code == 200
    assert time.monotonic() - started >= 0.3
    agent.inject("GET", "/api/v1/threads", delay=1.0)
    with pytest.raises(httpx.ReadTimeout):
        http.get(f"{agent.endpoint}/api/v1/threads", headers=auth(), timeout=0.2)


def test_faults_over_http_control_api(stack, http, auth):
    agent = stack.agents["ops"]
    created = http.post(
        f"{agent.endpoint}/_fake/faults",
        json={"method": "GET", "path": "/api/v1/threads", "status": 429, "retryAfter": 2, "times": 1},
    )
    assert created.status_code == 201
    assert http.get(f"{agent.endpoint}/_fake/faults").json()["value"][0]["retryAfter"] == 2
    response = http.get(f"{agent.endpoint}/api/v1/threads", headers=auth())
    assert (response.status_code, response.headers["retry-after"]) == (429, "2")
    http.post(f"{agent.endpoint}/_fake/faults", json=[{"status": 503, "times": None}])
    assert http.get(f"{agent.endpoint}/api/v1/threads", headers=auth()).status_code == 503
    assert http.delete(f"{agent.endpoint}/_fake/faults").status_code == 204
    assert http.get(f"{agent.endpoint}/api/v1/threads", headers=auth()).status_code == 200
    assert http.post(f"{agent.endpoint}/_fake/faults", json={"bogus": 1}).status_code == 400


def test_recorded_requests_hide_the_token(stack, http, auth, token):
    agent = stack.agents["ops"]
    raw = token(SRE_SCOPE)
    http.post(f"{agent.endpoint}/api/v1/threads", json=START, headers={"Authorization": f"Bearer {raw}"})
    http.get(f"{agent.endpoint}/api/v1/threads", params={"$top": 5})
    recorded = http.get(f"{agent.endpoint}/_fake/requests").json()["value"]
    assert [(item["method"], item["status"]) for item in recorded] == [("POST", 200), ("GET", 401)]
    post = recorded[0]
    assert post["headers"]["authorization"] == "Bearer ***"
    assert raw not in str(recorded)
    assert post["auth"] == {
        "aud": "https://azuresre.dev",
        "oid": stack.identity.principal_id,
        "appid": stack.identity.client_id,
    }
    assert post["json"] == START
    assert recorded[1]["query"] == {"$top": "5"}
    assert recorded[1]["auth"] is None
    filtered = http.get(f"{agent.endpoint}/_fake/requests", params={"method": "GET"}).json()["value"]
    assert len(filtered) == 1


def test_control_threads_and_reset(stack, http, auth):
    agent = stack.agents["ops"]
    thread = http.post(f"{agent.endpoint}/api/v1/threads", json=START, headers=auth()).json()
    added = http.post(
        f"{agent.endpoint}/_fake/threads/{thread['id']}/messages",
        json={"text": "agent says hi", "complete": False},
    )
    assert added.status_code == 201
    assert added.json()["isComplete"] is False
    http.post(f"{agent.endpoint}/_fake/threads/{thread['id']}/approvals", json={"title": "Scale out"})
    http.post(f"{agent.endpoint}/_fake/threads/{thread['id']}/questions", json={"question": "Which?"})
    [listed] = http.get(f"{agent.endpoint}/_fake/threads").json()["value"]
    assert [m["messageType"] for m in listed["messages"]] == ["Text", "Text", "Approval", "UserQuestion"]
    assert http.post(f"{agent.endpoint}/_fake/threads/nope/messages", json={"text": "x"}).status_code == 404

    trigger = http.post(
        f"{agent.endpoint}/_fake/triggers", json={"name": "T", "prompt": "P {payload.a}"}
    ).json()
    assert http.post(trigger["triggerUrl"], json={"a": "A"}, headers=auth()).json()["success"] is True

    def this_trigger() -> dict:
        # Triggers outlive a reset, so the session's agent may hold other tests' triggers too.
        listed = http.get(f"{agent.endpoint}/_fake/triggers").json()["value"]
        [found] = [item for item in listed if item["id"] == trigger["triggerId"]]
        return found

    assert this_trigger()["executions"][0]["payload"] == {"a": "A"}

    http.post(f"{agent.endpoint}/_fake/auto-reply", json={"enabled": True, "text": "ok", "delay": 0.01})
    assert agent.auto_reply is True

    assert http.post(f"{agent.endpoint}/_fake/reset").status_code == 204
    assert http.get(f"{agent.endpoint}/_fake/threads").json()["value"] == []
    assert http.get(f"{agent.endpoint}/_fake/requests").json()["value"] == []
    assert this_trigger()["executions"] == []  # the trigger stays, its executions go


def test_wait_for_threads(stack, http, auth):
    agent = stack.agents["ops"]
    with pytest.raises(TimeoutError):
        agent.wait_for_threads(1, timeout=0.05)
    http.post(f"{agent.endpoint}/api/v1/threads", json=START, headers=auth())
    assert len(agent.wait_for_threads(1, timeout=1)) == 1


def test_hold_does_the_work_then_keeps_the_caller_waiting(stack, http, auth):
    agent = stack.agents["checkout"]
    fault = agent.inject("POST", "/api/v1/threads", hold=30)
    url = f"{agent.endpoint}/api/v1/threads"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(http.post, url, json=START, headers=auth())
        deadline = time.monotonic() + 10
        while fault.holding < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert fault.holding == 1 and not answer.done()
        [thread] = agent.threads()  # created while its answer is held
        fault.release()
        response = answer.result(timeout=10)
    assert response.status_code == 200 and response.json()["id"] == thread["id"]
    assert fault.holding == 0 and agent.requests("POST", "/api/v1/threads")[0]["fault"]["hold"] == 30


def test_hold_over_the_control_api(stack, http, auth):
    agent = stack.agents["ops"]
    added = http.post(
        f"{agent.endpoint}/_fake/faults", json={"method": "GET", "path": "/api/v1/threads", "hold": 0.2}
    )
    assert added.status_code == 201 and added.json()["value"][0]["hold"] == 0.2
    started = time.monotonic()
    assert http.get(f"{agent.endpoint}/api/v1/threads", headers=auth()).status_code == 200
    assert time.monotonic() - started >= 0.2
