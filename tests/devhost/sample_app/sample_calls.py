"""Records which sample functions ran (the registration test checks that none did)."""

from __future__ import annotations

CALLS: list[str] = []


def record_call(name: str) -> None:
    """Remember that ``name`` was invoked."""
    CALLS.append(name)
