"""Secrets that callers and remote systems send never come back out of the broker: not in its answers,
the agents' threads, the audit, the history, shared memory, problems or stored errors.

Every secret is a fake with the real shape (see tests/data/secret_corpus.py).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import pytest

from tests.data import secret_corpus as fake
from tests.e2e.alert_payloads import envelope
from tests.e2e.helpers import (
    SUB,
    aimed_handoff_body,
    handback_body,
    handoff_body,
    messages_mentioning,
    threads_mentioning,
)
from tests.support.vendors import MEMORY_AGENT

ACCOUNT_KEY = fake.account_key()
CONNECTION_STRING = (
    f"DefaultEndpointsProtocol=https;AccountName=contosoprodlogs;AccountKey={ACCOUNT_KEY};"
    "EndpointSuffix=core.windows.net"
)
SIG = fake.sas_sig()
SAS_URL = (
    "https://contosoprodlogs.blob.core.windows.net/exports/run-42.csv?sv=2022-11-02&ss=b&srt=o&sp=r"
    f"&se=2026-12-01T00:00:00Z&sig={SIG}"
)
GITHUB_TOKEN = fake.github()
JWT = fake.jwt()
AWS_KEY_ID = fake.aws_key_id()
AWS_SECRET = fake.aws_secret()
PEM = fake.pem()
PEM_LINE = PEM.splitlines()[1]
DB_PASSWORD = fake.password()
DB_URL = f"postgres://reporting:{DB_PASSWORD}@db.contoso.internal:5432/orders"
APP_PASSWORD = fake.password()
CLIENT_SECRET = fake.azure_client_secret()
GOOGLE_KEY = fake.google_api_key()
SLACK_TOKEN = fake.slack_token()
SLACK_WEBHOOK = fake.slack_webhook_path()

SECRETS = {
    "account key": ACCOUNT_KEY,
    "SAS signature": SIG,
    "GitHub token": GITHUB_TOKEN,
    "JWT": JWT,
    "JWT payload": JWT.split(".")[1],
    "AWS key id": AWS_KEY_ID,
    "AWS secret": AWS_SECRET,
    "private key": PEM_LINE,
    "URL password": DB_PASSWORD,
    "password": APP_PASSWORD,
    "client secret": CLIENT_SECRET,
    "Google key": GOOGLE_KEY,
    "Slack token": SLACK_TOKEN,
    "Slack webhook": SLACK_WEBHOOK,
}
CONTEXT_KINDS = {
    "account_key",
    "sas_signature",
    "github_token",
    "jwt",
    "aws_access_key_id",
    "aws_secret_access_key",
    "private_key",
    "url_password",
    "password",
    "azure_client_secret",
    "google_api_key",
    "slack_token",
    "slack_webhook",
}


def unescaped(text: str) -> str:
    """Message text without Markdown's backslash escapes."""
    return re.sub(r"\\(.)", r"\1", text)


def leaked(text: str) -> list[str]:
    """The names of the secrets found in ``text``."""
    return [name for name, value in SECRETS.items() if value in text]


def _resource() -> str:
    return (
        f"/subscriptions/{SUB}/resourceGroups/rg-{uuid.uuid4().hex[:8]}/providers/Microsoft.Web/sites/export"
    )


def handoff_with_secrets(source_thread: str | None, resource: str, **extra: Any) -> dict[str, Any]:
    """A handoff whose every free-text field carries secrets of the kinds the broker knows."""
    body = handoff_body(source_thread, **extra)
    context = body["context"]
    context["title"] = f"Nightly export fails (password={APP_PASSWORD})"
    context["summary"] = f"The export uses {CONNECTION_STRING} and fails: token rejected: Bearer {JWT}"
    context["resources"] = [resource]
    context["evidence"] = [
        {
            "kind": "kql",
            "title": "Blob reads",
            "query": "StorageBlobLogs | where Uri has 'sig=' | project Uri, AccessKeyId",
            "columns": ["Uri", "AccessKeyId"],
            "rows": [[SAS_URL, AWS_KEY_ID]],
        },
        {"kind": "link", "title": "The export", "url": SAS_URL},
        {
            "kind": "note",
            "title": "Deploy script",
            "content": f"export GITHUB_TOKEN={GITHUB_TOKEN}\naws_secret_access_key = {AWS_SECRET}\n{PEM}",
        },
        {
            "kind": "data",
            "title": "App settings",
            "data": {
                "ConnectionStrings": {"Orders": DB_URL},
                "Slack": {"webhook": f"https://hooks.slack.com/services/{SLACK_WEBHOOK}", "bot": SLACK_TOKEN},
            },
        },
    ]
    context["hypotheses"] = [f"The client secret {CLIENT_SECRET} expired on 2026-11-20"]
    context["actionsTaken"] = [f"Checked the maps key {GOOGLE_KEY}: still valid"]
    body["correlationId"] = f"export-42 password={APP_PASSWORD}"
    return body


def handback_with_secrets(thread_id: str | None = None, agent: str = "checkout") -> dict[str, Any]:
    return handback_body(
        agent,
        thread_id,
        summary=f"The export job authenticates with {GITHUB_TOKEN}, which was revoked",
        rootCause=f"The connection string {DB_URL} points at the old replica",
        recommendedActions=[f"Rotate {AWS_KEY_ID} and aws_secret_access_key={AWS_SECRET}"],
        evidence=[{"kind": "note", "content": f"401 from the API: Bearer {JWT}"}],
    )


def _events(broker: Any, handoff_id: str) -> list[dict[str, Any]]:
    return broker.client.get(f"/api/handoffs/{handoff_id}/audit").json()["events"]


def _wait(condition: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.mark.attack("redaction")
def test_secrets_in_a_handoff_and_its_handback_never_come_back_out(broker, clean_fakes):
    ops, checkout = clean_fakes.agents["ops"], clean_fakes.agents["checkout"]
    source_thread = ops.create_thread("Ops: export failures")["id"]
    resource = _resource()
    body = handoff_with_secrets(source_thread, resource)
    assert len(leaked(json.dumps(body))) == len(SECRETS)  # the request really carries them all

    accepted = broker.client.post("/api/handoffs", json=body)

    assert accepted.status_code == 202, accepted.text
    assert leaked(accepted.text) == []
    handoff_id = accepted.json()["id"]
    assert accepted.json()["context"]["summary"].startswith(
        "The export uses DefaultEndpointsProtocol=https;AccountName=contosoprodlogs;"
        "AccountKey=[redacted:account_key];EndpointSuffix=core.windows.net and fails: token rejected: Bearer "
        "[redacted:jwt]"
    )
    delivered = broker.wait_status(handoff_id, "delivered", timeout=20)
    assert leaked(json.dumps(delivered)) == []
    (thread,) = threads_mentioning(checkout, handoff_id)
    start = thread["startMessage"]["text"]
    assert leaked(start) == [] and "[redacted:account_key]" in start and "[redacted:url_password]" in start

    back = broker.client.post(
        f"/api/handoffs/{handoff_id}/handback", json=handback_with_secrets(thread["id"])
    )
    assert back.status_code == 202 and leaked(back.text) == []
    done = broker.wait_status(handoff_id, "handedBack", timeout=20)

    assert leaked(json.dumps(done)) == []
    assert done["handbacks"][0]["rootCause"] == (
        "The connection string postgres://reporting:[redacted:url_password]@db.contoso.internal:5432/orders "
        "points at the old replica"
    )
    in_source_thread = messages_mentioning(ops, source_thread, handoff_id)
    assert len(in_source_thread) == 2  # the link to B's thread and the hand-back
    assert leaked(json.dumps(in_source_thread)) == []
    # (Thread messages escape Markdown in caller text, so the marker's brackets arrive escaped.)
    assert any("[redacted:github_token]" in unescaped(m["text"]) for m in in_source_thread)
    events = _events(broker, handoff_id)
    assert leaked(json.dumps(events)) == []
    by_type = {e["type"]: e["details"] for e in events}
    assert set(by_type["accepted"]["redactions"]) >= CONTEXT_KINDS
    assert by_type["handBackReceived"]["redactions"] == {
        "aws_access_key_id": 1,
        "aws_secret_access_key": 1,
        "github_token": 1,
        "jwt": 1,
        "url_password": 1,
    }
    history = broker.client.get("/api/history", params={"resource": resource})
    assert [item["handoffId"] for item in history.json()["items"]] == [handoff_id]
    assert leaked(history.text) == []
    assert "[redacted:url_password]" in history.text
    assert leaked(broker.logs()) == []


@pytest.mark.attack("redaction")
def test_idempotent_retries_replay_without_storing_secrets(broker, clean_fakes):
    key = f"export-{uuid.uuid4().hex[:8]}"
    body = handoff_with_secrets(None, _resource())
    headers = {"Idempotency-Key": key}

    first = broker.client.post("/api/handoffs", json=body, headers=headers)
    again = broker.client.post("/api/handoffs", json=body, headers=headers)
    other_secret = json.loads(json.dumps(body).replace(GITHUB_TOKEN, fake.github()))
    same_after_redaction = broker.client.post("/api/handoffs", json=other_secret, headers=headers)
    changed = json.loads(json.dumps(body))
    changed["context"]["summary"] += " (second attempt)"
    conflict = broker.client.post("/api/handoffs", json=changed, headers=headers)

    assert first.status_code == 202 and leaked(first.text) == []
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"] and leaked(again.text) == []
    # What would be stored is the same once the secret is redacted, so it is the same request.
    assert same_after_redaction.status_code == 200 and same_after_redaction.json()["id"] == first.json()["id"]
    assert conflict.status_code == 409 and leaked(conflict.text) == []
    broker.wait_status(first.json()["id"], "delivered", timeout=20)  # nothing left in flight for others


@pytest.mark.attack("redaction")
def test_problems_do_not_echo_secrets(broker, clean_fakes):
    body = handoff_body(None)
    body["source"]["agent"] = CONNECTION_STRING

    unknown = broker.client.post("/api/handoffs", json=body)
    not_found = broker.client.get(f"/api/handoffs/{GITHUB_TOKEN}")
    extra_field = handoff_body(None)
    extra_field["context"][GITHUB_TOKEN] = "a token pasted as a key"
    refused = broker.client.post("/api/handoffs", json=extra_field)
    tool = broker.client.post(
        "/api/mcp",
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "handoff_get", "arguments": {"handoffId": f"Bearer {JWT}"}},
        },
        headers={"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"},
    )

    assert unknown.status_code == 422
    problem = unknown.json()
    assert problem["errors"][0]["field"] == "/source/agent"
    assert "AccountKey=[redacted:account_key]" in problem["errors"][0]["message"]
    assert not_found.status_code == 404 and refused.status_code == 422
    assert tool.status_code == 200 and tool.json()["result"]["isError"] is True
    for response in (unknown, not_found, refused, tool):
        assert leaked(response.text) == [], response.text


@pytest.mark.attack("redaction")
def test_agent_error_bodies_are_stored_redacted(broker, clean_fakes):
    checkout = clean_fakes.agents["checkout"]
    request, marker = aimed_handoff_body(None)
    checkout.inject(
        "POST",
        "/api/v1/threads",
        503,
        body={"error": {"code": "Busy", "message": f"upstream call with {GITHUB_TOKEN} throttled"}},
        body_contains=marker,
    )
    checkout.inject(
        "POST",
        "/api/v1/threads",
        400,
        body={"error": {"code": "InvalidToken", "message": f"token rejected: Bearer {JWT}"}},
        body_contains=marker,
    )

    handoff_id = broker.client.post("/api/handoffs", json=request).json()["id"]
    failed = broker.wait_status(handoff_id, "failed", timeout=20)

    assert "answered 400" in failed["lastError"] and "Bearer [redacted:jwt]" in failed["lastError"]
    events = _events(broker, handoff_id)
    retry = next(e for e in events if e["type"] == "retryScheduled")
    assert "[redacted:github_token]" in retry["details"]["reason"]
    final = events[-1]
    assert final["type"] == "deliveryFailed" and "Bearer [redacted:jwt]" in final["details"]["reason"]
    assert leaked(json.dumps(failed)) == [] and leaked(json.dumps(events)) == []
    assert leaked(broker.logs()) == []


@pytest.mark.attack("redaction")
def test_partner_status_and_results_over_a2a_are_redacted(broker, clean_fakes, clean_peer):
    ops = clean_fakes.agents["ops"]
    clean_peer.set_script(behaviour="inputRequired", detail=f"I need access: is {GITHUB_TOKEN} still valid?")
    source_thread = ops.create_thread("Ops: partner question")["id"]
    asked = broker.client.post("/api/handoffs", json=handoff_body(source_thread, target="partner")).json()[
        "id"
    ]
    clean_peer_result = {
        "outcome": "rootCauseFound",
        "summary": f"The APM agent reports with {SLACK_TOKEN}",
        "rootCause": f"Its config holds password={APP_PASSWORD}",
        "recommendedActions": [f"Revoke {GOOGLE_KEY}"],
    }

    waiting = broker.wait_status(asked, "inputRequired", timeout=20)
    clean_peer.set_script(behaviour="complete", result=clean_peer_result)
    answered = broker.client.post("/api/handoffs", json=handoff_body(source_thread, target="partner")).json()[
        "id"
    ]
    done = broker.wait_status(answered, "handedBack", timeout=20)

    assert "[redacted:github_token]" in waiting["lastError"]
    notices = messages_mentioning(ops, source_thread, asked)
    assert any("[redacted:github_token]" in unescaped(m["text"]) for m in notices)
    assert done["handbacks"][0]["rootCause"] == "Its config holds password=[redacted:password]"
    posted = messages_mentioning(ops, source_thread, answered)
    everything = [waiting, done, notices, posted, _events(broker, asked), _events(broker, answered)]
    assert leaked(json.dumps(everything)) == []


@pytest.mark.attack("redaction")
def test_automatic_handback_of_b_s_reply_is_redacted(broker, clean_fakes):
    ops, checkout = clean_fakes.agents["ops"], clean_fakes.agents["checkout"]
    checkout.set_auto_reply(
        True, text=f"Final answer: the job used {CONNECTION_STRING}; rotate it.", delay=0.3
    )
    try:
        source_thread = ops.create_thread("Ops: export failures")["id"]
        body = handoff_body(source_thread, autoHandback={"afterMinutes": 0})
        handoff_id = broker.client.post("/api/handoffs", json=body).json()["id"]
        done = broker.wait_status(handoff_id, "handedBack", timeout=20)
    finally:
        checkout.set_auto_reply(False)

    assert done["handbacks"][0]["automatic"] is True
    assert "AccountKey=[redacted:account_key]" in done["handbacks"][0]["summary"]
    posted = messages_mentioning(ops, source_thread, "rotate it")
    assert len(posted) == 1 and leaked(posted[0]["text"]) == []
    received = next(e for e in _events(broker, handoff_id) if e["type"] == "handBackReceived")
    assert received["details"]["redactions"] == {"account_key": 1}
    assert leaked(json.dumps(done)) == []


@pytest.mark.attack("redaction")
def test_alert_payload_secrets_are_redacted(broker, clean_fakes):
    alert = envelope("metric-static-fired", "samples")
    alert["data"]["essentials"]["description"] = f"Export failing; webhook sig={SIG}"
    alert["data"]["customProperties"]["runbookToken"] = GITHUB_TOKEN
    alert["data"]["customProperties"]["notes"] = f"aws_secret_access_key={AWS_SECRET}"

    response = broker.client.post("/api/alerts", json=alert)

    assert response.status_code == 202, response.text
    handoff_id = response.json()["routed"][0]["handoffId"]
    view = broker.wait_status(handoff_id, "delivered", timeout=20)
    start = clean_fakes.agents["checkout"].thread(view["target"]["threadId"])["startMessage"]["text"]
    assert "sig=[redacted:sas_signature]" in start
    events = _events(broker, handoff_id)
    assert {"sas_signature", "aws_secret_access_key"} <= set(events[0]["details"]["redactions"])
    assert leaked(json.dumps([view, start, events, response.json()])) == []


@pytest.mark.attack("redaction")
def test_shared_memory_notes_and_vendor_errors_are_redacted(broker, vendors):
    vendors.clear_faults()
    issue = f"OPS-{uuid.uuid4().int % 10**6 + 100}"
    vendors.jira.add_issue(issue)
    basic = fake.basic("bot@contoso.com")
    vendors.jira.inject(
        "POST",
        f"/rest/api/3/issue/{issue}/comment",
        400,
        body={"errorMessages": [f"rejected header 'Authorization: Basic {basic}'"], "errors": {}},
    )
    body = handoff_with_secrets(None, _resource(), target=MEMORY_AGENT)
    body["context"]["incident"] = {"id": issue, "platform": "jira"}
    handoff_id = broker.client.post("/api/handoffs", json=body).json()["id"]
    broker.wait_status(handoff_id, "delivered", timeout=20)

    response = broker.client.post(
        f"/api/handoffs/{handoff_id}/handback", json=handback_with_secrets(agent=MEMORY_AGENT)
    )
    assert response.status_code == 202, response.text
    failed = _wait(
        lambda: [e for e in _events(broker, handoff_id) if e["type"] == "sharedMemoryFailed"], timeout=30
    )

    assert "Basic [redacted:basic_auth]" in failed[0]["details"]["reason"]
    writes = broker.client.get(f"/api/handoffs/{handoff_id}/shared-memory")
    assert basic not in writes.text and "[redacted:basic_auth]" in writes.text
    _wait(lambda: any(handoff_id in json.dumps(r["json"]) for r in vendors.github.requests("POST")))
    sent = json.dumps([r["json"] for fake_vendor in vendors.all() for r in fake_vendor.requests()])
    assert handoff_id in sent and leaked(sent) == []
    assert basic not in json.dumps(_events(broker, handoff_id))
