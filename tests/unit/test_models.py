import pytest
from pydantic import ValidationError

from handoff.domain.models import HandbackRequest, HandoffRequest, field_errors


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


# ---------------------------------------------------------------- ids that go into agent URLs

HOSTILE_IDS = [
    "../approvals/8f0c/approve?x=",
    "t/../../x",
    "t?x=1",
    "t\x00x",
    "t\nx",
    "t#x",
    "?",
    "t x",
    " t",
    "t\n",
    "\t",
    ".",
    "..",
    "",
    "%2e%2e",
    "t\\x",
    "té",
    "a" * 257,
    "a" * 100_000,
]
GOOD_IDS = ["t-1", "9b1de8e4-5a5e-4a0b-9a5e-0c7f4f1f2c3d", "A_b.c", "...", ".hidden", "a..b", "a" * 256]


@pytest.mark.parametrize("thread_id", HOSTILE_IDS, ids=range(len(HOSTILE_IDS)))
def test_thread_ids_must_be_one_path_segment_everywhere(thread_id):
    from handoff.domain.models import PATH_SEGMENT_MESSAGE
    from handoff.entrypoints.mcp_tools import ThreadRef

    data = body()
    data["source"]["threadId"] = thread_id
    assert errors_of(data) == {"/source/threadId": PATH_SEGMENT_MESSAGE}
    handback = {"agent": "checkout", "outcome": "mitigated", "summary": "x", "threadId": thread_id}
    assert errors_of(handback, HandbackRequest) == {"/threadId": PATH_SEGMENT_MESSAGE}
    assert errors_of({"agent": "ops", "threadId": thread_id}, ThreadRef) == {
        "/threadId": PATH_SEGMENT_MESSAGE
    }


@pytest.mark.parametrize("thread_id", GOOD_IDS)
def test_thread_ids_of_letters_digits_dash_underscore_dot_are_kept_as_sent(thread_id):
    data = body()
    data["source"]["threadId"] = thread_id
    assert HandoffRequest.model_validate(data).source.thread_id == thread_id


def test_the_thread_id_rule_is_in_the_published_schema():
    import re

    from handoff.domain.models import PATH_SEGMENT_PATTERN, is_path_segment_id

    schema = HandoffRequest.model_json_schema(by_alias=True)["$defs"]["SourceRef"]["properties"]["threadId"]
    text = next(option for option in schema["anyOf"] if option.get("type") == "string")
    assert text == {"type": "string", "minLength": 1, "maxLength": 256, "pattern": PATH_SEGMENT_PATTERN}
    # the schema's pattern (ECMA-262: '$' is the very end) and the validator agree
    pattern = re.compile(PATH_SEGMENT_PATTERN.removeprefix("^").removesuffix("$"))
    for value in [*HOSTILE_IDS[:-1], *GOOD_IDS, "-", "_", ".a", "..a"]:
        in_schema = bool(pattern.fullmatch(value)) and 1 <= len(value) <= 256
        assert in_schema == is_path_segment_id(value), repr(value)
