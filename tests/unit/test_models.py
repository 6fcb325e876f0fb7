import pytest
from pydantic import ValidationError

from handoff.models import HandbackRequest, HandoffRequest, field_errors


def body(**context_overrides):
    context = {
        "title": "Exception burst",
        "summary": "5xx up",
        "severity": "Sev2",
        "resources": ["/subscriptions/s/resourceGroups/shop/providers/Microsoft.Web/sites/checkout-api"],
        "evidence": [
            {"kind": "kql", "title": "Top", "query": "q", "columns": ["type", "n"], "rows": [["A", 1]]},
            {"kind": "link", "title": "Dash", "url": "https://portal.azure.com/#x"},
            {"kind": "note", "content": "no rollback"},
        ],
    }
    context.update(context_overrides)
    return {
        "source": {"agent": "ops", "threadId": "t-1"},
        "target": {"agent": "checkout"},
        "context": context,
    }


def errors_of(data, model=HandoffRequest):
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return {e.field: e.message for e in field_errors(info.value)}


def test_valid_request_defaults_intent_and_keeps_camel_case():
    request = HandoffRequest.model_validate(body())
    assert request.intent == "investigate"
    wire = request.to_wire()
    assert wire["source"]["threadId"] == "t-1"
    assert "actionsTaken" in wire["context"]


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"severity": "Sev5"}, "/context/severity"),
        ({"resources": ["checkout-api"]}, "/context/resources/0"),
        ({"title": ""}, "/context/title"),
        (
            {
                "evidence": [
                    {"kind": "kql", "title": "t", "query": "q", "columns": ["a"], "rows": [[1], [1, 2]]}
                ]
            },
            "/context/evidence/0/rows/1",
        ),
        (
            {"evidence": [{"kind": "link", "title": "t", "url": "javascript:alert(1)"}]},
            "/context/evidence/0/url",
        ),
        ({"evidence": [{"kind": "video"}]}, "/context/evidence/0"),
        ({"unknownField": 1}, "/context/unknownField"),
    ],
)
def test_bad_fields_are_named_by_json_pointer(override, field):
    assert field in errors_of(body(**override))


def test_missing_target_is_named():
    data = body()
    del data["target"]
    assert "/target" in errors_of(data)


def test_handback_outcome_is_checked():
    data = {"agent": "checkout", "outcome": "solved", "summary": "x"}
    assert "/outcome" in errors_of(data, HandbackRequest)
