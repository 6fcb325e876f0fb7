"""The timeline of an investigation: the chain's audit events as a Mermaid sequence diagram and as SVG.

Rendering is checked on hand-made chains (alerts, retries, failures, human notes, days, limits) and on
hostile caller text; the use case and the route run over the in-memory ports."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import pytest

from handoff.domain.auth import Caller
from handoff.domain.errors import NotFound
from handoff.domain.models import AuditEvent
from handoff.domain.timeline import (
    MAX_STEPS,
    ChainHandoff,
    ChainTimeline,
    Message,
    Note,
    safe_label,
    sequence,
    timeline_view,
    to_mermaid,
)
from handoff.domain.timeline_svg import to_svg
from handoff.entrypoints import http_api, responses
from handoff.entrypoints.mcp_tools import TOOLS, NoArguments
from handoff.entrypoints.openapi import openapi_document
from tests.unit.conftest import CHECKOUT, OPERATOR, OPS, PAYMENTS, World, handback_body, handoff_body

T0 = datetime(2026, 11, 21, 2, 10, 0, tzinfo=UTC)
ROOT = "11111111-1111-4111-8111-111111111111"
CHILD = "22222222-2222-4222-8222-222222222222"
HOSTILE = [
    "x -->> y",
    '%%{init: {"theme": "forest", "securityLevel": "loose"}}%%',
    "click A call evil()",
    "<script>alert(1)</script>",
    'first line\nclick B href "javascript:alert(1)"\nNote over B: fake',
    'semi; colon # hash & amp `tick` "quote" <br/> {brace} [link](http://x) |pipe| \\slash',
    "\x1b]0;title\x07 \u202eevil\u202c zero\u200bwidth",
]
# Every line the Mermaid source may have: the header, participants, messages and notes, with labels in
# the safe character set.
LABEL = r"[\w .,:/()'?!@=+*-]*"
GRAMMAR = re.compile(
    rf"^(sequenceDiagram"
    rf"|    participant [A-Z][0-9]* as {LABEL}"
    rf"|    [A-Z][0-9]*(->>|-->>|-x)[A-Z][0-9]*: {LABEL}"
    rf"|    Note over [A-Z][0-9]*(,[A-Z][0-9]*)?: {LABEL})$"
)


def event(seq: int, type: str, minutes: float = 0, actor: str = "broker", /, **details: Any) -> AuditEvent:
    return AuditEvent(seq=seq, at=T0 + timedelta(minutes=minutes), type=type, actor=actor, details=details)


def handoff(
    handoff_id: str = ROOT,
    source: str = "ops",
    target: str = "checkout",
    events: tuple[AuditEvent, ...] = (),
    **extra: Any,
) -> ChainHandoff:
    values: dict[str, Any] = {
        "id": handoff_id,
        "source": source,
        "target": target,
        "parent_id": None,
        "status": "delivered",
        "intent": "investigate",
        "title": "Exception burst in checkout-api",
        "created_at": T0,
        "events": events,
    }
    values.update(extra)
    return ChainHandoff(**values)


def chain(*handoffs: ChainHandoff) -> ChainTimeline:
    return ChainTimeline(handoff_id=handoffs[-1].id, root_id=handoffs[0].id, handoffs=handoffs)


def assert_safe_mermaid(source: str) -> None:
    lines = source.splitlines()
    assert lines[0] == "sequenceDiagram"
    assert [line for line in lines if not GRAMMAR.match(line)] == []
    assert "%%" not in source and "{" not in source and "<" not in source and ";" not in source
    assert "#" not in source and "`" not in source and '"' not in source and "&" not in source
    assert not any(line.strip().lower().startswith(("click", "link", "%%")) for line in lines)


# ---------------------------------------------------------------- labels


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain words", "plain words"),
        ("a -->> b", "a - b"),
        ("line one\nline two", "line one line two"),
        ("Überlastung in Zürich", "Überlastung in Zürich"),
        ("%%{init}%%", "init"),
        ("", ""),
    ],
)
def test_a_label_is_one_line_of_safe_characters(text: str, expected: str) -> None:
    assert safe_label(text) == expected


def test_a_long_label_is_cut_and_says_so() -> None:
    label = safe_label("word " * 50, 20)
    assert len(label) <= 20 and label.endswith("...")


# ---------------------------------------------------------------- the diagram


def test_a_chain_shows_every_agent_the_broker_and_each_step_with_its_time() -> None:
    root = handoff(
        events=(
            event(1, "accepted", 0, "agentKey:ops"),
            event(2, "deliveryAttempt", 0.1, attempt=1, mode="thread"),
            event(
                3, "retryScheduled", 0.2, op="deliver", attempt=1, reason="503 from agent", delaySeconds=2.0
            ),
            event(4, "deliveryAttempt", 0.3, attempt=2, mode="thread"),
            event(5, "delivered", 0.4, threadId="t-9"),
            event(6, "crossLinked", 0.5),
            event(9, "handBackReceived", 30, agent="checkout", outcome="rootCauseFound", seq=1),
            event(10, "handedBack", 30.1, seq=1),
        ),
        handback_summaries={1: "Pool size halved by the new config"},
    )
    child = handoff(
        CHILD,
        source="checkout",
        target="payments",
        parent_id=ROOT,
        created_at=T0 + timedelta(minutes=5),
        events=(
            event(1, "accepted", 5, "agentKey:checkout"),
            event(2, "deliveryFailed", 5.5, reason="400 from agent: bad request"),
        ),
    )
    source = to_mermaid(sequence(chain(root, child)))
    assert_safe_mermaid(source)
    lines = source.splitlines()
    assert lines[1:5] == [
        "    participant A1 as ops",
        "    participant B as Broker",
        "    participant A2 as checkout",
        "    participant A3 as payments",
    ]
    assert lines[5] == "    Note over B: 2026-11-21 (UTC), chain 11111111"
    assert lines[6] == (
        "    A1->>B: 02:10:00 handoff 11111111 (investigate) to checkout: Exception burst in checkout-api"
    )
    assert "    B-xA2: 02:10:12 retry deliver in 2.0s (attempt 1 failed: 503 from agent)" in lines
    assert "    B->>A2: 02:10:24 delivered 11111111, thread t-9" in lines
    assert "    B-->>A1: 02:10:30 cross-link to the target's thread" in lines
    assert "    A2->>B: 02:15:00 handoff 22222222 (investigate) to payments, continues 11111111: " in source
    assert "    B-xA3: 02:15:30 delivery failed: 400 from agent: bad request" in lines
    assert "    A2->>B: 02:40:00 hand-back 1 (rootCauseFound): Pool size halved by the new config" in lines
    assert lines[-1] == "    B-->>A1: 02:40:06 hand-back 1 posted"


def test_an_alert_started_chain_has_azure_monitor_and_keeps_hand_backs_without_a_source_thread() -> None:
    root = handoff(
        source="azure-monitor",
        events=(
            event(1, "accepted", 0, "system", alertRule="High CPU"),
            event(2, "alertFired", 0, "system", alertRule="High CPU", severity="Sev1"),
            event(3, "delivered", 0.5, threadId="t-1"),
            event(4, "handedBack", 9, seq=1, posted=False),
            event(5, "alertResolved", 10, "system", alertRule="High CPU"),
        ),
    )
    diagram = sequence(chain(root))
    assert [(p.key, p.label) for p in diagram.participants] == [
        ("M", "Azure Monitor"),
        ("B", "Broker"),
        ("A1", "checkout"),
    ]
    source = to_mermaid(diagram)
    assert_safe_mermaid(source)
    assert "    M->>B: 02:10:00 alert fired: High CPU (Sev1)" in source
    assert "    Note over B: 02:19:00 hand-back 1 kept (no source thread)" in source
    assert "    M->>B: 02:20:00 alert resolved: High CPU" in source


def test_human_notes_span_the_agents_and_unknown_events_are_notes_over_the_broker() -> None:
    root = handoff(
        events=(
            event(1, "humanNote", 1, "github:octocat", backend="github"),
            event(2, "somethingNew", 2),
            event(3, "sharedMemoryAttempt", 3, backend="github"),  # too fine-grained: left out
        )
    )
    steps = sequence(chain(root)).steps
    assert steps[1:] == (
        Note(("A1", "A2"), "02:11:00 human note by github:octocat (github)"),
        Note(("B",), "02:12:00 somethingNew"),
    )


def test_a_new_day_gets_a_note_and_a_huge_audit_is_cut_with_a_count() -> None:
    events = tuple(event(i, "deliveryAttempt", i * 4, attempt=i, mode="thread") for i in range(1, 900))
    steps = sequence(chain(handoff(events=events))).steps
    days = [s for s in steps if isinstance(s, Note) and "(UTC)" in s.label]
    assert [d.label[:10] for d in days] == ["2026-11-21", "2026-11-22"]
    assert len(steps) == MAX_STEPS + 1
    assert steps[-1] == Note(
        ("B",), f"{899 - (MAX_STEPS - 2)} more events not shown: see each handoff's audit"
    )


@pytest.mark.parametrize("hostile", HOSTILE)
def test_caller_text_cannot_add_mermaid_statements(hostile: str) -> None:
    root = handoff(
        title=hostile,
        events=(
            event(1, "accepted", 0),
            event(2, "deliveryFailed", 1, reason=hostile),
            event(3, "humanNote", 2, f"github:{hostile}", backend=hostile),
            event(4, "handBackReceived", 3, seq=1, outcome=hostile),
            event(5, "alertFired", 4, alertRule=hostile, severity=hostile),
        ),
        handback_summaries={1: hostile},
    )
    diagram = sequence(chain(root))
    assert_safe_mermaid(to_mermaid(diagram))
    for step in diagram.steps:
        assert "\n" not in step.label and len(step.label) <= 200


@pytest.mark.parametrize("hostile", HOSTILE)
def test_the_svg_is_well_formed_and_holds_caller_text_only_as_escaped_text(hostile: str) -> None:
    root = handoff(
        title=hostile,
        events=(event(1, "accepted", 0), event(2, "deliveryFailed", 1, reason=hostile)),
    )
    svg = to_svg(sequence(chain(root)))
    document = ET.fromstring(svg)  # well-formed XML
    tags = {element.tag.split("}")[1] for element in document.iter()}
    assert tags <= {"svg", "title", "defs", "marker", "path", "rect", "line", "text"}
    for element in document.iter():
        assert not any(name.lower().startswith("on") or "href" in name for name in element.attrib)
    assert "<script" not in svg.lower()


def test_the_svg_draws_columns_arrows_and_notes() -> None:
    root = handoff(events=(event(1, "accepted", 0), event(2, "deliveryFailed", 1, reason="boom")))
    diagram = sequence(chain(root))
    document = ET.fromstring(to_svg(diagram))
    texts = [element.text for element in document.iter("{http://www.w3.org/2000/svg}text")]
    assert texts.count("Broker") == 2  # a box at the top and at the bottom
    assert "02:11:00 delivery failed: boom" in texts
    messages = [s for s in diagram.steps if isinstance(s, Message)]
    assert [m.style for m in messages] == ["solid", "failed"]
    width = float(document.attrib["width"])
    assert width > 2 * 150  # three columns at least the minimum gap apart


# ---------------------------------------------------------------- the use case


def _chain(world: World) -> tuple[str, str]:
    root = world.hand_off()
    thread = world.state(root).target_thread_id
    body = handoff_body(thread, source="checkout", target="payments", parentHandoffId=root)
    child, _ = world.accept(body, CHECKOUT)
    world.run()
    return root, child.id


def test_the_timeline_holds_the_root_and_every_child_with_their_audits(world: World) -> None:
    root, child = _chain(world)
    world.hand_back(child, handback_body("payments", summary="Found it"), PAYMENTS)
    world.run()
    for asked in (root, child):
        timeline = world.queries.timeline(asked, OPS)
        assert timeline.handoff_id == asked and timeline.root_id == root
        assert [h.id for h in timeline.handoffs] == [root, child]
        assert [e.type for e in timeline.handoffs[1].events] == world.events(child)
    source = to_mermaid(sequence(world.queries.timeline(root, OPERATOR)))
    assert_safe_mermaid(source)
    assert "hand-back 1 (mitigated): Found it" in source


def test_the_timeline_is_hidden_from_callers_outside_the_chain_like_a_missing_handoff(world: World) -> None:
    root, child = _chain(world)
    assert world.queries.timeline(child, PAYMENTS).root_id == root  # payments joined the chain
    outsider = world.hand_off(source="audit", target="ops")
    with pytest.raises(NotFound) as hidden:
        world.queries.timeline(root, Caller("agentKey", name="audit"))
    with pytest.raises(NotFound) as missing:
        world.queries.timeline("00000000-0000-4000-8000-000000000000", OPS)
    assert hidden.value.detail.startswith("no handoff with id") and missing.value.detail.startswith(
        "no handoff with id"
    )
    assert world.queries.timeline(outsider, OPS).handoffs[0].id == outsider


def test_the_json_view_lists_the_chain_and_carries_the_mermaid(world: World) -> None:
    root, child = _chain(world)
    timeline = world.queries.timeline(child, OPS)
    view = timeline_view(timeline, sequence(timeline)).to_wire()
    assert view["handoffId"] == child and view["rootHandoffId"] == root
    assert [(h["id"], h.get("parentHandoffId")) for h in view["handoffs"]] == [(root, None), (child, root)]
    assert view["mermaid"].startswith("sequenceDiagram\n")


# ---------------------------------------------------------------- the routes


def _route(monkeypatch: pytest.MonkeyPatch, world: World, builder: Any) -> Callable[..., func.HttpResponse]:
    monkeypatch.setattr(http_api, "get_handoffs", lambda: world.handoffs)
    monkeypatch.setattr(responses, "caller_of", lambda req, rate_limited=True: OPS)
    function: Callable[..., func.HttpResponse] = builder._function.get_user_function()
    return function


def _get(route: Callable[..., func.HttpResponse], handoff_id: str, **params: str) -> func.HttpResponse:
    url = f"http://localhost/api/handoffs/{handoff_id}/timeline"
    return route(func.HttpRequest("GET", url, body=b"", params=params, route_params={"id": handoff_id}))


def test_the_route_answers_mermaid_svg_or_json_as_format_says(
    monkeypatch: pytest.MonkeyPatch, world: World
) -> None:
    handoff_id = world.hand_off()
    route = _route(monkeypatch, world, http_api.get_handoff_timeline)
    mermaid = _get(route, handoff_id)
    assert (mermaid.status_code, mermaid.mimetype) == (200, "text/vnd.mermaid")
    assert mermaid.get_body().decode().startswith("sequenceDiagram\n")
    svg = _get(route, handoff_id, format="svg")
    assert (svg.status_code, svg.mimetype) == (200, "image/svg+xml")
    assert svg.headers["Content-Security-Policy"].startswith("default-src 'none'")
    ET.fromstring(svg.get_body())
    answer = _get(route, handoff_id, format="json")
    assert json.loads(answer.get_body())["mermaid"] == mermaid.get_body().decode().rstrip("\n")
    bad = _get(route, handoff_id, format="png")
    assert (bad.status_code, bad.mimetype) == (400, "application/problem+json")
    assert json.loads(bad.get_body())["errors"][0]["field"] == "format"
    missing = _get(route, "00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404


def test_the_agents_route_lists_what_the_mcp_tool_lists(
    monkeypatch: pytest.MonkeyPatch, world: World
) -> None:
    route = _route(monkeypatch, world, http_api.list_agents)
    answer = route(func.HttpRequest("GET", "http://localhost/api/agents", body=b""))
    tool = next(t for t in TOOLS if t.name == "handoff_list_agents")
    expected = tool.run(world.handoffs, OPS, NoArguments()).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    assert answer.status_code == 200 and json.loads(answer.get_body()) == expected
    assert "checkout" in [agent["name"] for agent in expected["agents"]]


def test_the_openapi_document_describes_the_new_routes() -> None:
    paths = openapi_document()["paths"]
    timeline = paths["/api/handoffs/{id}/timeline"]["get"]
    assert set(timeline["responses"]["200"]["content"]) == {
        "text/vnd.mermaid",
        "image/svg+xml",
        "application/json",
    }
    assert {"400", "404", "401", "403"} <= set(timeline["responses"])
    assert paths["/api/agents"]["get"]["operationId"] == "listAgents"
