import json
import re
from datetime import UTC, datetime

from handoff.domain.messages import (
    MessageContext,
    fence_for,
    handback_message,
    marker,
    start_message,
    thread_url,
)
from handoff.domain.models import HandbackRequest, HandoffRequest
from handoff.domain.records import HandoffRecord, HandoffState, StoredHandback, StoredRequest

NOW = datetime(2026, 11, 21, 2, 10, tzinfo=UTC)
RID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.App/agents/ops-agent"


def record(rows=3, summary="5xx rose", query="exceptions | count"):
    request = HandoffRequest.model_validate(
        {
            "source": {"agent": "ops", "threadId": "t-a"},
            "target": {"agent": "checkout"},
            "context": {
                "title": "Exception burst",
                "summary": summary,
                "severity": "Sev2",
                "evidence": [
                    {
                        "kind": "kql",
                        "title": "Top exceptions",
                        "query": query,
                        "columns": ["type", "count_"],
                        "rows": [[f"Exception{i} | pipe", i] for i in range(rows)],
                    }
                ],
                "hypotheses": ["pool exhaustion"],
            },
        }
    )
    stored = StoredRequest(
        id="8f1c1e9e-0000-4000-8000-000000000001",
        request=request,
        source_agent="ops",
        target_agent="checkout",
        root_id="8f1c1e9e-0000-4000-8000-000000000001",
        body_hash="h",
        created_at=NOW,
        caller="local",
    )
    return HandoffRecord(stored=stored, state=HandoffState(updated_at=NOW))


def ctx(budget=24 * 1024):
    return MessageContext(
        base_url="http://127.0.0.1:7071",
        source_label="ops",
        target_label="checkout",
        target_agent_name="checkout",
        source_thread_url=thread_url(RID, "t-a"),
        target_thread_url=None,
        budget_bytes=budget,
    )


def json_block(text):
    payload_section = text.split("\n## Payload\n", 1)[1]
    match = re.search(r"^(`{3,})json\n(.*?)\n\1$", payload_section, re.S | re.M)
    assert match, "no json block"
    return json.loads(match.group(2))


def test_start_message_has_everything_a_person_and_a_model_need():
    text = start_message(record(), ctx())
    assert text.startswith("[Handoff 8f1c1e9e-0000-4000-8000-000000000001] Exception burst")
    assert "Sev2" in text and "5xx rose" in text and "pool exhaustion" in text
    assert "https://sre.azure.com/agents" + RID + "/views/thread/t-a" in text
    assert "| Exception1 \\| pipe | 1 |" in text
    assert "/handback" in text
    payload = json_block(text)
    assert payload["handoffId"] == "8f1c1e9e-0000-4000-8000-000000000001"
    assert payload["context"]["evidence"][0]["rows"][2] == ["Exception2 | pipe", 2]
    assert text.rstrip().endswith(marker(payload["handoffId"], "start"))


def test_budget_cuts_rows_in_both_markdown_and_json_and_says_so():
    text = start_message(record(rows=5000), ctx(budget=24 * 1024))
    assert len(text.encode()) <= 24 * 1024
    payload = json_block(text)
    evidence = payload["context"]["evidence"][0]
    assert 0 < len(evidence["rows"]) < 5000
    assert evidence["truncatedRows"] == 5000 - len(evidence["rows"])
    assert f"{evidence['truncatedRows']} more rows cut" in text
    assert "Full context: GET http://127.0.0.1:7071/api/handoffs/" in text


def test_long_text_is_cut_when_rows_are_not_enough():
    text = start_message(record(rows=1, summary="x" * 60_000), ctx(budget=8 * 1024))
    assert len(text.encode()) <= 8 * 1024
    assert "characters cut" in json_block(text)["context"]["summary"]


def test_backtick_fences_in_the_payload_cannot_break_the_json_block():
    query = "```\nexceptions\n````json\n{}\n````"
    text = start_message(record(query=query), ctx())
    assert json_block(text)["context"]["evidence"][0]["query"] == query
    assert fence_for("a ````` b") == "``````"


def test_handback_message_lists_findings_with_marker():
    rec = record()
    handback = StoredHandback(
        seq=2,
        received_at=NOW,
        agent="checkout",
        caller="local",
        request=HandbackRequest(
            agent="checkout",
            outcome="rootCauseFound",
            summary="pool exhausted",
            root_cause="max pool size 10 after deploy",
            recommended_actions=["raise pool size", "add alert"],
        ),
    )
    text = handback_message(rec, handback, ctx())
    assert "root cause found" in text and "max pool size 10" in text
    assert "1. raise pool size" in text and "2. add alert" in text
    assert text.endswith(marker(rec.id, "handback:2"))
