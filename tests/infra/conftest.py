"""Prints the checkov figures of tests/infra/test_checkov.py at the end of the run."""

from __future__ import annotations

from typing import Any

from tests.infra import test_checkov


def pytest_terminal_summary(terminalreporter: Any) -> None:
    scan = test_checkov.LAST_SCAN.get("infra")
    if scan is None:
        return
    summary = scan.report["summary"]
    skipped = sorted({check_id for check_id, _, _ in scan.ids("skipped")})
    terminalreporter.write_sep("-", "checkov")
    terminalreporter.write_line(
        f"checkov {summary['checkov_version']} on infra/ (bicep, offline, {scan.seconds:.1f} s): "
        f"checks passed {summary['passed']}; failed {summary['failed']}; "
        f"skipped with a reason {summary['skipped']} ({', '.join(skipped)}); "
        f"parsing errors {summary['parsing_errors']}; network attempts {len(scan.network_attempts)}"
    )
