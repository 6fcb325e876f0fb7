"""Security figures of one test run: attacks tried per kind, and counts the tests record (fuzz cases,
server errors, secrets caught). Printed at the end of the run; ``docs/security.md`` quotes them."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

# nodeid -> attack kind, from ``@pytest.mark.attack("<kind>")``
ATTACKS: dict[str, str] = {}
# name -> number, recorded by tests through the ``security_figures`` fixture
FIGURES: dict[str, int] = {}


def collect(items: list[pytest.Item]) -> None:
    """Remember which collected tests are attacks, and of which kind."""
    for item in items:
        marker = item.get_closest_marker("attack")
        if marker is not None:
            ATTACKS[item.nodeid] = str(marker.args[0]) if marker.args else "other"


def export() -> dict[str, Any]:
    """What this process counted, for the process that prints the summary (a test worker hands it over)."""
    return {"attacks": dict(ATTACKS), "figures": dict(FIGURES)}


def merge(exported: dict[str, Any]) -> None:
    """Add what a test worker counted: every worker collects every test, each test runs in one worker."""
    ATTACKS.update(exported.get("attacks", {}))
    for name, value in exported.get("figures", {}).items():
        FIGURES[name] = FIGURES.get(name, 0) + int(value)


def summary(reporter: Any) -> None:
    """Print the figures: attacks passed per kind (an attack test passes when the attack fails)."""
    passed = {report.nodeid for report in reporter.stats.get("passed", []) if report.when == "call"}
    tried = Counter(ATTACKS.values())
    held = Counter(kind for nodeid, kind in ATTACKS.items() if nodeid in passed)
    if not tried and not FIGURES:
        return
    reporter.section("security figures")
    for kind in sorted(tried):
        reporter.write_line(f"attack tests {kind}: {held[kind]} of {tried[kind]} held")
    for name in sorted(FIGURES):
        reporter.write_line(f"{name}: {FIGURES[name]}")
