"""Request bodies and small checks shared by the end-to-end tests."""

from __future__ import annotations

import json
import re
import uuid
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from handoff.entrypoints.contract_schemas import contract_schemas

SUB = "00000000-0000-0000-0000-000000000000"
CHECKOUT_SITE = f"/subscriptions/{SUB}/resourceGroups/shop/providers/Microsoft.Web/sites/checkout-api"


def handoff_body(
    source_thread: str | None, *, source: str = "ops", target: str = "checkout", **extra: Any
) -> dict:
    """A complete handoff request like the one in the README."""
    body: dict[str, Any] = {
        "source": {"agent": source, **({"threadId": source_thread} if source_thread else {})},
        "target": {"agent": target},
        "intent": "investigate",
        "context": {
            "title": f"Exception burst in checkout-api {uuid.uuid4().hex[:6]}",
            "summary": "5xx rate rose from 0.1% to 7% at 02:10 UTC after deployment 2026.11.21.3",
            "severity": "Sev2",
            "resources": [CHECKOUT_SITE],
            "evidence": [
                {
                    "kind": "kql",
                    "title": "Top exceptions",
                    "query": "exceptions | summarize count() by type",
                    "columns": ["type", "count_"],
                    "rows": [["SqlException", 412], ["TimeoutException", 97]],
                },
                {"kind": "link", "title": "Dashboard", "url": "https://portal.azure.com/#dashboard"},
                {"kind": "note", "content": "Rollback not attempted yet"},
            ],
            "hypotheses": ["Connection pool exhaustion after deploy"],
            "actionsTaken": ["Scaled out to 6 instances at 02:15"],
            "incident": {
                "id": "PT4KHLK",
                "url": "https://contoso.pagerduty.com/incidents/PT4KHLK",
                "platform": "pagerduty",
            },
        },
    }
    body.update(extra)
    return body


def aimed_handoff_body(source_thread: str | None, **kwargs: Any) -> tuple[dict, str]:
    """:func:`handoff_body` with a marker in its title, and the marker. The broker's requests for this
    handoff carry its title (B's start message, the cross-link into A's thread), so a fault injected with
    ``body_contains=marker`` is used by this handoff alone, never by work another test left behind."""
    marker = f"aim{uuid.uuid4().hex}"  # letters and digits: no renderer escapes them
    body = handoff_body(source_thread, **kwargs)
    body["context"]["title"] += f" {marker}"
    return body, marker


def handback_body(agent: str = "checkout", thread_id: str | None = None, **extra: Any) -> dict:
    """A hand-back with a root cause and actions."""
    body = {
        "agent": agent,
        "outcome": "rootCauseFound",
        "summary": "Connection pool exhausted by the new retry policy",
        "rootCause": "Deployment 2026.11.21.3 lowered Max Pool Size to 10",
        "recommendedActions": ["Roll back 2026.11.21.3", "Alert on pool wait time"],
        **({"threadId": thread_id} if thread_id else {}),
    }
    body.update(extra)
    return body


def payload_of(text: str) -> dict:
    """The fenced ``json`` payload at the end of a start message."""
    section = text.split("\n## Payload\n", 1)[1]
    match = re.search(r"^(`{3,})json\n(.*?)\n\1$", section, re.S | re.M)
    assert match, "start message has no json block"
    return json.loads(match.group(2))


def threads_mentioning(agent: Any, needle: str) -> list[dict]:
    """Threads of a fake agent whose start message mentions ``needle``."""
    return [t for t in agent.threads() if needle in t["startMessage"]["text"]]


def messages_mentioning(agent: Any, thread_id: str, needle: str) -> list[dict]:
    """Messages of a fake agent's thread that mention ``needle``."""
    return [m for m in agent.messages(thread_id) if needle in m["text"]]


@cache
def contract_validator(name: str) -> Draft202012Validator:
    """A validator of the checked-in contract schema ``name`` (spec/handoff-context/v1) that resolves
    the other schemas of the contract by their ``$id``."""
    schemas = contract_schemas()
    registry: Registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas.values()
    )
    return Draft202012Validator(schemas[name], registry=registry)


def contract_errors(name: str, instance: Any) -> list[str]:
    """Where ``instance`` breaks the contract schema ``name`` (``path: message``); empty if it follows it."""
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in contract_validator(name).iter_errors(instance)
    ]


# The MCP handshake a client opens a session with (the tests of the MCP endpoint and of its logs).
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "probe", "version": "1"},
    },
}
