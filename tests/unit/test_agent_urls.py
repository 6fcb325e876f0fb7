"""Agent URLs are built one way (handoff.adapters.http.safe_url): ids are single path segments, always.

The gateway tests run the real SreAgentGateway over the real egress transport with an injected
resolver and an ``httpx.MockTransport`` standing in for the agent, so every URL the gateway builds is
seen exactly as it would leave the process.
"""

from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import unquote

import httpx
import pytest

from handoff.adapters.egress import EgressPolicy, EgressTransport
from handoff.adapters.http import safe_url
from handoff.adapters.sre_agent import SreAgentGateway, agent_url
from handoff.domain.records import AgentCallError
from handoff.domain.registry import Registry
from handoff.settings import Settings

BASE = "https://ops--1a2b.abc.eastus2.azuresre.ai"
RID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.App/agents/{}"
)

# Every shape of the attacks found against the unencoded thread ids.
HOSTILE = [
    "../approvals/8f0c/approve?x=",
    "t/../../x",
    "t?x=1",
    "t\x00x",
    "t\nx",
    "t#x",
    "?",
    "t x",
    "a" * 5000,
    "%2e%2e",
    "%2F..%2F",
    "t\\..\\x",
    "t;x=1",
    "t@evil.example",
    "t:80",
]


def segments_of(url: str) -> list[str]:
    parsed = httpx.URL(url)
    assert parsed.query == b"" and parsed.fragment == ""
    return [unquote(part) for part in parsed.raw_path.decode("ascii").split("/")[1:]]


@pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
def test_a_hostile_segment_stays_one_segment_of_the_intended_path(hostile):
    url = safe_url(BASE, "api", "v1", "threads", hostile, "messages")
    assert url.startswith(f"{BASE}/api/v1/threads/")
    assert segments_of(url) == ["api", "v1", "threads", hostile, "messages"]
    assert httpx.URL(url).host == httpx.URL(BASE).host


@pytest.mark.parametrize("bad", ["", ".", "..", "a" * 100_000])
def test_segments_that_normalisation_would_remove_or_that_are_too_long_are_refused(bad):
    with pytest.raises(ValueError, match=r"cannot be a URL path segment|longer than 8192"):
        safe_url(BASE, "api", "v1", "threads", bad, "messages")
    with pytest.raises(AgentCallError) as info:
        agent_url(BASE, "api", "v1", "threads", bad)
    assert info.value.transient is False


@pytest.mark.parametrize(
    "base", ["ops.azuresre.ai", "https://x.azuresre.ai/?a=1", "https://x.azuresre.ai/#f", "ftp://x"]
)
def test_the_base_must_be_an_absolute_url_without_query_or_fragment(base):
    with pytest.raises(ValueError, match="base URL"):
        safe_url(base, "api")


def test_the_base_path_is_kept_and_the_query_is_encoded_like_httpx_params():
    url = safe_url("https://ghe.example.com/api/v3/", "repos", "o", "r", query={"$top": "50", "q": "a b&c"})
    assert url == "https://ghe.example.com/api/v3/repos/o/r?%24top=50&q=a+b%26c"


# ---------------------------------------------------------------- the gateway


class Agent:
    """Stands in for the SRE Agent behind the MockTransport: records requests, answers ``answers``."""

    def __init__(self, answers: dict[tuple[str, str], object] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answers = answers or {}

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = (request.method, request.url.path)
        body = self.answers.get(key, self.answers.get((request.method, "*"), {"value": []}))
        return httpx.Response(200, json=body)

    def paths(self) -> list[str]:
        return [request.url.raw_path.decode("ascii") for request in self.requests]


class Credential:
    def get_token(self, *scopes: str) -> SimpleNamespace:
        return SimpleNamespace(token="t0ken")


def gateway(agent: Agent, entry: dict | None = None) -> tuple[SreAgentGateway, object]:
    registry = Registry.from_data(
        {"agents": [entry or {"name": "ops", "resourceId": RID.format("ops"), "endpoint": BASE}]}
    )
    policy = EgressPolicy(resolver=lambda host, port: ["20.42.65.92"])
    client = httpx.Client(transport=EgressTransport(policy, inner=lambda: httpx.MockTransport(agent.handler)))
    return SreAgentGateway(Settings.from_env({}), Credential(), client), registry.by_name("ops")


@pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
def test_the_gateway_cannot_be_steered_by_a_thread_id(hostile):
    """Belt and braces: even an id that skipped validation (an old stored record) stays one segment."""
    agent = Agent()
    gw, ops = gateway(agent)
    gw.post_message(ops, hostile, "hello")
    gw.list_messages(ops, hostile)
    agent.answers[("GET", "*")] = {"id": "x"}
    gw.get_thread(ops, hostile)
    encoded = httpx.URL(safe_url(BASE, hostile)).raw_path.decode("ascii")
    assert agent.paths()[0] == f"/api/v1/threads{encoded}/messages"
    assert agent.paths()[1].startswith(f"/api/v1/threads{encoded}/messages?%24top=50")
    assert agent.paths()[2] == f"/api/v1/threads{encoded}"
    for request in agent.requests:
        parts = segments_of(str(request.url.copy_with(query=None)))
        assert parts[:4] == ["api", "v1", "threads", hostile]
        assert "approvals" not in request.url.raw_path.decode("ascii").split("?")[0].split("/")


@pytest.mark.parametrize("bad", ["..", ".", "", "a" * 100_000])
def test_the_gateway_refuses_ids_that_cannot_be_a_segment_before_any_request(bad):
    agent = Agent()
    gw, ops = gateway(agent)
    with pytest.raises(AgentCallError) as info:
        gw.post_message(ops, bad, "hello")
    assert info.value.transient is False and agent.requests == []


@pytest.mark.parametrize("answered", ["../approvals/1/approve?x=", "t/x", "t?x=1", "a" * 300, "..", 42])
def test_thread_ids_from_agents_are_checked_before_they_are_used(answered):
    agent = Agent(
        {
            ("POST", "/api/v1/threads"): {"id": answered},
            ("GET", "/api/v1/threads"): {"value": [{"id": answered, "title": "[Handoff h-1] x"}]},
        }
    )
    gw, ops = gateway(agent)
    with pytest.raises(AgentCallError, match="unusable thread id") as created:
        gw.create_thread(ops, "start")
    with pytest.raises(AgentCallError, match="unusable thread id") as found:
        gw.find_thread(ops, "h-1")
    assert created.value.transient is False and found.value.transient is False


def test_good_thread_ids_from_agents_are_returned():
    agent = Agent(
        {
            ("POST", "/api/v1/threads"): {"id": "9b1de8e4-5a5e-4a0b-9a5e-0c7f4f1f2c3d"},
            ("GET", "/api/v1/threads"): {"value": [{"id": "t_1.a-B", "title": "[Handoff h-1] x"}]},
        }
    )
    gw, ops = gateway(agent)
    assert gw.create_thread(ops, "start") == "9b1de8e4-5a5e-4a0b-9a5e-0c7f4f1f2c3d"
    assert gw.find_thread(ops, "h-1") == "t_1.a-B"
    assert agent.paths()[1] == "/api/v1/threads?%24orderby=createdTimestamp+desc&%24top=50"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"threadId": "t-1"}, "t-1"),
        ({"execution": {"threadId": "t-2"}}, "t-2"),
        ({"threadId": "../approvals/1/approve?x="}, None),
        ({"execution": {"threadId": "t?x=1"}}, None),
    ],
)
def test_thread_ids_from_trigger_answers_are_checked(answer, expected):
    trigger = f"{BASE}/api/v1/httptriggers/trigger/abc"
    entry = {
        "name": "ops",
        "resourceId": RID.format("ops"),
        "endpoint": BASE,
        "delivery": {"mode": "httpTrigger", "triggerUrl": trigger},
    }
    gw, ops = gateway(Agent({("POST", "/api/v1/httptriggers/trigger/abc"): answer}), entry)
    if expected:
        assert gw.fire_trigger(ops, {"handoffId": "h"}) == expected
    else:
        with pytest.raises(AgentCallError, match="unusable thread id"):
            gw.fire_trigger(ops, {"handoffId": "h"})


def test_the_arm_lookup_url_is_built_from_the_resource_id_segments():
    agent = Agent({("GET", "*"): {"properties": {"agentEndpoint": "ops--1.abc.eastus2.azuresre.ai"}}})
    gw, ops = gateway(agent, {"name": "ops", "resourceId": RID.format("ops")})
    assert gw.endpoint(ops) == "https://ops--1.abc.eastus2.azuresre.ai"
    [lookup] = agent.requests
    assert lookup.headers["host"] == "management.azure.com"
    assert lookup.url.raw_path.decode() == f"{RID.format('ops')}?api-version=2025-05-01-preview"


def test_redirect_answers_are_permanent_failures_and_are_not_followed():
    class Redirecting(Agent):
        def handler(self, request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return httpx.Response(307, headers={"Location": "http://169.254.169.254/metadata/identity"})

    agent = Redirecting()
    gw, ops = gateway(agent)
    with pytest.raises(AgentCallError) as info:
        gw.post_message(ops, "t-1", "hello")
    assert info.value.transient is False and info.value.status == 307
    assert len(agent.requests) == 1
