"""Fixtures: one running fake stack per session, reset before each test, and managed-identity tokens
obtained through azure-identity's real code path."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from azure.identity import ManagedIdentityCredential

from devserver.fakes.stack import FakeStack, start_fake_stack

SRE_SCOPE = "https://azuresre.dev/.default"
APP_ID_SCOPE = "59f0a04a-b322-4310-adc9-39ac41e9631e/.default"
ARM_SCOPE = "https://management.azure.com/.default"


@pytest.fixture(scope="session")
def running_stack() -> Iterator[FakeStack]:
    stack = start_fake_stack(("ops", "checkout"))
    yield stack
    stack.stop()


@pytest.fixture
def stack(running_stack: FakeStack, monkeypatch: pytest.MonkeyPatch) -> FakeStack:
    """The shared stack, clean, with the managed-identity variables pointing at its token endpoint."""
    running_stack.reset()
    for agent in running_stack.agents.values():
        agent.set_auto_reply(False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", running_stack.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", running_stack.identity_header)
    return running_stack


@pytest.fixture
def credential(stack: FakeStack) -> ManagedIdentityCredential:
    """A fresh credential (azure-identity caches tokens per credential instance)."""
    return ManagedIdentityCredential()


@pytest.fixture
def token(credential: ManagedIdentityCredential) -> Callable[[str], str]:
    """``token(scope)`` -> an access token from the fake endpoint via azure-identity."""

    def get(scope: str = SRE_SCOPE) -> str:
        return credential.get_token(scope).token

    return get


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    """One client for the session (creating its TLS context is comparatively slow)."""
    with httpx.Client(timeout=5.0) as client:
        yield client


@pytest.fixture
def auth(token: Callable[[str], str]) -> Callable[..., dict[str, str]]:
    """``auth(scope)`` -> Authorization header dict."""

    def headers(scope: str = SRE_SCOPE) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(scope)}"}

    return headers
