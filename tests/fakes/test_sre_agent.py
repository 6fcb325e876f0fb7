"""The simulated SRE Agent data plane over real HTTP with tokens from azure-identity."""

from __future__ import annotations

import time

import pytest

from devserver.fakes.identity import mint_token
from devserver.fakes.sre_agent import FakeSreAgent, render_trigger_prompt, title_from

from .conftest import APP_ID_SCOPE, ARM_SCOPE

START = {
    "startMessage": {
        "text": "Handoff h-123: Exception burst in checkout-api\n\nDetails follow.",
        "userId": "handoff-svc",
        "displayName": "Handoff Service",
        "agent": "checkout-agent",
    }
}


def create(http, agent, headers, text="Investigate the 5xx burst"):
    body = {"startMessage": {"text": text, "userId": "handoff-svc", "displayName": "Handoff Service"}}
    response = http.post(f"{agent.endpoint}/api/v1/threads", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


# ----------------------------------------------------------------------------- auth
def test_requires_bearer_token(stack, http):
    agent = stack.agents["checkout"]
    response = http.get(f"{agent.endpoint}/api/v1/threads")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    garbage = http.get(f"{agent.endpoint}/api/v1/threads", headers={"Authorization": "Bearer abc.def.ghi"})
    assert garbage.status_code == 401
    basic = http.get(f"{agent.endpoint}/api/v1/threads", headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401


def test_audiences(stack, http, auth):
    url = f"{stack.agents['ops'].endpoint}/api/v1/threads"
    assert http.get(url, headers=auth()).status_code == 200
    assert http.get(url, headers=auth(APP_ID_SCOPE)).status_code == 200
    assert http.get(url, headers=auth("https://azuresre.ai/.default")).status_code == 200
    arm = http.get(url, headers=auth(ARM_SCOPE))
    assert arm.status_code == 401
    assert "audience" in arm.json()["error"]["message"]
    assert http.get(url, headers=auth("https://example.org/.default")).status_code == 401


def test_narrow_audiences_force_the_retry_path(stack, http, auth):
    with FakeSreAgent("narrow", accepted_audiences=["59f0a04a-b322-4310-adc9-39ac41e9631e"]) as agent:
        url = f"{agent.endpoint}/api/v1/threads"
        assert http.get(url, headers=auth()).status_code == 401
        assert http.get(url, headers=auth(APP_ID_SCOPE)).status_code == 200


def test_principal_check(stack, http, auth):
    with FakeSreAgent("locked", allowed_principals=["someone-else"]) as agent:
        forbidden = http.get(f"{agent.endpoint}/api/v1/threads", headers=auth())
        assert forbidden.status_code == 403
        assert forbidden.json()["error"]["code"] == "Forbidden"
        other = mint_token("https://azuresre.dev", oid="someone-else")
        allowed = http.get(f"{agent.endpoint}/api/v1/threads", headers={"Authorization": f"Bearer {other}"})
        assert allowed.status_code == 200


# ----------------------------------------------------------------------------- threads
def test_create_get_and_list_threads(stack, http, auth):
    agent = stack.agents["checkout"]
    created = http.post(f"{agent.endpoint}/api/v1/threads", json=START, headers=auth())
    assert created.status_code == 200
    thread = created.json()
    assert thread["title"] == "Handoff h-123: Exception burst in checkout-api"
    assert thread["startMessage"] == {
        "author": {"role": "User", "userId": "handoff-svc", "displayName": "Handoff Service"},
        "text": START["startMessage"]["text"],
    }
    assert thread["lastMessage"]["author"]["role"] == "User"
    assert thread["status"]["actionsStatus"] == {"hasCriticalActions": False, "hasWarningActions": False}
    assert thread["createdTimestamp"].endswith("Z")
    assert {"id", "source", "modifiedTimestamp"} <= set(thread)

    fetched = http.get(f"{agent.endpoint}/api/v1/threads/{thread['id']}", headers=auth()).json()
    assert fetched == thread
    [stored] = agent.threads()
    assert stored["_fake"]["agent"] == "checkout-agent"
    assert stored["messages"][0]["text"] == START["startMessage"]["text"]
    assert stack.agents["ops"].threads() == []


def test_list_order_and_top(stack, http, auth):
    agent = stack.agents["ops"]
    ids = [create(http, agent, auth(), f"thread {n}")["id"] for n in range(4)]
    url = f"{agent.endpoint}/api/v1/threads"
    default = http.get(url, headers=auth()).json()["value"]
    assert [item["id"] for item in default] == ids  # oldest first
    newest = http.get(url, params={"$orderby": "createdTimestamp desc", "$top": "2"}, headers=auth()).json()
    assert [item["id"] for item in newest["value"]] == ids[::-1][:2]
    assert http.get(url, params={"$top": "x"}, headers=auth()).status_code == 400
    assert http.get(url, params={"$orderby": "nonsense desc"}, headers=auth()).status_code == 400


def test_unknown_thread_is_404(stack, http, auth):
    endpoint = stack.agents["ops"].endpoint
    assert http.get(f"{endpoint}/api/v1/threads/nope", headers=auth()).status_code == 404
    assert http.get(f"{endpoint}/api/v1/threads/nope/messages", headers=auth()).status_code == 404
    post = http.post(f"{endpoint}/api/v1/threads/nope/messages", json={"text": "x"}, headers=auth())
    assert post.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "startMessage"),
        ({"startMessage": "plain string"}, "startMessage"),
        ({"startMessage": {"userId": "u"}}, "startMessage.text"),
        ({"startMessage": {"text": 42}}, "startMessage.text"),
        ({"startMessage": {"text": "   "}}, "startMessage.text"),
        ({"startMessage": {"text": "ok", "userId": 7}}, "startMessage.userId"),
        ({"startMessage": {"text": "ok", "agent": ["a"]}}, "startMessage.agent"),
    ],
)
def test_create_thread_validation(stack, http, auth, body, field):
    agent = stack.agents["ops"]
    response = http.post(f"{agent.endpoint}/api/v1/threads", json=body, headers=auth())
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in response.json()["errors"]
    assert agent.threads() == []


def test_invalid_json_is_400(stack, http, auth):
    endpoint = stack.agents["ops"].endpoint
    headers = {**auth(), "Content-Type": "application/json"}
    assert http.post(f"{endpoint}/api/v1/threads", content=b"{nope", headers=headers).status_code == 400


def test_property_names_bind_case_insensitively(stack, http, auth):
    agent = stack.agents["ops"]
    body = {"StartMessage": {"Text": "hello", "UserId": "u", "DisplayName": "U"}}
    assert http.post(f"{agent.endpoint}/api/v1/threads", json=body, headers=auth()).status_code == 200


def test_paths_are_case_insensitive(stack, http, auth):
    agent = stack.agents["ops"]
    thread = http.post(f"{agent.endpoint}/API/V1/Threads", json=START, headers=auth()).json()
    assert (
        http.get(f"{agent.endpoint}/Api/v1/THREADS/{thread['id']}/Messages", headers=auth()).status_code
        == 200
    )
    assert http.get(f"{agent.endpoint}/api/v1/threads/", headers=auth()).status_code == 200
    trigger = agent.add_trigger("Intake", "Go")
    assert (
        http.post(f"{agent.endpoint}/api/v1/httpTriggers/trigger/{trigger}", headers=auth()).status_code
        == 202
    )


def test_unknown_route_and_method(stack, http, auth):
    endpoint = stack.agents["ops"].endpoint
    assert http.get(f"{endpoint}/api/v2/nothing", headers=auth()).status_code == 404
    assert http.patch(f"{endpoint}/api/v1/threads", headers=auth()).status_code == 405


# ----------------------------------------------------------------------------- messages
def test_messages(stack, http, auth):
    agent = stack.agents["ops"]
    thread = create(http, agent, auth(), "start")
    url = f"{agent.endpoint}/api/v1/threads/{thread['id']}/messages"
    posted = []
    for n in range(3):
        response = http.post(
            url, json={"text": f"m{n}", "userId": "handoff-svc", "displayName": "H"}, headers=auth()
        )
        assert response.status_code == 200
        posted.append(response.json())
    message = posted[0]
    assert set(message) >= {"id", "timeStamp", "author", "text", "messageType", "isComplete"}
    assert message["author"] == {"role": "User", "userId": "handoff-svc", "displayName": "H"}
    assert message["isComplete"] is True

    everything = http.get(url, headers=auth()).json()["value"]
    assert [m["text"] for m in everything] == ["start", "m0", "m1", "m2"]
    newest = http.get(url, params={"top": 2, "orderby": "timestamp desc"}, headers=auth()).json()["value"]
    assert [m["text"] for m in newest] == ["m2", "m1"]
    skipped = http.get(url, params={"$top": 2, "skip": 1}, headers=auth()).json()["value"]
    assert [m["text"] for m in skipped] == ["m0", "m1"]
    last = http.get(f"{agent.endpoint}/api/v1/threads/{thread['id']}", headers=auth()).json()["lastMessage"]
    assert last["text"] == "m2"

    assert http.post(url, json={"userId": "x"}, headers=auth()).status_code == 400
    assert http.post(url, json={"text": 5}, headers=auth()).status_code == 400


def test_auto_reply_completes_after_delay(stack, http, auth):
    agent = stack.agents["checkout"]
    agent.set_auto_reply(True, text="Root cause: pool exhaustion.", delay=0.3)
    thread = create(http, agent, auth(), "Please investigate")
    last = thread["lastMessage"]
    assert last["author"]["role"] == "SREAgent"
    assert last["isComplete"] is False
    assert last["text"] != "Root cause: pool exhaustion."
    time.sleep(0.35)
    done = http.get(f"{agent.endpoint}/api/v1/threads/{thread['id']}", headers=auth()).json()
    assert done["lastMessage"]["isComplete"] is True
    assert done["lastMessage"]["text"] == "Root cause: pool exhaustion."
    assert done["modifiedTimestamp"] > done["createdTimestamp"]
    # a user message gets another reply
    url = f"{agent.endpoint}/api/v1/threads/{thread['id']}/messages"
    http.post(url, json={"text": "and now?"}, headers=auth())
    roles = [m["author"]["role"] for m in http.get(url, headers=auth()).json()["value"]]
    assert roles == ["User", "SREAgent", "User", "SREAgent"]


def test_auto_reply_text_function(stack, http, auth):
    agent = stack.agents["ops"]
    agent.set_auto_reply(True, text=lambda prompt: f"echo: {prompt}", delay=0.01)
    thread = create(http, agent, auth(), "ping")
    time.sleep(0.05)
    assert agent.messages(thread["id"])[-1]["text"] == "echo: ping"


def test_approval_and_user_question(stack, http, auth):
    agent = stack.agents["ops"]
    thread = create(http, agent, auth(), "fix it")
    approval = agent.add_approval(thread["id"], "Restart checkout-api", "Restarts the app")
    question = agent.add_user_question(thread["id"], "Which region?", options=["eastus2", "westeurope"])
    messages = http.get(f"{agent.endpoint}/api/v1/threads/{thread['id']}/messages", headers=auth()).json()[
        "value"
    ]
    assert messages[1]["messageType"] == "Approval"
    assert messages[1]["approval"]["status"] == "Pending"
    assert messages[2]["messageType"] == "UserQuestion"
    assert messages[2]["userQuestion"]["status"] == "Pending"
    assert messages[2]["userQuestion"]["options"][0] == {"label": "eastus2", "description": ""}
    pending = http.get(f"{agent.endpoint}/api/v1/approvals/{thread['id']}", headers=auth()).json()["value"]
    assert [item["id"] for item in pending] == [approval["approval"]["id"]]
    approved = http.post(
        f"{agent.endpoint}/api/v1/approvals/{approval['approval']['id']}/approve",
        json={"user": "u"},
        headers=auth(),
    )
    assert approved.json()["status"] == "Approved"
    assert question["userQuestion"]["question"] == "Which region?"


# ----------------------------------------------------------------------------- HTTP triggers
def test_trigger_placeholders_flat_response(stack, http, auth):
    agent = stack.agents["checkout"]
    trigger_id = agent.add_trigger(
        "Handoff Intake", "Handoff {payload.handoffId}: {payload.title} ({payload.sev.level})"
    )
    payload = {"handoffId": "h-9", "title": "5xx burst", "sev": {"level": 2}, "context": {"a": 1}}
    response = http.post(agent.trigger_url(trigger_id), json=payload, headers=auth())
    assert response.status_code == 202
    body = response.json()
    assert body["message"] == "HTTP trigger execution initiated"
    assert body["success"] is True
    assert body["executionTime"].endswith("Z")
    thread = http.get(f"{agent.endpoint}/api/v1/threads/{body['threadId']}", headers=auth()).json()
    assert thread["title"] == "HTTP Trigger: Handoff Intake"
    assert thread["startMessage"]["text"] == 'Handoff h-9: 5xx burst (2)\n\n{"context": {"a": 1}}'
    [execution] = agent.trigger_executions(trigger_id)
    assert execution["threadId"] == body["threadId"]


def test_trigger_nested_response_and_no_body(stack, http, auth):
    agent = stack.agents["checkout"]
    trigger_id = agent.add_trigger("Nested", "Plain prompt", response_form="nested")
    response = http.post(agent.trigger_url(trigger_id), headers=auth())
    assert response.status_code == 202
    execution = response.json()["execution"]
    assert execution["success"] is True
    assert agent.thread(execution["threadId"])["startMessage"]["text"] == "Plain prompt"


def test_trigger_unknown_disabled_and_auth(stack, http, auth):
    agent = stack.agents["checkout"]
    trigger_id = agent.add_trigger("Off", "x", enabled=False)
    assert http.post(agent.trigger_url(trigger_id), json={}, headers=auth()).status_code == 404
    assert http.post(agent.trigger_url("unknown"), json={}, headers=auth()).status_code == 404
    agent.set_trigger_enabled(trigger_id, True)
    assert http.post(agent.trigger_url(trigger_id), json={}).status_code == 401
    assert http.post(agent.trigger_url(trigger_id), json={}, headers=auth(ARM_SCOPE)).status_code == 401
    assert http.post(agent.trigger_url(trigger_id), json={}, headers=auth()).status_code == 202


def test_trigger_management_api(stack, http, auth):
    agent = stack.agents["ops"]
    created = http.post(
        f"{agent.endpoint}/api/v1/httptriggers/create",
        json={"name": "intake", "agentPrompt": "Do {payload.x}", "agent": "triage", "agentMode": "review"},
        headers=auth(),
    ).json()
    assert created["triggerUrl"] == agent.trigger_url(created["triggerId"])
    listed = http.get(f"{agent.endpoint}/api/v1/httptriggers", headers=auth()).json()
    assert any(item["id"] == item["triggerId"] == created["triggerId"] for item in listed)
    disable = http.post(
        f"{agent.endpoint}/api/v1/httptriggers/{created['triggerId']}/disable", headers=auth()
    )
    assert disable.json()["enabled"] is False
    assert http.post(created["triggerUrl"], json={"x": 1}, headers=auth()).status_code == 404


def test_render_trigger_prompt_and_title():
    assert render_trigger_prompt("a {payload.b} {payload.missing}", {"b": "B"}) == "a B {payload.missing}"
    assert render_trigger_prompt("p", None) == "p"
    assert render_trigger_prompt("p", [1]) == "p\n\n[1]"
    assert title_from("\n# Heading here\nbody") == "Heading here"
    long = title_from("x" * 200)
    assert len(long) == 80
    assert long.endswith("…")
