"""Managed-identity tokens kept per scope until five minutes before they expire, across threads, and
the SRE Agent gateway using them (one token request for many calls; a refused token is not reused)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from handoff.adapters.sre_agent import SreAgentGateway
from handoff.adapters.token_cache import REFRESH_BEFORE_SECONDS, TokenCache
from handoff.domain.records import AgentCallError
from handoff.domain.registry import AgentConfig
from handoff.settings import Settings

NOW = 1_800_000_000.0
AGENT = AgentConfig.model_validate(
    {
        "name": "ops",
        "resourceId": "/subscriptions/0/resourceGroups/rg/providers/Microsoft.App/agents/ops",
        "endpoint": "https://ops.eastus2.azuresre.ai",
    }
)


class Credential:
    """Hands out numbered tokens that live ``lifetime`` seconds (no ``expires_on`` when None)."""

    def __init__(self, lifetime: float | None = 3600, delay: float = 0.0) -> None:
        self.lifetime = lifetime
        self.delay = delay
        self.asked: list[str] = []
        self.now = NOW
        self._lock = threading.Lock()

    def get_token(self, *scopes: str) -> Any:
        time.sleep(self.delay)
        with self._lock:
            self.asked.append(scopes[0])
            number = len(self.asked)
        if self.lifetime is None:
            return SimpleNamespace(token=f"token-{number}")
        return SimpleNamespace(token=f"token-{number}", expires_on=int(self.now + self.lifetime))


def _cache(credential: Credential) -> TokenCache:
    return TokenCache(credential, now=lambda: credential.now)


def test_a_token_is_reused_until_five_minutes_before_it_expires() -> None:
    credential = Credential(lifetime=3600)
    cache = _cache(credential)
    assert cache.get("scope-a") == "token-1"
    credential.now = NOW + 3600 - REFRESH_BEFORE_SECONDS - 1
    assert cache.get("scope-a") == "token-1"
    credential.now = NOW + 3600 - REFRESH_BEFORE_SECONDS
    assert cache.get("scope-a") == "token-2"
    assert credential.asked == ["scope-a", "scope-a"]


def test_tokens_are_kept_per_scope() -> None:
    credential = Credential()
    cache = _cache(credential)
    assert [cache.get("a"), cache.get("b"), cache.get("a"), cache.get("b")] == [
        "token-1",
        "token-2",
        "token-1",
        "token-2",
    ]


def test_a_token_without_an_expiry_or_about_to_expire_is_not_kept() -> None:
    credential = Credential(lifetime=None)
    cache = _cache(credential)
    assert [cache.get("a"), cache.get("a")] == ["token-1", "token-2"]
    short = Credential(lifetime=REFRESH_BEFORE_SECONDS)
    cache = _cache(short)
    assert [cache.get("a"), cache.get("a")] == ["token-1", "token-2"]


def test_a_forgotten_token_is_fetched_again() -> None:
    credential = Credential()
    cache = _cache(credential)
    cache.get("a")
    cache.forget("a")
    assert cache.get("a") == "token-2"


def test_threads_wanting_the_same_scope_fetch_it_once() -> None:
    credential = Credential(delay=0.05)
    cache = _cache(credential)
    got: list[str] = []

    def worker() -> None:
        got.append(cache.get("a"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got == ["token-1"] * 8 and credential.asked == ["a"]


def test_the_sre_agent_gateway_asks_for_a_token_once_for_many_calls() -> None:
    credential = Credential()
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(200, json={"id": "t-1", "lastMessage": None})

    agents = SreAgentGateway(Settings(), credential, httpx.Client(transport=httpx.MockTransport(answer)))
    for _ in range(3):
        agents.get_thread(AGENT, "t-1")
    assert seen == ["Bearer token-1"] * 3 and len(credential.asked) == 1


def test_a_refused_token_is_not_offered_again() -> None:
    credential = Credential()
    statuses = iter([401, 401, 200, 200])

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(statuses), json={"id": "t-1"})

    agent = AGENT.model_copy(update={"fallback_token_scope": None})
    agents = SreAgentGateway(Settings(), credential, httpx.Client(transport=httpx.MockTransport(answer)))
    for _ in range(2):
        with pytest.raises(AgentCallError):
            agents.get_thread(agent, "t-1")
    agents.get_thread(agent, "t-1")
    assert len(credential.asked) == 3  # a new token after each refusal, then kept
    agents.get_thread(agent, "t-1")
    assert len(credential.asked) == 3
