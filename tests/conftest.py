"""Shared fixtures: a real Azurite for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devserver.azurite import Azurite, start_azurite


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """A real Azurite on free ports, started once per test session."""
    instance = start_azurite()
    yield instance
    instance.stop()
