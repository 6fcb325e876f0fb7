"""History search and "seen before" through the running broker."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.e2e.helpers import SUB, handback_body, handoff_body, threads_mentioning


def _resource(group: str, name: str, sub: str = SUB) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Web/sites/{name}"


def _investigate(broker: Any, resources: list[str], title: str, **handback: Any) -> str:
    body = handoff_body(None)
    body["context"]["resources"] = resources
    body["context"]["title"] = title
    handoff_id = broker.client.post("/api/handoffs", json=body).json()["id"]
    broker.wait_status(handoff_id, "delivered", timeout=20)
    response = broker.client.post(f"/api/handoffs/{handoff_id}/handback", json=handback_body(**handback))
    assert response.status_code == 202
    broker.wait_status(handoff_id, "handedBack", timeout=20)
    return handoff_id


def _history(broker: Any, **params: Any) -> dict[str, Any]:
    response = broker.client.get("/api/history", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _ids(page: dict[str, Any]) -> list[str]:
    return [item["handoffId"] for item in page["items"]]


def test_history_by_resource_prefixes_text_outcome_and_paging(broker, clean_fakes):
    sub = str(uuid.uuid4())
    group = f"rg-{uuid.uuid4().hex[:8]}"
    site = _resource(group, "checkout-api", sub)
    other = _resource(group, "cart-api", sub)
    first = _investigate(broker, [site], "Pool exhaustion in checkout-api")
    time.sleep(0.01)
    second = _investigate(broker, [other], "Cart latency", outcome="mitigated", rootCause="Redis failover")
    time.sleep(0.01)
    third = _investigate(broker, [site.upper()], "Checkout errors again", rootCause="Bad connection string")

    by_resource = _history(broker, resource=site.lower())
    assert _ids(by_resource) == [third, first]  # newest first, resource IDs compare case-insensitively
    item = by_resource["items"][1]
    assert item["title"] == "Pool exhaustion in checkout-api" and item["outcome"] == "rootCauseFound"
    assert item["rootCause"] and item["recommendedActions"] and item["resources"] == [site]
    assert item["source"] == "ops" and item["target"] == "checkout" and item["threadUrls"]["target"]
    assert item["handedBackAt"]

    assert _ids(_history(broker, resource=f"/subscriptions/{sub}/resourceGroups/{group}")) == [
        third,
        second,
        first,
    ]
    assert _ids(_history(broker, resource=f"/subscriptions/{sub}")) == [third, second, first]
    assert _ids(_history(broker, resource=f"/subscriptions/{sub}", outcome="mitigated")) == [second]
    assert _ids(_history(broker, resource=f"/subscriptions/{sub}", q="connection STRING")) == [third]
    assert _ids(_history(broker, q="redis failover", agent="checkout", top=100))[:1] == [second]

    page1 = _history(broker, resource=f"/subscriptions/{sub}", top=2)
    assert _ids(page1) == [third, second] and page1["continuationToken"]
    page2 = _history(
        broker, resource=f"/subscriptions/{sub}", top=2, continuationToken=page1["continuationToken"]
    )
    assert _ids(page2) == [first] and "continuationToken" not in page2

    later = _history(broker, resource=f"/subscriptions/{sub}", since="2999-01-01T00:00:00Z")
    assert later["items"] == []
    earlier = _history(broker, resource=f"/subscriptions/{sub}", until="2000-01-01T00:00:00Z")
    assert earlier["items"] == []


def test_history_bad_queries_name_the_parameter(broker):
    cases = {
        "top=0": ("top", 422),
        "outcome=great": ("outcome", 422),
        "resource=checkout-api": ("resource", 422),
        "since=yesterday": ("since", 422),
        "continuationToken=zzz": ("continuationToken", 400),
        "colour=blue": ("colour", 400),
    }
    for query, (field, status) in cases.items():
        response = broker.client.get(f"/api/history?{query}")
        assert response.status_code == status, (query, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["errors"][0]["field"] == field


def test_new_handoff_start_message_shows_seen_before(broker, clean_fakes):
    group = f"rg-{uuid.uuid4().hex[:8]}"
    site = _resource(group, "checkout-api")
    earlier = _investigate(
        broker, [site], "Exception burst, first time", rootCause="Max Pool Size lowered to 10"
    )

    body = handoff_body(None)
    body["context"]["resources"] = [site]
    new_id = broker.client.post("/api/handoffs", json=body).json()["id"]
    broker.wait_status(new_id, "delivered", timeout=20)
    text = threads_mentioning(clean_fakes.agents["checkout"], new_id)[0]["startMessage"]["text"]
    section = text.split("## Seen before", 1)[1].split("\n## ", 1)[0]
    assert earlier in section and "Max Pool Size lowered to 10" in section

    # Same resource group, other resource: the group's history is shown when the resource has none.
    body = handoff_body(None)
    body["context"]["resources"] = [_resource(group, "cart-api")]
    sibling = broker.client.post("/api/handoffs", json=body).json()["id"]
    broker.wait_status(sibling, "delivered", timeout=20)
    text = threads_mentioning(clean_fakes.agents["checkout"], sibling)[0]["startMessage"]["text"]
    assert earlier in text.split("## Seen before", 1)[1]

    # Never from its own chain: a child of the earlier investigation does not list it.
    body = handoff_body(None, parentHandoffId=earlier)
    body["context"]["resources"] = [site]
    child = broker.client.post("/api/handoffs", json=body).json()["id"]
    broker.wait_status(child, "delivered", timeout=20)
    text = threads_mentioning(clean_fakes.agents["checkout"], child)[0]["startMessage"]["text"]
    assert "## Seen before" not in text


def test_first_investigation_has_no_seen_before(broker, clean_fakes):
    body = handoff_body(None)
    body["context"]["resources"] = [_resource(f"rg-{uuid.uuid4().hex[:8]}", "fresh-api")]
    handoff_id = broker.client.post("/api/handoffs", json=body).json()["id"]
    broker.wait_status(handoff_id, "delivered", timeout=20)
    text = threads_mentioning(clean_fakes.agents["checkout"], handoff_id)[0]["startMessage"]["text"]
    assert "## Seen before" not in text
