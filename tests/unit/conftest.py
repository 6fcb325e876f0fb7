"""Unit-test fixtures and the gate on how many unit tests ran."""

from __future__ import annotations

import os

import pytest

# ---------------------------------------------------------------- the count gate
# `make test` sets HANDOFF_MIN_UNIT_TESTS: a unit run that executes fewer tests than that fails, so tests
# that stop being collected (an import error skipped, a renamed file) cannot pass the gate unnoticed.

_MIN_UNIT_TESTS = "HANDOFF_MIN_UNIT_TESTS"
_ran: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        _ran.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    minimum = int(os.environ.get(_MIN_UNIT_TESTS) or 0)
    if len(_ran) >= minimum:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write("\n")
        reporter.write_line(f"{len(_ran)} tests ran, fewer than {_MIN_UNIT_TESTS}={minimum}", red=True)
    if exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
