"""A POST body must say it is JSON (handoff.domain.intake.check_json_content_type)."""

from __future__ import annotations

import pytest

from handoff.domain.errors import UnsupportedMediaType
from handoff.domain.intake import check_json_content_type

BODY = b'{"a": 1}'

ACCEPTED = [
    "application/json",
    "application/json; charset=utf-8",
    "Application/JSON;Charset=UTF-8",
    'application/json; charset="utf-8"',
    "application/json;charset=utf8",
    "application/json; profile=x",
    "application/problem+json",
    "application/merge-patch+json",
]
REFUSED = [
    None,
    "",
    "text/plain",
    "text/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    "application/json; charset=latin-1",
    "application/jsonp",
    "application/json-seq",
    "application/+json",
]


@pytest.mark.parametrize("content_type", ACCEPTED)
def test_json_is_accepted(content_type):
    check_json_content_type(content_type, BODY)


@pytest.mark.parametrize("content_type", REFUSED)
def test_anything_else_is_415_naming_the_header(content_type):
    with pytest.raises(UnsupportedMediaType) as refused:
        check_json_content_type(content_type, BODY)
    problem = refused.value
    assert problem.status == 415
    assert [error.field for error in problem.errors] == ["Content-Type"]
    assert "Content-Type: application/json" in problem.detail


def test_no_body_needs_no_content_type():
    check_json_content_type(None, b"")
    # An empty body that is labelled is still checked: the label says what the caller meant to send.
    with pytest.raises(UnsupportedMediaType):
        check_json_content_type("application/x-www-form-urlencoded", b"")


def test_the_refusal_quotes_what_was_sent_briefly():
    with pytest.raises(UnsupportedMediaType) as refused:
        check_json_content_type("text/plain; " + "x" * 500, BODY)
    assert "got text/plain; " in refused.value.detail
    assert len(refused.value.detail) < 250
