"""OpenAPI fuzzing: schemathesis generates requests for every operation of ``/api/openapi.json`` (valid
ones and ones that break the schema) and sends them to the running broker; every answer must be no
server error and must match the document: a documented status code, a documented content type and a
body that validates against the documented schema (RFC 9457 problem details for errors).

Generated values rarely name a registered agent or an existing handoff, so a third pass aims valid
requests at real ones (the agent names in generated handoff and hand-back bodies are replaced by
registered ones, ``{id}`` is an existing handoff): those requests get past validation into storage,
delivery and hand-back, and every handoff they create must then be delivered or fail for a stated
reason, never be left behind or fail on an unexpected error.

Reproducible and bounded: the search is derandomized (the same cases on every run), each operation gets
at most :data:`EXAMPLES` cases per pass, and failures are collected rather than shrunk. Run alone with
``.venv/bin/python -m pytest tests/e2e/test_openapi_fuzz.py -s``.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.helpers import handoff_body

EXAMPLES = 36
AIMED_EXAMPLES = 25
MIN_CASES = 1000
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# What MCP clients must send (the Streamable HTTP transport answers 406 without it); other routes ignore it.
HEADERS = {"Accept": "application/json, text/event-stream"}
# Operations worth aiming at real agents and handoffs.
AIMED = {
    "createHandoff",
    "handBack",
    "getHandoff",
    "getHandoffAudit",
    "getSharedMemoryWrites",
    "replaySharedMemory",
    "getThreadLinks",
}


def _fuzz(operation: Any, strategy: Any, examples: int, call: Callable[[Any], None]) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        call(case)

    # Unsatisfiable: nothing in the operation can be made invalid (no parameters and no body).
    with contextlib.suppress(Unsatisfiable):
        run()


def _aim(case: Any) -> None:
    """Name registered agents in a generated handoff or hand-back body (in place)."""
    body = case.body
    if not isinstance(body, dict):
        return
    if case.operation.definition.raw.get("operationId") == "createHandoff":
        if isinstance(body.get("source"), dict):
            body["source"]["agent"] = "ops"
        if isinstance(body.get("target"), dict):
            body["target"]["agent"] = "checkout"
        body.pop("parentHandoffId", None)
    elif "agent" in body:
        body["agent"] = "checkout"


def test_every_operation_conforms_to_the_openapi_document(broker, clean_fakes, security_figures):
    # Loaded from the running broker (from_dict rather than from_url, which leaves the document's own
    # route out of the operations).
    schema = schemathesis.openapi.from_dict(broker.client.get("/api/openapi.json").json())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == sum(len(path) for path in schema.raw_schema["paths"].values())
    target = broker.client.post("/api/handoffs", json=handoff_body(None)).json()["id"]
    broker.wait_status(target, "delivered", timeout=20)
    session = requests.Session()
    cases: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failures: dict[str, str] = {}
    created: list[str] = []

    def call(case: Any, aim: bool = False) -> None:
        if aim:
            _aim(case)
        response = case.call(base_url=broker.url, session=session, headers=HEADERS, timeout=30)
        cases[case.operation.label] += 1
        statuses[response.status_code] += 1
        if case.operation.label == "POST /api/handoffs" and response.status_code == 202:
            created.append(response.json()["id"])
        try:
            case.validate_response(response, checks=CHECKS, headers=HEADERS)
        except FailureGroup as group:
            for failure in group.exceptions:
                _record(failures, case, response, failure)
        except Failure as failure:
            _record(failures, case, response, failure)

    started = time.monotonic()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, operation.as_strategy(generation_mode=mode), EXAMPLES, call)
        name = operation.definition.raw.get("operationId")
        if name in AIMED:
            path = (
                {"id": target}
                if "{id}" in operation.path
                else {"agent": "ops"}
                if "{agent}" in operation.path
                else None
            )
            strategy = operation.as_strategy(path_parameters=path)
            _fuzz(operation, strategy, AIMED_EXAMPLES, lambda case: call(case, aim=True))

    total = sum(cases.values())
    server_errors = sum(count for status, count in statuses.items() if status >= 500)
    took = time.monotonic() - started
    security_figures.update(
        {
            "openapi fuzz cases": total,
            "openapi fuzz operations": len(operations),
            "openapi fuzz server errors": server_errors,
            "openapi fuzz nonconforming responses": len(failures),
        }
    )
    print(f"\nOpenAPI fuzz: {total} cases over {len(operations)} operations in {took:.0f}s")
    print(f"  statuses: {dict(sorted(statuses.items()))}; handoffs created: {len(created)}")
    for label, count in sorted(cases.items()):
        print(f"  {count:5d}  {label}")
    assert not failures, f"{len(failures)} distinct failures:\n" + "\n\n".join(failures.values())
    assert set(cases) == {operation.label for operation in operations}
    assert total >= MIN_CASES
    assert server_errors == 0
    # What the fuzzer got accepted is delivered, or fails for a stated reason: never stranded, never an
    # unexpected error.
    assert created, "no generated handoff was accepted"
    for handoff_id in created:
        view = broker.wait_for(handoff_id, lambda v: v["status"] != "accepted", timeout=30)
        assert "unexpected error" not in (view.get("lastError") or ""), view


def _record(failures: dict[str, str], case: Any, response: Any, failure: Failure) -> None:
    key = f"{case.operation.label} | {failure.title} | {response.status_code}"
    if key not in failures:
        failures[key] = (
            f"{key}\n{failure.message[:1500]}\n{case.as_curl_command()[:1500]}\n{response.text[:500]}"
        )
