"""A2A registry entries, and the pure rules of A2A results and thread watching."""

from __future__ import annotations

import pytest

from handoff.domain.records import RemoteArtifact, RemoteTask
from handoff.domain.registry import ConfigError, Registry
from handoff.services.a2a_followup import a2a_message_id, handback_from_task
from handoff.services.thread_watch import final_reply, pending_request, reply_is_complete

RID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.App/agents/{}"
)


def a2a(name="partner", url="https://partner.example.com/a2a", **extra):
    return {"name": name, "delivery": {"mode": "a2a", "url": url, **extra.pop("delivery", {})}, **extra}


def test_a2a_agent_needs_no_resource_id_and_is_found_by_name():
    registry = Registry.from_data({"agents": [{"name": "ops", "resourceId": RID.format("ops")}, a2a()]})
    partner = registry.by_name("PARTNER")
    assert partner.is_a2a and partner.resource_id is None
    assert not registry.by_name("ops").is_a2a


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (a2a(url="http://partner.example.com/a2a"), "agents[0]: delivery.url must be an https URL"),
        (a2a(url="http://127.0.0.1:9000/a2a"), "allowInsecureLocal"),
        (a2a(url="http://10.0.0.5/a2a", allowInsecureLocal=True), "agents[0]: delivery.url"),
        (a2a(url="https://user:pw@partner.example.com/a2a"), "without credentials"),
        (a2a(delivery={"bearerTokenSetting": "PARTNER_TOKEN", "tokenScope": "api://p/.default"}), "not both"),
        (a2a(delivery={"bearerTokenSetting": "not a setting"}), "bearerTokenSetting"),
        (a2a(autoHandback={"afterMinutes": 5}), "autoHandback"),
        (a2a(endpoint="https://x.eastus2.azuresre.ai"), "endpoint"),
        ({"name": "ops"}, "resourceId: required"),
        # the SRE Agent rule stays: any https host is fine for A2A, not for an SRE Agent endpoint
        (
            {"name": "ops", "resourceId": RID.format("ops"), "endpoint": "https://partner.example.com"},
            "azuresre.ai",
        ),
    ],
)
def test_invalid_a2a_entries_name_the_field(entry, expected):
    with pytest.raises(ConfigError) as info:
        Registry.from_data({"agents": [entry]})
    assert expected in str(info.value)


def test_loopback_a2a_peer_is_allowed_only_when_opted_in():
    entry = a2a(
        url="http://127.0.0.1:9000/a2a", allowInsecureLocal=True, delivery={"bearerTokenSetting": "TOKEN"}
    )
    agent = Registry.from_data({"agents": [entry]}).by_name("partner")
    assert agent.delivery.bearer_token_setting == "TOKEN"


def test_agent_level_auto_handback_defaults_max_watch_to_four_hours():
    entry = {"name": "ops", "resourceId": RID.format("ops"), "autoHandback": {"afterMinutes": 10}}
    auto = Registry.from_data({"agents": [entry]}).by_name("ops").auto_handback
    assert (auto.after_minutes, auto.max_watch_minutes) == (10, 240)


def test_message_id_is_stable_per_handoff():
    assert a2a_message_id("h1") == a2a_message_id("h1") != a2a_message_id("h2")


def _task(*artifacts: RemoteArtifact, status_text: str = "") -> RemoteTask:
    return RemoteTask(
        task_id="t", context_id="c", state="COMPLETED", status_text=status_text, artifacts=artifacts
    )


def test_completed_task_with_handback_data_keeps_its_outcome():
    data = {
        "outcome": "mitigated",
        "summary": "Rolled back",
        "recommendedActions": ["Add a canary"],
        "extra": 1,
    }
    request = handback_from_task(_task(RemoteArtifact("findings", "text", data)), "partner")
    assert (request.outcome, request.summary, request.recommended_actions) == (
        "mitigated",
        "Rolled back",
        ["Add a canary"],
    )


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"outcome": "solved-it", "summary": "x"},
        {"summary": "no outcome"},
        {"outcome": "mitigated", "rootCause": 5},
    ],
)
def test_completed_task_without_valid_handback_data_is_reported_as_text(data):
    request = handback_from_task(
        _task(RemoteArtifact("a", "First part", data), RemoteArtifact("b", "Second", None)), "p"
    )
    assert (request.outcome, request.summary) == ("reported", "First part\n\nSecond")


def test_completed_task_without_artifacts_reports_its_status_text():
    assert handback_from_task(_task(status_text="Nothing found"), "p").summary == "Nothing found"


@pytest.mark.parametrize(
    ("last", "complete"),
    [
        ({"isComplete": True, "author": {"role": "SREAgent"}}, True),
        ({"isComplete": True, "author": None}, True),  # a missing author counts as the agent
        ({"isComplete": True, "author": {"role": "USER"}}, False),
        ({"isComplete": True, "author": {"role": "user"}}, False),
        ({"isComplete": False, "author": {"role": "SREAgent"}}, False),
        (None, False),
    ],
)
def test_reply_is_complete_like_microsofts_client(last, complete):
    assert reply_is_complete({"lastMessage": last}) is complete


def test_pending_requests_are_found_and_decided_ones_ignored():
    decided = {"messageType": "Approval", "approval": {"id": "a1", "title": "Old", "status": "Approved"}}
    pending = {
        "messageType": "Approval",
        "approval": {"id": "a2", "title": "Restart", "status": "PendingAuthorization"},
    }
    question = {
        "messageType": "UserQuestion",
        "userQuestion": {"questionId": "q", "question": "Scale?", "status": "Pending"},
    }
    assert pending_request([decided]) is None
    assert pending_request([decided, pending]) == ("approval", "Restart", "a2")
    assert pending_request([question]) == ("userQuestion", "Scale?", "q")


def test_final_reply_is_the_last_complete_agent_message():
    messages = [
        {"author": {"role": "User"}, "text": "start", "isComplete": True},
        {"author": {"role": "SREAgent"}, "text": "answer", "isComplete": True},
        {"author": {"role": "SREAgent"}, "text": "", "isComplete": True, "messageType": "Text"},
    ]
    assert final_reply({"lastMessage": {"text": "fallback"}}, messages) == "answer"
    assert final_reply({"lastMessage": {"text": "fallback"}}, []) == "fallback"
