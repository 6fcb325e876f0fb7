"""Property tests of the Azure Monitor alert parser: for any body, the parser gives a parsed alert (whose
handoff context can always be built) or a clean 4xx problem naming a field; nothing else ever escapes.

Bodies are arbitrary JSON, arbitrary bytes, and the documented sample payloads
(tests/data/azure-monitor-alerts/) with one value replaced, removed or retyped. Example counts are
bounded and the search is derandomized, so a run is reproducible.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from handoff.domain.alerts.context import alert_context
from handoff.domain.alerts.evidence.kinds import alert_kind
from handoff.domain.alerts.notes import alert_line
from handoff.domain.alerts.parsing import COMMON_SCHEMA_ID, Alert, parse_alert
from handoff.domain.alerts.requests import notification_facts, storm_facts
from handoff.domain.errors import Problem
from handoff.domain.models import HandoffContext

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "azure-monitor-alerts"
PROPERTY_SETTINGS = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _samples() -> list[dict[str, Any]]:
    bodies = []
    for path in sorted(SAMPLES.glob("*.json")):
        data = json.loads(path.read_text())
        if "schemaId" not in data:  # only an alertContext: wrap it in an envelope
            data = {
                "schemaId": COMMON_SCHEMA_ID,
                "data": {
                    "essentials": {
                        "alertId": f"/subscriptions/s/providers/Microsoft.AlertsManagement/a/{path.stem}",
                        "alertRule": path.stem,
                        "severity": "Sev3",
                        "monitorCondition": "Fired",
                        "alertTargetIDs": ["/subscriptions/s/resourceGroups/rg"],
                    },
                    **data,
                },
            }
        bodies.append(data)
    return bodies


SAMPLE_BODIES = _samples()

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(
        ["", " ", "Fired", "Resolved", "fired", "Sev0", "Sev9", "[", "{}", '{"a": [1]}', "/", "~"]
    )
)
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


@st.composite
def mutated_samples(draw: st.DrawFn) -> dict[str, Any]:
    """A sample payload with one to three values replaced by arbitrary JSON, removed or retyped."""
    body = copy.deepcopy(draw(st.sampled_from(SAMPLE_BODIES)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [path for path in _paths(body) if path]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = body
        for part in path[:-1]:
            parent = parent[part]
        how = draw(st.sampled_from(["replace", "remove", "stringify", "wrap"]))
        if how == "remove":
            del parent[path[-1]]
        elif how == "stringify":
            parent[path[-1]] = json.dumps(parent[path[-1]])
        elif how == "wrap":
            parent[path[-1]] = [parent[path[-1]]]
        else:
            parent[path[-1]] = draw(JSON_VALUES)
    return body


def _parses_or_refuses_cleanly(body: bytes) -> None:
    refused: Problem | None = None
    try:
        alert = parse_alert(body)
    except Problem as problem:
        refused = problem
    if refused is not None:
        assert 400 <= refused.status < 500, refused.status
        assert refused.errors and all(error.field.startswith("/") for error in refused.errors)
        json.dumps(refused.to_json(), ensure_ascii=False).encode()  # it can be answered
        return
    assert isinstance(alert, Alert)
    # Whatever was accepted maps to a handoff: a kind-specific context, else a generic one.
    alert_kind(alert)
    context = alert_context(alert, "route")
    assert isinstance(context, HandoffContext)
    HandoffContext.model_validate_json(context.model_dump_json())  # and it can be stored and read back
    alert_line({**notification_facts(alert, datetime.now(UTC)), **storm_facts(alert)})
    assert alert.key and alert.portal_url.startswith("https://")


@PROPERTY_SETTINGS
@given(JSON_VALUES)
def test_arbitrary_json(value):
    _parses_or_refuses_cleanly(json.dumps(value).encode())


@PROPERTY_SETTINGS
@given(st.dictionaries(st.sampled_from(["schemaId", "data", "essentials", "x"]), JSON_VALUES, max_size=3))
def test_arbitrary_json_under_the_envelope(value):
    body = {"schemaId": COMMON_SCHEMA_ID, "data": {"essentials": value.get("essentials"), **value}}
    _parses_or_refuses_cleanly(json.dumps(body).encode())


@PROPERTY_SETTINGS
@given(mutated_samples())
def test_mutated_sample_payloads(body):
    _parses_or_refuses_cleanly(json.dumps(body, ensure_ascii=False).encode())


@PROPERTY_SETTINGS
@given(
    st.binary(max_size=300) | st.text(max_size=300).map(lambda text: text.encode("utf-8", "surrogatepass"))
)
def test_arbitrary_bytes(body):
    _parses_or_refuses_cleanly(body)


ALERT_IDS = st.builds(
    lambda head, filler, times, tail: head + filler * times + tail,
    st.text(max_size=6),
    st.sampled_from(["x", "/", " ", "/ ", "\u00e9", "\u3000", "%", "\U0001f600", "\x00"]),
    st.integers(0, 6000),
    st.text(max_size=6),
)


@PROPERTY_SETTINGS
@given(ALERT_IDS)
@example("x" * 5000)  # its portal link is longer than a link may be
@example("a/" + " " * 600 + "/")  # over 512 characters, and its last segment is blank
def test_alert_ids_of_any_length_and_shape(alert_id):
    body = {
        "schemaId": COMMON_SCHEMA_ID,
        "data": {"essentials": {"alertId": alert_id, "monitorCondition": "Fired"}},
    }
    _parses_or_refuses_cleanly(json.dumps(body).encode())


def test_samples_all_parse():
    for body in SAMPLE_BODIES:
        _parses_or_refuses_cleanly(json.dumps(body).encode())
