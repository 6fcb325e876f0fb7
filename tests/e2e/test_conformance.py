"""The conformance kit (handoff_conformance) against the local broker: every scenario passes; and
against brokers with a planted bug (tests/support/planted_bugs.py), each scenario fails on the bug it
is there to catch. The command and the pytest plugin are run once each, as a partner would run them."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from handoff_conformance import SCENARIOS, Options, run
from tests.support.planted_bugs import BUGS, BuggyBroker

ROOT = Path(__file__).resolve().parents[2]
CASES = [(bug, scenario) for bug, scenarios in BUGS.items() for scenario in scenarios]
QUICK = ("idempotent-replay", "bad-input-bad-severity")  # need no delivery to the kit's own agents


def test_every_scenario_is_planted_a_bug():
    assert {scenario for _, scenario in CASES} == set(SCENARIOS)


def test_the_local_broker_passes_every_scenario(broker, conformance_agents):
    results = run(Options(broker.url, timeout=20), conformance_agents)

    assert [r.name for r in results] == list(SCENARIOS)
    assert [(r.name, r.detail) for r in results if not r.passed] == []


@pytest.mark.parametrize(("bug", "scenario"), CASES, ids=[f"{b}-{s}" for b, s in CASES])
def test_each_planted_bug_fails_its_scenario(broker, conformance_agents, bug, scenario):
    buggy = BuggyBroker(broker.url, bug)
    try:
        (result,) = run(Options(buggy.url, timeout=5, only=(scenario,)), conformance_agents)
    finally:
        buggy.stop()

    assert not result.passed, f"{scenario} passed against a broker that has the bug {bug}"


def _kit(*args: str) -> subprocess.CompletedProcess[str]:
    ports = ("--source-port", "0", "--target-port", "0")  # these agents are never delivered to
    return subprocess.run(
        [sys.executable, "-m", "handoff_conformance", *args, *ports],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_command_prints_a_table_and_exits_by_the_verdict(broker):
    only = [arg for name in QUICK for arg in ("--only", name)]
    passed = _kit(broker.url, *only)
    buggy = BuggyBroker(broker.url, "ignore-idempotency")
    try:
        failed = _kit(buggy.url, *only)
    finally:
        buggy.stop()

    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "2 passed, 0 failed" in passed.stdout
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "FAIL" in failed.stdout and "1 passed, 1 failed" in failed.stdout


def test_the_command_refuses_agents_that_are_not_its_simulated_ones(broker):
    started = datetime.now(UTC) - timedelta(seconds=5)

    refused = _kit(broker.url, "--source-agent", "ops", "--target-agent", "checkout")

    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "'ops' and 'checkout'" in refused.stderr and "PASS" not in refused.stdout
    listed = httpx.get(
        f"{broker.url}/api/handoffs", params={"since": started.isoformat(), "source": "ops", "top": "100"}
    )
    assert listed.status_code == 200
    assert [i for i in listed.json()["items"] if i["title"].startswith("Conformance ")] == []


def test_the_command_prints_the_registry_entries_it_needs():
    result = _kit("--print-registry", "--source-agent", "a", "--target-agent", "b")
    assert result.returncode == 0, result.stderr
    assert '"name": "a"' in result.stdout and '"allowInsecureLocal": true' in result.stdout


def test_the_pytest_plugin_runs_each_scenario_as_a_test(broker, tmp_path):
    result = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "handoff_conformance.pytest_plugin",
            "-p", "no:cacheprovider", "--conformance-url", broker.url,
            "--conformance-source-port", "0", "--conformance-target-port", "0",
            *[arg for name in QUICK for arg in ("--conformance-only", name)], "-q", str(tmp_path),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_the_command_is_declared_in_the_project():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'handoff-conformance = "handoff_conformance.cli:main"' in text
    # Named as its module, so `-p handoff_conformance.pytest_plugin` finds it already loaded when installed.
    assert '"handoff_conformance.pytest_plugin" = "handoff_conformance.pytest_plugin"' in text
