"""The handoff contract (spec/handoff-context/v1): the checked-in schemas are the ones the models generate,
they are valid JSON Schema 2020-12 tied together by ``$id``, and every example and every request body the
test suite sends validates against them (and what they refuse, the broker refuses too)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel, TypeAdapter, ValidationError, computed_field

from handoff.domain.contract import (
    BASE_URI,
    DIALECT,
    DOCUMENTS,
    SCHEMA_NAMES,
    ContractDocument,
    _check_same_in_both_modes,
    bundled,
    document,
    generate,
    refs,
    render,
)
from handoff.domain.ids import canonical_hash
from handoff.domain.models import (
    ARM_ID_PATTERN,
    CONTRACT_SCHEMA_ID,
    CONTRACT_VERSION,
    EVIDENCE_KINDS,
    HTTP_URL_PATTERN,
    Evidence,
    HandbackRequest,
    HandoffRequest,
    field_errors,
)
from handoff.entrypoints.contract_schemas import SCHEMA_DIR, bundled_schema, contract_schemas
from tests.e2e import helpers as e2e
from tests.e2e.test_bad_input import CASES as BAD_HANDOFFS
from tests.e2e.test_poison_proof_intake import _hardest_handback, _hardest_handoff
from tests.e2e.test_redaction import _resource as redaction_resource
from tests.e2e.test_redaction import handback_with_secrets, handoff_with_secrets
from tests.unit import conftest as unit
from tests.unit.test_models import body as models_body

EXAMPLES_DIR = SCHEMA_DIR / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.json"))


def errors(name: str, instance: Any) -> list[str]:
    return e2e.contract_errors(name, instance)


def broker_errors(name: str, instance: Any) -> list[str]:
    """What the broker's own model says of ``instance``: the fields it refuses."""
    model = document(name).model
    try:
        if model is None:
            TypeAdapter(Evidence).validate_python(instance)
        else:
            model.model_validate(instance)
    except ValidationError as error:
        return [f"{e.field}: {e.message}" for e in field_errors(error)]
    return []


# ---------------------------------------------------------------- the files are the models


def test_the_checked_in_schemas_are_the_generated_ones():
    stale = [
        name
        for name, schema in generate().items()
        if not (SCHEMA_DIR / f"{name}.json").is_file()
        or (SCHEMA_DIR / f"{name}.json").read_text(encoding="utf-8") != render(schema)
    ]
    assert stale == [], f"regenerate with: python -m spec.generate ({', '.join(stale)})"
    on_disk = {path.stem for path in SCHEMA_DIR.glob("*.json")}
    assert on_disk == SCHEMA_NAMES


@pytest.mark.parametrize("name", sorted(SCHEMA_NAMES))
def test_each_schema_is_2020_12_with_a_stable_id_and_refers_only_by_id(name):
    schema = contract_schemas()[name]

    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == DIALECT
    assert schema["$id"] == f"{BASE_URI}{name}.json" == document(name).uri
    assert f"schemaId {CONTRACT_SCHEMA_ID}, schemaVersion {CONTRACT_VERSION}" in schema["$comment"]
    ids = {document(other).uri for other in SCHEMA_NAMES}
    local = {f"#/$defs/{key}" for key in schema.get("$defs", {})}
    assert set(refs(schema)) <= ids | local
    assert "discriminator" not in json.dumps(schema)  # an OpenAPI keyword, not JSON Schema


def test_every_evidence_kind_has_a_schema_and_an_example():
    kinds = {doc.name.removeprefix("evidence-") for doc in DOCUMENTS if doc.name.startswith("evidence-")}
    assert kinds == set(EVIDENCE_KINDS)
    assert {path.stem for path in EXAMPLES} >= {f"evidence-{kind}" for kind in EVIDENCE_KINDS}


def test_a_model_that_reads_differently_once_sent_cannot_be_embedded_by_ref():
    # The status embeds the context and the evidence as the broker sends them, and their documents
    # describe them as they are sent to it: generate() refuses a model for which the two differ.
    class Stamped(BaseModel):
        at: str

        @computed_field  # type: ignore[prop-decorator]
        @property
        def seen(self) -> str:
            return self.at

    with pytest.raises(ValueError, match="reads differently"):
        _check_same_in_both_modes("Stamped", "serialization", ContractDocument("stamped", Stamped))


# ---------------------------------------------------------------- examples


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_each_example_follows_its_schema_and_the_broker_reads_it(path: Path):
    name = path.name.split(".")[0]
    instance = json.loads(path.read_text(encoding="utf-8"))

    assert name in SCHEMA_NAMES, f"{path.name}: an example is named after its schema"
    assert errors(name, instance) == []
    assert broker_errors(name, instance) == []
    assert list(Draft202012Validator(bundled_schema(name)).iter_errors(instance)) == []


# ---------------------------------------------------------------- what the test suite sends


def _sources() -> list[tuple[str, str, Callable[[], Any]]]:
    """Every request-body builder of the test suite, with the schema its body follows."""
    return [
        ("e2e handoff_body", "handoff-request", lambda: e2e.handoff_body(None)),
        (
            "e2e handoff_body with thread",
            "handoff-request",
            lambda: e2e.handoff_body("t-1", target="payments"),
        ),
        ("e2e handback_body", "handback-request", lambda: e2e.handback_body()),
        ("e2e handback_body with thread", "handback-request", lambda: e2e.handback_body(thread_id="t-2")),
        ("unit handoff_body", "handoff-request", lambda: unit.handoff_body("t-1")),
        ("unit handback_body", "handback-request", lambda: unit.handback_body()),
        ("test_models body", "handoff-request", lambda: models_body()),
        ("secrets handoff", "handoff-request", lambda: handoff_with_secrets("t-1", redaction_resource())),
        ("secrets handback", "handback-request", lambda: handback_with_secrets("t-2")),
        ("hardest handoff", "handoff-request", lambda: _hardest_handoff("t-1")[0]),
        ("hardest handback", "handback-request", lambda: _hardest_handback("t-2")[0]),
        (
            "with parent, correlation and auto hand-back",
            "handoff-request",
            lambda: e2e.handoff_body(
                None,
                parentHandoffId="8dbd04e6-7efb-4e19-a4b8-fee89184a06a",
                correlationId="incident-1234",
                autoHandback={"afterMinutes": 0, "maxWatchMinutes": 30},
            ),
        ),
        (
            "every evidence kind",
            "handoff-context",
            lambda: handoff_with_secrets(None, redaction_resource())["context"],
        ),
    ]


SOURCES = _sources()


@pytest.mark.parametrize(("source", "name", "build"), SOURCES, ids=[source for source, _, _ in SOURCES])
def test_every_body_the_tests_send_follows_the_contract(source, name, build):
    instance = build()

    assert errors(name, instance) == [], source
    assert broker_errors(name, instance) == [], source
    assert list(Draft202012Validator(bundled_schema(name)).iter_errors(instance)) == []


# The bad handoffs of tests/e2e/test_bad_input.py: the ones the schema refuses, by the field it names.
# The others break rules only the broker can check (a registered agent, an existing parent) or one
# JSON Schema cannot say (as many cells in a row as there are columns; see the README).
SCHEMA_REFUSES = {
    "missing target": "",
    "bad severity": "context/severity",
    "not an ARM id": "context/resources/0",
    "bad intent": "intent",
}


@pytest.mark.parametrize(
    ("case", "change", "status", "field"), BAD_HANDOFFS, ids=[c[0] for c in BAD_HANDOFFS]
)
def test_the_schema_refuses_the_bad_handoffs_it_can_see(case, change, status, field):
    body = e2e.handoff_body(None)
    change(body)

    found = errors("handoff-request", body)

    if case in SCHEMA_REFUSES:
        assert [e.split(":")[0] for e in found] == [SCHEMA_REFUSES[case]], found
        assert any(e.startswith(field) for e in broker_errors("handoff-request", body))
    else:
        assert found == []


@pytest.mark.parametrize(
    ("name", "change", "field"),
    [
        ("handoff-request", {"priority": "high"}, ""),
        ("handoff-request", {"schemaId": "azureMonitorCommonAlertSchema"}, "schemaId"),
        ("handoff-request", {"schemaVersion": "2.0"}, "schemaVersion"),
        ("handoff-request", {"context": {"title": "t", "summary": "s"}}, "context"),
        ("handback-request", {"outcome": "solved"}, "outcome"),
        ("handback-request", {"evidence": [{"kind": "metric", "title": "t"}]}, "evidence/0"),
        ("handback-request", {"evidence": [{"kind": "link", "title": "t", "url": "ftp://x"}]}, "evidence/0"),
    ],
)
def test_schema_and_broker_refuse_the_same_broken_bodies(name, change, field):
    body = {**(e2e.handoff_body(None) if name == "handoff-request" else e2e.handback_body()), **change}

    found = errors(name, body)

    assert found and all(e.split(":")[0] == field for e in found), found
    assert broker_errors(name, body)


# ---------------------------------------------------------------- the rules the schema spells


@pytest.mark.parametrize(
    "value",
    [
        "/subscriptions/s",
        "/SUBSCRIPTIONS/s/resourcegroups/rg",
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/api",
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/api/slots/staging/",
        "/subscriptions/s/providers/Microsoft.Web",
        "/subscriptions//resourceGroups/rg",
        "subscriptions/s",
        "checkout-api",
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites",
        "/subscriptions/s/x",
    ],
)
def test_the_resource_id_pattern_says_what_the_validator_does(value):
    # ECMA-262 and Python agree on this pattern: classes, groups and anchors only.
    in_schema = re.search(ARM_ID_PATTERN, value) is not None
    context = {"title": "t", "summary": "s", "severity": "Sev2", "resources": [value]}
    assert in_schema == (broker_errors("handoff-context", context) == [])
    assert in_schema == (errors("handoff-context", context) == [])


@pytest.mark.parametrize(
    "value", ["https://x", "http://x/y", "HTTPS://x", "ftp://x", "https:///x", "javascript:alert(1)"]
)
def test_the_url_pattern_says_what_the_validator_does(value):
    in_schema = re.search(HTTP_URL_PATTERN, value) is not None
    link = {"kind": "link", "title": "t", "url": value}
    assert in_schema == (broker_errors("evidence-link", link) == [])


def test_schema_id_and_version_are_accepted_and_change_nothing():
    plain = e2e.handoff_body("t-1")
    marked = {**plain, "schemaId": CONTRACT_SCHEMA_ID, "schemaVersion": "1.7"}

    request = HandoffRequest.model_validate(marked)

    assert request.to_wire() == HandoffRequest.model_validate(plain).to_wire()
    assert canonical_hash(request) == canonical_hash(HandoffRequest.model_validate(plain))
    handback = HandbackRequest.model_validate({**e2e.handback_body(), "schemaVersion": CONTRACT_VERSION})
    assert "schemaVersion" not in handback.to_wire()
    assert broker_errors("handoff-request", {**plain, "schemaVersion": "2.0"}) == [
        "/schemaVersion: must be 1.<minor>: this broker speaks version 1 of the handoffContext schema"
    ]


def test_the_start_message_payload_carries_a_context_that_follows_the_contract():
    world = unit.build_world()
    body = handoff_with_secrets(world.source_thread(), redaction_resource())
    view, _ = world.accept(body)
    world.run()
    start = world.agents.thread(world.state(view.id).target_thread_id).texts()[0]

    payload = e2e.payload_of(start)

    assert errors("handoff-context", payload["context"]) == []
    assert payload["context"]["evidence"][0]["kind"] == "kql"


# ---------------------------------------------------------------- bundles


def test_a_bundle_needs_no_resolver_and_keeps_the_top_level_of_the_model():
    schema = bundled_schema("handoff-request")

    assert not any(ref.startswith("http") for ref in refs(schema))
    assert "$id" not in json.dumps(schema)
    Draft202012Validator.check_schema(schema)
    model = HandoffRequest.model_json_schema(by_alias=True)
    assert schema["properties"] == model["properties"]
    assert schema["required"] == model["required"]
    assert bundled_schema("handoff-status")["title"] == "HandoffView"


def test_a_bundle_refuses_two_different_schemas_of_one_name():
    documents = {name: dict(schema) for name, schema in contract_schemas().items()}
    documents["handoff-context"] = {
        **documents["handoff-context"],
        "$defs": {"SourceRef": {"type": "string"}},
    }

    with pytest.raises(ValueError, match="two different schemas are called SourceRef"):
        bundled("handoff-request", documents)
