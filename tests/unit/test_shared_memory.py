"""Shared-memory configuration, content renderings, rate-limit reading and history keys."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import httpx
import pytest

from devserver.fakes.openapi_check import adf_errors
from handoff.adapters.vendors import basic_or_bearer, error_for, rate_limit_wait
from handoff.domain.history import MAX_RESOURCE_LEVELS, resource_group_of, scopes_of
from handoff.domain.history_rows import COLUMN_CHARS, history_item, json_list
from handoff.domain.models import HandbackRequest, HandoffRequest
from handoff.domain.records import HandoffRecord, HandoffState, StoredHandback, StoredRequest
from handoff.domain.registry import ConfigError, Registry
from handoff.domain.shared_memory.content import (
    ChainStep,
    adf,
    adf_text,
    build_note,
    markdown,
    mermaid,
    plain_text,
)

AGENT = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.App/agents/a"
SITE = "/subscriptions/S1/resourceGroups/Shop/providers/Microsoft.Web/sites/checkout-api"


def _registry(backends: list[dict], agent_memory: list[str]) -> Registry:
    return Registry.from_data(
        {
            "agents": [{"name": "ops", "resourceId": AGENT, "sharedMemory": agent_memory}],
            "sharedMemory": {"backends": backends},
        }
    )


GH = {
    "name": "gh",
    "type": "github",
    "baseUrl": "https://api.github.com",
    "repo": "contoso/shop",
    "secretSetting": "GITHUB_TOKEN",
}


@pytest.mark.parametrize(
    ("backends", "names", "field"),
    [
        ([GH], ["gh", "nope"], "agents[0].sharedMemory names unknown backend(s) nope"),
        ([{**GH, "repo": None}], ["gh"], "sharedMemory.backends[0].repo"),
        ([{k: v for k, v in GH.items() if k != "repo"}], [], "sharedMemory.backends[0].repo: Field required"),
        ([{**GH, "secretSetting": "ghp_abc-123!"}], [], "sharedMemory.backends[0].secretSetting"),
        (
            [{**GH, "baseUrl": "http://api.github.com"}],
            [],
            "sharedMemory.backends[0]: baseUrl must be an https",
        ),
        ([{**GH, "on": ["closed"]}], [], "sharedMemory.backends[0].on[0]"),
        ([{**GH, "type": "slack"}], [], "sharedMemory.backends[0]: Input tag 'slack' found using 'type'"),
        ([GH, GH], [], "repeats the name"),
        (
            [
                {
                    "name": "pd",
                    "type": "pagerduty",
                    "baseUrl": "https://api.pagerduty.com",
                    "secretSetting": "PD",
                }
            ],
            [],
            "sharedMemory.backends[0].fromEmail: Field required",
        ),
        (
            [
                {
                    "name": "sn",
                    "type": "servicenow",
                    "baseUrl": "https://x.service-now.com",
                    "secretSetting": "SN",
                    "field": "description",
                }
            ],
            [],
            "sharedMemory.backends[0].field",
        ),
        (
            [
                {
                    "name": "j",
                    "type": "jira",
                    "baseUrl": "https://x.atlassian.net",
                    "secretSetting": "J",
                    "issue": "not-a-key",
                }
            ],
            [],
            "sharedMemory.backends[0].issue",
        ),
    ],
)
def test_bad_backend_config_names_the_field(backends, names, field):
    with pytest.raises(ConfigError) as error:
        _registry(backends, names)
    assert field in str(error.value)


def test_good_config_defaults():
    registry = _registry(
        [
            GH,
            {
                "name": "sn",
                "type": "servicenow",
                "baseUrl": "https://x.service-now.com",
                "secretSetting": "SN",
            },
        ],
        ["gh", "sn"],
    )
    assert registry.shared_memory.find("GH").on == ("handedBack", "failed")
    assert registry.shared_memory.find("sn").table == "incident"
    assert registry.shared_memory.find("sn").field == "work_notes"
    assert registry.agents[0].shared_memory == ("gh", "sn")


def _record() -> HandoffRecord:
    now = datetime.now(UTC)
    request = HandoffRequest.model_validate(
        {
            "source": {"agent": "ops", "threadId": "t1"},
            "target": {"agent": "checkout"},
            "context": {
                "title": "Errors; in # checkout",
                "summary": "5xx up",
                "severity": "Sev2",
                "resources": [SITE],
            },
        }
    )
    handback = HandbackRequest.model_validate(
        {
            "agent": "checkout",
            "outcome": "rootCauseFound",
            "summary": "Pool exhausted",
            "rootCause": "Max Pool Size 10",
            "recommendedActions": ["Roll back", "Alert on pool wait"],
        }
    )
    stored = StoredRequest(
        id="h1",
        request=request,
        source_agent="ops",
        target_agent="checkout",
        root_id="h1",
        body_hash="x",
        created_at=now,
        caller="test",
    )
    return HandoffRecord(
        stored=stored,
        state=HandoffState(updated_at=now, status="handedBack", target_thread_id="t2"),
        handbacks=[StoredHandback(seq=1, received_at=now, request=handback, agent="checkout", caller="test")],
    )


def _note(point: str = "handedBack"):
    chain = (ChainStep("h1", "ops", "checkout", "investigate", "Errors; in # checkout", "rootCauseFound"),)
    return build_note(
        _record(),
        point,
        1,
        "gh",
        base_url="https://broker",
        source_label="ops",
        target_label="checkout",
        source_thread_url="https://sre/a",
        target_thread_url="https://sre/b",
        chain=chain,
        details={},
    )


def test_renderings_carry_the_marker_and_the_findings():
    note = _note()
    assert note.marker == "handoff-memory: h1/handedBack:1/gh"
    text = markdown(note)
    assert text.endswith("<!-- handoff-memory: h1/handedBack:1/gh -->")
    assert (
        "Max Pool Size 10" in text
        and "1. Roll back" in text
        and "https://broker/api/handoffs/h1/audit" in text
    )
    assert "```mermaid\nsequenceDiagram" in text
    plain = plain_text(note)
    assert (
        "```" not in plain and "<!--" not in plain and plain.endswith("[handoff-memory: h1/handedBack:1/gh]")
    )
    for point in ("handedBack", "delivered", "failed", "alertResolved"):
        document = adf(_note(point))
        assert adf_errors(document) == []
        assert "handoff-memory: h1/" in adf_text(document)


def test_mermaid_escapes_statement_separators():
    diagram = mermaid((ChainStep("h1", "ops agent", "check-out", "investigate", "a;b#c\nd", "mitigated"),))
    assert "participant ops_agent as ops agent" in diagram
    assert "ops_agent->>check_out: investigate: a b c d" in diagram
    assert "check_out-->>ops_agent: hand-back: mitigated" in diagram


def _response(status: int, headers: dict[str, str], body: str = "") -> httpx.Response:
    return httpx.Response(status, headers=headers, text=body, request=httpx.Request("POST", "https://x/y"))


def test_rate_limit_headers_are_read():
    assert rate_limit_wait(_response(429, {"Retry-After": "7"})) == 7
    assert 9 <= rate_limit_wait(_response(403, {"x-ratelimit-reset": str(int(time.time()) + 10)})) <= 10
    assert rate_limit_wait(_response(429, {"ratelimit-reset": "12"})) == 12
    iso = datetime.fromtimestamp(time.time() + 30, UTC).isoformat()
    assert 28 <= rate_limit_wait(_response(429, {"X-RateLimit-Reset": iso})) <= 30
    secondary = error_for(
        "POST", "https://x/y", _response(403, {}, '{"message": "You have exceeded a secondary rate limit"}')
    )
    assert secondary.transient and secondary.backend_wide and secondary.retry_after == 60
    forbidden = error_for("POST", "https://x/y", _response(403, {}, '{"message": "Resource not accessible"}'))
    assert not forbidden.transient and not forbidden.backend_wide
    unavailable = error_for("POST", "https://x/y", _response(503, {}))
    assert unavailable.transient and not unavailable.backend_wide


def test_a_resource_id_nested_hundreds_deep_is_a_handful_of_scopes():
    # Each scope is a history row per hand-back: a caller's 1,024-character ID must not make hundreds.
    deep = SITE + "/x/y" * 235
    assert len(deep) <= 1024
    scopes = scopes_of(deep)
    assert len(scopes) == MAX_RESOURCE_LEVELS + 2  # with the resource group and the subscription
    assert scopes[0] == deep.lower() and scopes[-2:] == [
        "/subscriptions/s1/resourcegroups/shop",
        "/subscriptions/s1",
    ]
    assert scopes[-3] == SITE.lower()  # the outermost levels stay searchable
    # Real IDs are untouched: an API Management operation's policy, five levels deep.
    apim = (
        "/subscriptions/s1/resourceGroups/g/providers/Microsoft.ApiManagement"
        "/service/s/apis/a/operations/o/policies/p"
    )
    assert len(scopes_of(apim)) == 2 + 4


def test_credentials_become_basic_or_bearer():
    assert basic_or_bearer("user:pw") == "Basic dXNlcjpwdw=="
    assert basic_or_bearer("token") == "Bearer token"


def test_history_scopes_are_lowercased_ancestors():
    assert scopes_of(SITE + "/slots/staging") == [
        "/subscriptions/s1/resourcegroups/shop/providers/microsoft.web/sites/checkout-api/slots/staging",
        "/subscriptions/s1/resourcegroups/shop/providers/microsoft.web/sites/checkout-api",
        "/subscriptions/s1/resourcegroups/shop",
        "/subscriptions/s1",
    ]
    assert resource_group_of(SITE) == "/subscriptions/s1/resourcegroups/shop"
    assert scopes_of("not-an-id") == []


@pytest.mark.parametrize(
    "values",
    [
        [f"/subscriptions/{i}/providers/p" + "/x/y" * 240 for i in range(100)],  # many long ids
        ['\u00e9"\\' * 30_000],  # one item longer than the column, its characters escaped in JSON
        ["a", "b"],
    ],
)
def test_a_history_list_column_is_json_that_fits(values):
    text = json_list(values)
    assert len(text) <= COLUMN_CHARS
    kept = json.loads(text)  # still JSON: the text is cut, never the JSON
    assert kept and kept[:-1] == values[: len(kept) - 1] and values[len(kept) - 1].startswith(kept[-1])
    assert json_list(["a", "b"]) == '["a", "b"]'


def test_a_history_row_whose_json_was_cut_short_is_still_read():
    # Rows written before the lists were cut whole held JSON cut mid-string.
    row = {
        "HandoffId": "h", "Title": "t", "Source": "ops", "Target": "checkout", "Outcome": "mitigated",
        "HandedBackAt": datetime(2026, 12, 2, tzinfo=UTC),
        "Resources": '["/subscriptions/s/resourceGroups/g', "Actions": '"not a list"', "ThreadUrls": "{",
    }  # fmt: skip
    item = history_item(row)
    assert (item.resources, item.recommended_actions, item.thread_urls) == ([], [], {})
