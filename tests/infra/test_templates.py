"""The deployment templates pass every static check (see checks.py for what each one means)."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from handoff import settings
from tests.infra import checks

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"


def settings_kwargs() -> dict[str, list[str]]:
    """The app-setting names of the settings model, read at test time."""
    model = settings.Settings
    return {
        "required": model.env_names(deploy=True),
        "known": model.env_names(),
        "platform": model.env_names(platform=True),
        "connection_strings": ["AzureWebJobsStorage", settings.STORAGE_CONNECTION],
    }


@pytest.mark.parametrize(
    "check",
    [
        checks.check_syntax,
        checks.check_module_paths,
        checks.check_no_secrets,
        checks.check_role_guids,
        checks.check_role_assignments,
        checks.check_resource_types,
        checks.check_main,
        checks.check_hardening,
        checks.check_parameters_file,
        checks.check_private_network,
        checks.check_storage_redundancy,
        checks.check_checkov_skips,
    ],
    ids=lambda f: f.__name__,
)
def test_infra_check(check: Callable[[Path], list[str]]) -> None:
    assert check(INFRA) == []


def test_every_template_is_parsed() -> None:
    names = {f.path.relative_to(INFRA).as_posix() for f in checks.bicep_files(INFRA)}
    assert {
        "main.bicep",
        "app/api.bicep",
        "app/rbac.bicep",
        "app/storage.bicep",
        "app/vnet.bicep",
        "app/storage-private-endpoint.bicep",
        "app/operations.bicep",
    } <= names


def test_app_settings_match_the_settings_model() -> None:
    assert checks.check_app_settings(INFRA, **settings_kwargs()) == []


def test_app_settings_cover_every_deploy_setting() -> None:
    found, problems = checks.app_settings(INFRA)
    assert problems == []
    assert set(settings.Settings.env_names(deploy=True)) <= set(found)


def test_queues_and_tables_match_the_app() -> None:
    problems = checks.check_storage_names(
        INFRA, queues=settings.STORAGE_QUEUES, tables=settings.STORAGE_TABLES
    )
    assert problems == []


def test_azure_yaml_names_an_existing_service() -> None:
    assert checks.check_azure_yaml(REPO) == []


def test_role_allow_list_names_are_documented() -> None:
    assert all(checks.GUID.match(guid) for guid in checks.ROLE_DEFINITIONS)
    found = {r.type for r in checks.resources(checks.bicep_files(INFRA))}
    assert "Microsoft.Authorization/roleAssignments" in found
    text = "\n".join(f.text for f in checks.bicep_files(INFRA))
    for guid, name in checks.ROLE_DEFINITIONS.items():
        if name != "SRE Agent Standard User":  # documented alternative, not assigned by default
            assert guid in text, f"{name} is never assigned"


def test_deploy_guide_documents_every_azd_setting() -> None:
    params = (INFRA / "main.parameters.json").read_text()
    guide = (REPO / "docs" / "deploy.md").read_text()
    names = set(re.findall(r"\$\{([A-Z0-9_]+)", params)) - {
        "AZURE_ENV_NAME",
        "AZURE_LOCATION",
        "AZURE_PRINCIPAL_TYPE",
    }
    assert names
    assert sorted(n for n in names if n not in guide) == []


def _failed_record() -> object:
    from datetime import UTC, datetime, timedelta

    from handoff.domain.models import HandoffRequest
    from handoff.domain.records import HandoffRecord, HandoffState, StoredRequest

    accepted = datetime(2026, 11, 21, 2, 10, tzinfo=UTC)
    request = HandoffRequest.model_validate(
        {
            "source": {"agent": "ops"},
            "target": {"agent": "checkout"},
            "context": {"title": "t", "summary": "s", "severity": "Sev2"},
        }
    )
    stored = StoredRequest(
        id="8f1c1e9e-0000-4000-8000-000000000001",
        request=request,
        source_agent="ops",
        target_agent="checkout",
        root_id="8f1c1e9e-0000-4000-8000-000000000001",
        body_hash="h",
        created_at=accepted,
        caller="local",
    )
    state = HandoffState(status="failed", updated_at=accepted + timedelta(seconds=42))
    return HandoffRecord(stored=stored, state=state)


def _group(pattern: str, line: str) -> str | None:
    """What the KQL ``extract(@"<pattern>", 1, message)`` gives for ``line`` (None for KQL's empty)."""
    match = re.search(pattern, line)
    return match.group(1) if match else None


def _extracts(query: str) -> dict[str, list[str]]:
    """Column name -> the patterns a query's ``extend`` extracts it with."""
    found: dict[str, list[str]] = {}
    extract = r'extract\(@"[^"]+", 1, message\)'
    for name, patterns in re.findall(rf"(\w+) = ((?:coalesce\(|toreal\()?(?:{extract},? ?)+)", query):
        found[name] = re.findall(r'extract\(@"([^"]+)", 1, message\)', patterns)
    return found


def test_a_delivered_line_names_b_s_thread_as_one_word_and_the_queries_still_read_it() -> None:
    from handoff.adapters.operations_log import lifecycle_line

    record = _failed_record()
    record.state.status = "delivered"  # type: ignore[attr-defined]  # the helper's record, reused
    record.state.target_thread_id = "77ab\nhandoff lifecycle: point=failed outcome=x"  # type: ignore[attr-defined]  # an odd id
    line = lifecycle_line(record, "delivered", {})  # type: ignore[arg-type]
    assert "\n" not in line and line.endswith(" thread=77abhandofflifecyclepointfailedoutcomex")
    text = (INFRA / "app" / "operations.bicep").read_text()
    lifecycle_query = text.split("var poison = ", 1)[0]
    columns = {name: _group(patterns[0], line) for name, patterns in _extracts(lifecycle_query).items()}
    assert (columns["point"], columns["target"], columns["latencyMs"]) == ("delivered", "checkout", "42000")
    assert columns["outcome"] is None


def test_the_operations_queries_read_the_lines_the_broker_logs() -> None:
    """The workbook and alert rules parse the broker's lifecycle lines with the fields they carry, and
    find the lines of messages moved to a poison queue (the broker's and the Functions host's)."""
    from handoff.adapters.operations_log import (
        LIFECYCLE_LOG_PREFIX,
        POISON_LOG_PREFIX,
        LoggedPoisonQueue,
        lifecycle_line,
    )

    text = (INFRA / "app" / "operations.bicep").read_text()
    lifecycle_query, poison_query = text.split("var poison = ", 1)
    assert f'message startswith "{LIFECYCLE_LOG_PREFIX} "' in lifecycle_query
    line = lifecycle_line(_failed_record(), "failed", {"reason": "create_thread answered 403"})  # type: ignore[arg-type]
    columns = {name: _group(patterns[0], line) for name, patterns in _extracts(lifecycle_query).items()}
    assert columns == {
        "point": "failed",
        "handoffId": "8f1c1e9e-0000-4000-8000-000000000001",
        "source": "ops",
        "target": "checkout",
        "latencyMs": "42000",
        "outcome": None,  # only a hand-back's line has one
        "reason": "create_thread answered 403",
    }

    host_prefix = "Message has reached MaxDequeueCount of "
    assert f'message startswith "{POISON_LOG_PREFIX} " or message startswith "{host_prefix}"' in poison_query
    with _captured("handoff") as records:
        LoggedPoisonQueue(_ParkingQueue(), "handoff-deliveries-poison").send_poison(
            {"op": "deliver", "handoffId": "h-1", "reason": "create_thread answered 403"}
        )
    (broker_line,) = [record.getMessage() for record in records]
    host_line = (
        "Message has reached MaxDequeueCount of 5. Moving message to queue 'handoff-deliveries-poison'."
    )
    patterns = _extracts(poison_query)
    for line in (broker_line, host_line):
        queue = next(found for p in patterns["queue"] if (found := _group(p, line)))
        assert queue == "handoff-deliveries-poison", line
    assert _group(patterns["handoffId"][0], broker_line) == "h-1"
    assert _group(patterns["reason"][0], broker_line) == "create_thread answered 403"


def _where_matches(query: str, line: str) -> bool:
    """Whether ``line`` passes the first ``where`` of a query made of ``message startswith "..."`` and
    ``message has "..."`` terms joined by ``or`` (KQL: case-insensitive; ``has`` a whole term)."""
    where = next(row for row in query.splitlines() if row.startswith("| where "))
    terms = re.findall(r'message (startswith|has) "([^"]+)"', where)
    assert " or ".join(f'message {op} "{text}"' for op, text in terms) == where.removeprefix("| where ")
    return any(
        line.lower().startswith(text.lower())
        if op == "startswith"
        else re.search(rf"(?<![A-Za-z0-9]){re.escape(text)}(?![A-Za-z0-9])", line, re.IGNORECASE) is not None
        for op, text in terms
    )


def test_no_line_counts_as_a_poison_message_for_quoting_the_host_s_words() -> None:
    """A reason may quote what an agent, a partner or a vendor answered (the start of its body): a line
    that quotes the host's poison words is not a message moved to a poison queue."""
    from handoff.adapters.operations_log import lifecycle_line
    from handoff.domain.log_lines import gave_up_line

    text = (INFRA / "app" / "operations.bicep").read_text()
    lifecycle_query, poison_query = text.split("var poison = ", 1)
    words = "Message has reached MaxDequeueCount of 5. Moving message to queue 'handoff-deliveries-poison'."
    answered = f"POST /a2a answered 400: {words}"
    quoting = [
        gave_up_line("a2aPoll", "8f1c1e9e-0000-4000-8000-000000000001", answered, attempts=5),
        lifecycle_line(_failed_record(), "failed", {"reason": answered}),  # type: ignore[arg-type]
        f"handoff lifecycle: point=failed reason={words}",
    ]

    assert [line for line in quoting if _where_matches(poison_query, line)] == []
    assert _where_matches(poison_query, words)
    assert _where_matches(poison_query, "poison message: queue=handoff-deliveries-poison op=deliver")
    assert not _where_matches(lifecycle_query.split("var lifecycle = ", 1)[1], f"x {quoting[1]}")


class _ParkingQueue:
    def send(self, message: dict[str, object], delay_seconds: float = 0) -> None:
        """Not used."""

    def send_poison(self, message: dict[str, object]) -> None:
        """Parked nowhere."""


@contextlib.contextmanager
def _captured(name: str) -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
