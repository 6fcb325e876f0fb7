"""The conformance kit runs only against a broker whose registry names its simulated agents: the
scenarios hand off and hand back for real, so against real agents they would leave real handoffs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from handoff_conformance import SimulatedAgents
from handoff_conformance.runner import NotSimulated, Options, check_simulated

KIT = SimulatedAgents()


def _broker(agents: list[dict[str, Any]], status: int = 200) -> httpx.Client:
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        if request.method != "GET" or request.url.path != "/api/agents":
            raise AssertionError(f"the kit called {request.method} {request.url.path} before its check")
        return httpx.Response(status, json={"agents": agents})

    return httpx.Client(base_url="http://broker.test", transport=httpx.MockTransport(answer))


def _entry(name: str, resource_id: str | None = None) -> dict[str, Any]:
    return {"name": name, "resourceId": resource_id or KIT.resource_id(name), "delivery": "thread"}


def test_the_kit_s_own_agents_pass_the_check() -> None:
    check_simulated(_broker([_entry(KIT.source_name), _entry(KIT.target_name), _entry("ops", "/x")]), KIT)


@pytest.mark.parametrize(
    ("agents", "status"),
    [
        ([_entry("ops", "/subscriptions/1/resourceGroups/prod/providers/Microsoft.App/agents/ops")], 200),
        ([_entry(KIT.source_name)], 200),  # the target is missing
        ([_entry(KIT.source_name), _entry(KIT.target_name, "/subscriptions/1/agents/real")], 200),
        ([], 401),
    ],
)
def test_a_broker_that_does_not_name_them_is_refused(agents: list[dict[str, Any]], status: int) -> None:
    real = SimulatedAgents("ops", "checkout") if agents and agents[0]["name"] == "ops" else KIT
    with pytest.raises(NotSimulated):
        check_simulated(_broker(agents, status), real)


def test_the_command_takes_the_broker_s_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from handoff_conformance import cli

    seen: list[Options] = []
    monkeypatch.setattr(cli, "run", lambda options, agents, on_result=None: seen.append(options) or [])
    monkeypatch.setenv("HANDOFF_KEY", "function-key-from-env")
    monkeypatch.setenv("HANDOFF_AGENT_KEY", "agent-key-from-env")

    assert cli.main(["http://broker.test"]) == 0
    assert cli.main(["http://broker.test", "-H", "X-Functions-Key: given"]) == 0

    assert seen[0].headers == {
        "x-functions-key": "function-key-from-env",
        "X-Handoff-Agent-Key": "agent-key-from-env",
    }
    assert seen[1].headers == {"X-Functions-Key": "given", "X-Handoff-Agent-Key": "agent-key-from-env"}
