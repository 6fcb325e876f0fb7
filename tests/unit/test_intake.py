"""The intake reader: limits before parsing, and only JSON the broker can keep gets through."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handoff.domain.errors import BadRequest, PayloadTooLarge, Problem, Unprocessable
from handoff.domain.intake import (
    MAX_DEPTH,
    InvalidJson,
    check_rpc_body,
    check_value,
    load_json,
    load_queue_message,
    nesting_depth,
)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _fields(problem: Problem) -> list[str]:
    return [error.field for error in problem.errors]


@pytest.mark.parametrize("depth", [1, MAX_DEPTH])
def test_up_to_the_limit_parses(depth):
    assert nesting_depth(load_json(_nested(depth).encode(), limit_bytes=1 << 20)) == depth


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 200, 10_000, 200_000])
def test_deeper_is_422_naming_the_root_before_parsing(depth):
    with pytest.raises(Unprocessable) as caught:
        load_json(_nested(depth).encode(), limit_bytes=1 << 20)
    assert _fields(caught.value) == ["/"]
    assert f"nested deeper than {MAX_DEPTH} levels" in caught.value.detail


def test_unclosed_brackets_are_refused_by_depth_not_recursion():
    with pytest.raises(Unprocessable):
        load_json(b"[" * 100_000, limit_bytes=1 << 20)


@pytest.mark.parametrize(
    "text",
    [
        '{"a": "' + "[" * 500 + '"}',  # brackets inside a string do not nest
        '{"a": "\\"' + "{" * 500 + '"}',  # nor after an escaped quote
        '{"a\\\\": ' + _nested(MAX_DEPTH - 1) + "}",  # an escaped backslash ends before the quote
    ],
)
def test_brackets_inside_strings_do_not_count(text):
    load_json(text.encode(), limit_bytes=1 << 20)


def test_size_is_checked_first():
    with pytest.raises(PayloadTooLarge):
        load_json(b"[" * 100, limit_bytes=99)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"a": "x\\ud800"}', "/a"),
        ('{"a": {"\\udfff": 1}}', "/a/\\udfff"),
        ('{"a": [1, "\\ud83d"]}', "/a/1"),
    ],
)
def test_lone_surrogates_are_refused_naming_the_field(text, field):
    with pytest.raises(Unprocessable) as caught:
        load_json(text.encode(), limit_bytes=1 << 20)
    assert _fields(caught.value) == [field]
    # the problem itself can be encoded (it is echoed to the caller)
    json.dumps(caught.value.to_json(), ensure_ascii=False).encode()


def test_surrogate_pairs_are_text():
    assert load_json(b'{"a": "\\ud83d\\ude00"}', limit_bytes=100) == {"a": "\U0001f600"}


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e309", "9" * 5000])
def test_numbers_that_would_not_be_stored_as_sent_are_refused(number):
    with pytest.raises(Unprocessable):
        load_json(f'{{"a": {number}}}'.encode(), limit_bytes=1 << 20)


@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe\xfa", b'{"a": 1} x'])
def test_not_json_is_400(body):
    with pytest.raises(InvalidJson) as caught:
        load_json(body, limit_bytes=100)
    assert caught.value.status == 400
    assert _fields(caught.value) == ["/"]


def test_the_problem_type_is_the_callers_choice():
    with pytest.raises(BadRequest):
        load_json(_nested(40).encode(), limit_bytes=1000, invalid=BadRequest)


def test_rpc_bodies_allow_the_envelope_around_a_document_at_the_limit():
    envelope = '{"jsonrpc":"2.0","params":{"message":{"parts":[{"data":' + _nested(MAX_DEPTH) + "}]}}}"
    check_rpc_body(envelope.encode())
    with pytest.raises(Unprocessable):
        check_rpc_body(_nested(10_000).encode())


def test_parsed_values_are_checked_the_same_way():
    check_value(json.loads(_nested(MAX_DEPTH)))
    with pytest.raises(Unprocessable) as caught:
        check_value({"a": json.loads(_nested(MAX_DEPTH))}, prefix="/data")
    assert _fields(caught.value) == ["/data"]
    with pytest.raises(Unprocessable) as caught:
        check_value({"a": [float("nan")]}, prefix="/data")
    assert _fields(caught.value) == ["/data/a/0"]
    with pytest.raises(Unprocessable):
        check_value({"a": "\ud800"})


@pytest.mark.parametrize("body", [b"[]", b'"deliver"', b"{", b'{"a": ' + _nested(40).encode() + b"}"])
def test_queue_messages_must_be_shallow_objects(body):
    with pytest.raises(BadRequest):
        load_queue_message(body)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(_JSON)
def test_the_depth_scan_agrees_with_the_parser(value):
    text = json.dumps(value)
    depth = nesting_depth(value, stop_after=10_000)
    if depth <= MAX_DEPTH:
        assert load_json(text.encode(), limit_bytes=1 << 22) == json.loads(text)
    else:
        with pytest.raises(Unprocessable):
            load_json(text.encode(), limit_bytes=1 << 22)
