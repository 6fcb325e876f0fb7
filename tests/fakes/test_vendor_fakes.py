"""The simulated GitHub, PagerDuty, ServiceNow and Jira refuse what the vendors refuse, and answer in
the vendors' documented shapes (checked against the reference documents)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest

from devserver.fakes.github import FakeGitHub
from devserver.fakes.jira import FakeJira
from devserver.fakes.openapi_check import OpenApiSpec, adf_errors
from devserver.fakes.pagerduty import FakePagerDuty
from devserver.fakes.servicenow import FakeServiceNow

GH_HEADERS = {
    "Authorization": "Bearer ghp_test_token",
    "Accept": "application/vnd.github+json",
    "X-GitHub-Api-Version": "2022-11-28",
    "User-Agent": "test",
}
PD_HEADERS = {
    "Authorization": "Token token=pd_test_key",
    "Accept": "application/vnd.pagerduty+json;version=2",
    "Content-Type": "application/json",
}
JIRA_AUTH = "Basic " + base64.b64encode(b"bot@contoso.com:jira_test_token").decode()
SNOW_AUTH = "Basic " + base64.b64encode(b"handoff.bot:snow_test_password").decode()
ADF = {
    "type": "doc",
    "version": 1,
    "content": [{"type": "paragraph", "content": [{"type": "text", "text": "x"}]}],
}


@pytest.fixture(scope="module")
def vendor_servers() -> Iterator[dict]:
    servers = {
        "github": FakeGitHub(repos=("contoso/shop",)),
        "pagerduty": FakePagerDuty(),
        "servicenow": FakeServiceNow(),
        "jira": FakeJira(),
    }
    for server in servers.values():
        server.start()
    yield servers
    for server in servers.values():
        server.stop()


def test_github_checks_headers_schema_and_answers_in_shape(vendor_servers, http: httpx.Client):
    gh = vendor_servers["github"]
    spec = OpenApiSpec("github-issues.json")
    base = f"{gh.url}/repos/contoso/shop/issues"
    for missing in ("Authorization", "Accept", "X-GitHub-Api-Version", "User-Agent"):
        headers = {k: v for k, v in GH_HEADERS.items() if k != missing}
        if missing == "User-Agent":
            headers["User-Agent"] = ""
        assert http.post(base, json={"title": "t"}, headers=headers).status_code in (400, 401, 403, 415)
    assert http.post(base, json={"body": "no title"}, headers=GH_HEADERS).status_code == 422
    issue = http.post(base, json={"title": "t", "body": "b"}, headers=GH_HEADERS)
    assert issue.status_code == 201 and issue.headers["x-ratelimit-resource"] == "core"
    number = issue.json()["number"]
    comments = f"{base}/{number}/comments"
    assert http.post(comments, json={"body": 5}, headers=GH_HEADERS).status_code == 422
    comment = http.post(comments, json={"body": "hello"}, headers=GH_HEADERS)
    listing = http.get(comments, params={"per_page": 100}, headers=GH_HEADERS)
    for method, path, response in (
        ("POST", "/repos/contoso/shop/issues", issue),
        ("POST", f"/repos/contoso/shop/issues/{number}/comments", comment),
        ("GET", f"/repos/contoso/shop/issues/{number}/comments", listing),
        ("GET", f"/repos/contoso/shop/issues/{number}", http.get(f"{base}/{number}", headers=GH_HEADERS)),
    ):
        op, _ = spec.match(method, path)
        assert spec.check_response(op, response.status_code, response.json()) == [], path
    gh.secondary_limit(times=1, retry_after=3)
    limited = http.post(comments, json={"body": "again"}, headers=GH_HEADERS)
    assert limited.status_code == 403 and "secondary rate limit" in limited.json()["message"]
    assert limited.headers["retry-after"] == "3"


def test_pagerduty_requires_token_from_accept_and_content_type(vendor_servers, http: httpx.Client):
    pd = vendor_servers["pagerduty"]
    pd.add_incident("PABC123")
    spec = OpenApiSpec("pagerduty-rest.json")
    url = f"{pd.url}/incidents/PABC123/notes"
    note = {"note": {"content": "x"}}
    assert http.post(url, json=note, headers={**PD_HEADERS, "Authorization": "Bearer pd_test_key",
                                               "From": "a@b.co"}).status_code == 401  # fmt: skip
    assert http.post(url, json=note, headers=PD_HEADERS).status_code == 400  # no From
    assert (
        http.get(url, headers={k: v for k, v in PD_HEADERS.items() if k != "Content-Type"}).status_code == 400
    )
    assert http.post(url, json={"note": {}}, headers={**PD_HEADERS, "From": "a@b.co"}).status_code == 400
    created = http.post(url, json=note, headers={**PD_HEADERS, "From": "a@b.co"})
    assert created.status_code == 200 and created.headers["ratelimit-limit"] == "960"
    op, _ = spec.match("POST", "/incidents/PABC123/notes")
    assert spec.check_response(op, 200, created.json()) == []
    listing = http.get(url, headers=PD_HEADERS)
    op, _ = spec.match("GET", "/incidents/PABC123/notes")
    assert spec.check_response(op, 200, listing.json()) == []
    pd.rate_limit(times=1, reset_seconds=4)
    limited = http.get(url, headers=PD_HEADERS)
    assert limited.status_code == 429 and limited.json()["error"]["code"] == 2020
    assert limited.headers["ratelimit-reset"] == "4"
    assert http.get(f"{pd.url}/incidents/NOPE/notes", headers=PD_HEADERS).status_code == 404


def test_jira_requires_auth_and_adf(vendor_servers, http: httpx.Client):
    jira = vendor_servers["jira"]
    jira.add_issue("OPS-9")
    spec = OpenApiSpec("jira-cloud-comments.json")
    url = f"{jira.url}/rest/api/3/issue/OPS-9/comment"
    assert http.post(url, json={"body": ADF}).status_code == 401  # the spec allows anonymous; Jira does not
    headers = {"Authorization": JIRA_AUTH}
    assert http.post(url, json={"body": "plain string"}, headers=headers).status_code == 400
    assert (
        http.post(url, json={"body": {**ADF, "content": [{"type": "bogus"}]}}, headers=headers).status_code
        == 400
    )
    assert http.get(url, params={"orderBy": "updated"}, headers=headers).status_code == 400
    created = http.post(url, json={"body": ADF}, headers=headers)
    assert created.status_code == 201
    op, _ = spec.match("POST", "/rest/api/3/issue/OPS-9/comment")
    assert spec.check_response(op, 201, created.json()) == []
    listing = http.get(url, params={"orderBy": "-created"}, headers=headers)
    op, _ = spec.match("GET", "/rest/api/3/issue/OPS-9/comment")
    assert spec.check_response(op, 200, listing.json()) == [] and listing.json()["total"] == 1
    jira.rate_limit(times=1, retry_after=5)
    limited = http.get(url, headers=headers)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "5"
    assert (
        limited.headers["ratelimit-reason"] == "jira-burst-based" and "x-ratelimit-reset" in limited.headers
    )


def test_servicenow_journal_fields_append_and_need_headers(vendor_servers, http: httpx.Client):
    snow = vendor_servers["servicenow"]
    sys_id = snow.add_record("INC0000042")
    url = f"{snow.url}/api/now/table/incident/{sys_id}"
    headers = {"Authorization": SNOW_AUTH, "Accept": "application/json", "Content-Type": "application/json"}
    assert http.patch(url, json={"work_notes": "x"}, headers={"Authorization": SNOW_AUTH}).status_code == 400
    assert (
        http.patch(
            url, json={"work_notes": "x"}, headers={**headers, "Authorization": "Basic eDp5"}
        ).status_code
        == 401
    )
    for text in ("first", "second"):
        answer = http.patch(url, json={"work_notes": text}, headers=headers)
        assert answer.status_code == 200 and answer.json()["result"]["work_notes"] == ""
    assert [j["value"] for j in snow.journal(sys_id, "work_notes")] == ["first", "second"]
    found = http.get(
        f"{snow.url}/api/now/table/sys_journal_field",
        headers=headers,
        params={"sysparm_query": f"element_id={sys_id}^element=work_notes^valueLIKEsec"},
    )
    assert [r["value"] for r in found.json()["result"]] == ["second"]
    by_number = http.get(
        f"{snow.url}/api/now/table/incident",
        headers=headers,
        params={"sysparm_query": "number=INC0000042", "sysparm_fields": "sys_id"},
    )
    assert by_number.json()["result"] == [{"sys_id": sys_id}]
    assert http.patch(f"{snow.url}/api/now/table/incident/{'0' * 32}", json={"work_notes": "x"},
                      headers=headers).json()["status"] == "failure"  # fmt: skip
    snow.rate_limit(times=1, retry_after=6)
    limited = http.patch(url, json={"work_notes": "x"}, headers=headers)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "6"


def test_servicenow_queries_journal_entries_by_time_field_set_and_order(vendor_servers, http: httpx.Client):
    snow = vendor_servers["servicenow"]
    sys_id = snow.add_record("INC0000043")
    first = snow.add_human_entry(sys_id, "first", user="alice")
    snow.add_human_entry(sys_id, "customer", element="comments")
    headers = {"Authorization": SNOW_AUTH, "Accept": "application/json"}
    since = first["sys_created_on"]
    query = f"element_id={sys_id}^elementINwork_notes,x^sys_created_on>={since}^ORDERBYDESCvalue"
    found = http.get(
        f"{snow.url}/api/now/table/sys_journal_field", headers=headers, params={"sysparm_query": query}
    )
    assert [r["value"] for r in found.json()["result"]] == ["first"]
    later = f"element_id={sys_id}^sys_created_on>2999-01-01 00:00:00"
    assert http.get(f"{snow.url}/api/now/table/sys_journal_field", headers=headers,
                    params={"sysparm_query": later}).json()["result"] == []  # fmt: skip
    event = snow.journal_event(first)
    assert (event["number"], event["sys_created_by"], event["element_id"]) == ("INC0000043", "alice", sys_id)


def test_jira_human_comments_and_their_webhook_event(vendor_servers):
    jira = vendor_servers["jira"]
    jira.add_issue("OPS-9")
    comment = jira.add_human_comment("OPS-9", "line one\nline two")
    assert adf_errors(comment["body"]) == []
    assert [p["content"][0]["text"] for p in comment["body"]["content"]] == ["line one", "line two"]
    event = jira.comment_created_event("OPS-9", comment)
    assert event["webhookEvent"] == "comment_created" and event["issue"]["key"] == "OPS-9"
    assert jira.comments("OPS-9")[-1]["author"]["displayName"] == "Alice Oncall"
