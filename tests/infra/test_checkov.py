"""checkov scans infra/ with no failed check, every template parsed, every skip justified, offline.

checkov is pinned in requirements-checkov.txt (dependency tree in constraints-checkov.txt) and lives in
its own virtualenv, .venv-checkov, which ``make checkov`` creates and ``make test`` depends on. The test
runs its binary with ``--framework bicep``, JSON output, no platform downloads (``--skip-download``,
``BC_SKIP_MAPPING``), no PyPI version check (``CKV_SKIP_PACKAGE_UPDATE_CHECK``), no API key, a fresh HOME
(so no user config file applies) and a guard that refuses and records any network call (offline/).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.infra import checks
from tests.infra.test_templates import INFRA, REPO

CHECKOV_VENV = REPO / ".venv-checkov"
OFFLINE_GUARD = Path(__file__).resolve().parent / "offline"
#: Upper bound of one scan. A warm run takes about 10 s on the project's 2-core machines, the first run
#: after installing (cold file cache) about a minute.
CHECKOV_TIMEOUT = 240.0
_PIN = re.search(r"^checkov==(\S+)$", (REPO / "requirements-checkov.txt").read_text(), re.MULTILINE)
PINNED_VERSION = _PIN.group(1) if _PIN else "unpinned"


@dataclass
class Scan:
    """One checkov run: its bicep report, the network calls it tried, and how long it took."""

    report: dict[str, Any]
    network_attempts: list[str]
    seconds: float
    results: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.results = self.report.get("results", {})

    def ids(self, kind: str) -> list[tuple[str, str, str]]:
        """(check id, file, resource) of the passed, failed or skipped checks."""
        found = self.results.get(f"{kind}_checks", [])
        return [(c["check_id"], c["file_path"], c["resource"]) for c in found]


#: The latest scan of the real templates, for the terminal summary (tests/infra/conftest.py).
LAST_SCAN: dict[str, Scan] = {}


def checkov_binary(venv: Path = CHECKOV_VENV) -> Path:
    """The checkov executable of ``venv``; fails the test (never skips) when it is not installed."""
    binary = venv / "bin" / "checkov"
    if not binary.is_file():
        pytest.fail(
            f"checkov is not installed ({binary} is missing). Run `make checkov` (`make test` does it), "
            "which installs the version pinned in requirements-checkov.txt into .venv-checkov.",
            pytrace=False,
        )
    return binary


def offline_env(home: Path, network_log: Path) -> dict[str, str]:
    """Environment of a checkov run: nothing inherited but PATH, no API key, no downloads, the guard."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(OFFLINE_GUARD),
        "OFFLINE_GUARD_LOG": str(network_log),
        "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",
        "BC_SKIP_MAPPING": "TRUE",
        "LOG_LEVEL": "WARNING",
    }


def run_checkov(infra_dir: Path, work_dir: Path) -> Scan:
    """Scan ``infra_dir`` with the pinned checkov, offline; ``work_dir`` holds HOME and the guard's log."""
    binary = checkov_binary()
    home = work_dir / "home"
    home.mkdir(parents=True, exist_ok=True)
    network_log = work_dir / "network.log"
    command = [
        str(binary),
        "--directory",
        str(infra_dir),
        "--framework",
        "bicep",
        "--output",
        "json",
        "--skip-download",
    ]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command,
            cwd=home,
            env=offline_env(home, network_log),
            capture_output=True,
            text=True,
            timeout=CHECKOV_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"checkov took longer than {CHECKOV_TIMEOUT:.0f} s", pytrace=False)
    seconds = time.monotonic() - started
    # Exit code 0: no failed check; 1: failed checks (reported in the JSON); anything else: a crash.
    if done.returncode not in (0, 1):
        pytest.fail(f"checkov exited {done.returncode}:\n{done.stderr[-4000:]}", pytrace=False)
    try:
        output = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov printed no JSON report:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    reports = output if isinstance(output, list) else [output]
    report = next((r for r in reports if r.get("check_type") == "bicep"), None)
    if report is None:
        pytest.fail(f"checkov's report has no bicep section: {str(output)[:2000]}")
    attempts = network_log.read_text().splitlines() if network_log.exists() else []
    return Scan(report=report, network_attempts=attempts, seconds=seconds)


def unjustified_skips(scan: Scan) -> list[str]:
    """Skipped checks whose inline suppression gives no reason (or a token one)."""
    found = []
    for check in scan.results.get("skipped_checks", []):
        reason = (check.get("check_result") or {}).get("suppress_comment") or ""
        if reason == "No comment provided" or len(reason.strip()) < checks.MIN_SKIP_REASON:
            found.append(f"{check['check_id']} on {check['resource']} ({check['file_path']}): {reason!r}")
    return found


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Scan:
    """One scan of the real templates, shared by the tests below."""
    result = run_checkov(INFRA, tmp_path_factory.mktemp("checkov"))
    LAST_SCAN["infra"] = result
    return result


@pytest.mark.timeout(CHECKOV_TIMEOUT + 60)
def test_checkov_is_the_pinned_version(scan: Scan) -> None:
    assert scan.report["summary"]["checkov_version"] == PINNED_VERSION


def test_checkov_parses_every_template(scan: Scan) -> None:
    assert scan.results.get("parsing_errors") == []
    assert scan.report["summary"]["resource_count"] > 0
    assert scan.ids("passed")


def test_checkov_finds_no_failed_check(scan: Scan) -> None:
    failed = [f"{check_id} on {resource} ({path})" for check_id, path, resource in scan.ids("failed")]
    assert failed == []


def test_every_checkov_skip_is_justified_inline(scan: Scan) -> None:
    assert unjustified_skips(scan) == []


def test_checkov_runs_offline_within_its_time_bound(scan: Scan) -> None:
    assert scan.network_attempts == []
    assert scan.seconds < CHECKOV_TIMEOUT


@pytest.mark.timeout(CHECKOV_TIMEOUT + 60)
def test_checkov_reports_planted_mistakes(tmp_path: Path) -> None:
    """A template checkov cannot parse, an open storage firewall and a skip without a reason are reported."""
    infra = tmp_path / "infra"
    shutil.copytree(INFRA, infra)
    main = infra / "main.bicep"
    # The construct checkov's parser does not know (a map() lambda), as main.bicep had it.
    text = main.read_text()
    assert "var agentIdItems = [for id in split(sreAgentResourceIdList, ','): trim(id)]" in text
    main.write_text(
        text.replace(
            "var agentIdItems = [for id in split(sreAgentResourceIdList, ','): trim(id)]",
            "var agentIdItems = map(split(sreAgentResourceIdList, ','), id => trim(id))",
        )
    )
    storage = infra / "app" / "storage.bicep"
    lines = storage.read_text().splitlines(keepends=True)
    lines = [line for line in lines if "checkov:skip=CKV_AZURE_35:" not in line]
    text = "".join(lines).replace("defaultAction: vnetEnabled ? 'Deny' : 'Allow'", "defaultAction: 'Allow'")
    text = re.sub(r"// checkov:skip=CKV_AZURE_206:[^\n]*", "// checkov:skip=CKV_AZURE_206", text)
    storage.write_text(text)

    planted = run_checkov(infra, tmp_path / "work")

    assert [Path(p).name for p in planted.results["parsing_errors"]] == ["main.bicep"]
    assert ("CKV_AZURE_35", "/app/storage.bicep", "Microsoft.Storage/storageAccounts.storage") in planted.ids(
        "failed"
    )
    assert any(s.startswith("CKV_AZURE_206 ") for s in unjustified_skips(planted))
    assert planted.network_attempts == []


def test_offline_guard_refuses_and_records_a_network_call(tmp_path: Path) -> None:
    """The guard loaded into checkov's interpreter stops a connection before any packet and records it."""
    log = tmp_path / "network.log"
    python = CHECKOV_VENV / "bin" / "python"
    checkov_binary()
    done = subprocess.run(
        [str(python), "-c", "import socket; socket.create_connection(('pypi.org', 443), timeout=1)"],
        env=offline_env(tmp_path, log),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "network access refused" in done.stderr
    assert log.read_text().splitlines() == ["resolve 'pypi.org'"]


def test_missing_checkov_fails_instead_of_skipping(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match=r"make checkov"):
        checkov_binary(tmp_path / "no-venv")


def test_checkov_env_carries_no_platform_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BC_API_KEY", "planted")
    monkeypatch.setenv("PRISMA_API_URL", "https://planted.invalid")
    env = offline_env(tmp_path, tmp_path / "log")
    assert not {"BC_API_KEY", "PRISMA_API_URL"} & set(env)
    assert env["CKV_SKIP_PACKAGE_UPDATE_CHECK"] == "true"
    assert env["BC_SKIP_MAPPING"] == "TRUE"
