"""Simulated Jira Cloud issue comments (as in ``jira-cloud-comments.json``).

The spec lets anonymous requests through; this fake requires HTTP Basic (account e-mail and API
token), as Jira Cloud does for API tokens. Comment bodies are checked against the Atlassian Document
Format schema, which the spec does not type. ``rate_limit()`` injects a 429 with ``Retry-After``,
``X-RateLimit-Reset`` (ISO time) and ``RateLimit-Reason``.

People's comments (:meth:`FakeJira.add_human_comment`) reach a receiver as Jira's ``comment_created``
webhook: an admin webhook with a secret signs the raw body (``X-Hub-Signature: sha256=<hex>``); an
Automation rule's "Send web request" carries the secret in a header instead.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from starlette.responses import JSONResponse, Response

from devserver.fakes._service import Call, HttpError
from devserver.fakes._vendor import VendorFake, basic_credentials
from devserver.fakes.openapi_check import adf_errors


def _jira_time() -> str:
    # Jira's own form: milliseconds and a +0000 offset (not RFC 3339).
    return (
        datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{datetime.now(UTC).microsecond // 1000:03d}+0000"
    )


def adf_document(text: str) -> dict[str, Any]:
    """``text`` as the ADF document Jira's editor makes: a paragraph per line."""
    paragraphs = [
        {"type": "paragraph", "content": [{"type": "text", "text": line}] if line else []}
        for line in text.split("\n")
    ]
    return {"type": "doc", "version": 1, "content": paragraphs}


def deliver_webhook(
    url: str,
    secret: str,
    payload: dict[str, Any],
    *,
    auth: Literal["signature", "token"] = "signature",
    signature: str | None = None,
    identifier: str | None = None,
) -> httpx.Response:
    """Deliver a webhook as Jira sends it: JSON body, ``X-Atlassian-Webhook-Identifier`` (unique per
    delivery, the same on its retries), ``X-Atlassian-Webhook-Flow`` and, for an admin webhook with a
    secret, ``X-Hub-Signature: sha256=<hex HMAC-SHA256 of the raw body>`` (``signature`` replaces it,
    ``""`` leaves it out). ``auth="token"``: an Automation rule's web request with the secret in
    ``X-Handoff-Webhook-Token``, as the broker's docs set it up."""
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Atlassian Webhook HTTP Client",
        "X-Atlassian-Webhook-Identifier": identifier or str(uuid.uuid4()),
        "X-Atlassian-Webhook-Flow": "Primary",
    }
    if auth == "token":
        headers = {"Content-Type": "application/json", "User-Agent": "Automation for Jira"}
        if signature != "":
            headers["X-Handoff-Webhook-Token"] = signature or secret
    elif signature != "":
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers["X-Hub-Signature"] = signature or f"sha256={digest}"
    return httpx.post(url, content=body, headers=headers, timeout=30)


def _errors(status: int, messages: list[str]) -> HttpError:
    return HttpError(status, {"errorMessages": messages, "errors": {}})


class FakeJira(VendorFake):
    """Issues and their comments, in memory."""

    service_name = "fake-jira"
    spec_file = "jira-cloud-comments.json"

    def __init__(
        self, credentials: tuple[tuple[str, str], ...] = (("bot@contoso.com", "jira_test_token"),)
    ) -> None:
        super().__init__()
        self.credentials = set(credentials)
        self._issues: dict[str, list[dict[str, Any]]] = {}
        self.route("GET", "/rest/api/3/issue/{key}/comment", self._list)
        self.route("POST", "/rest/api/3/issue/{key}/comment", self._add)

    def add_issue(self, key: str) -> None:
        """Create an issue with no comments."""
        with self.lock:
            self._issues.setdefault(key.upper(), [])

    def comments(self, key: str) -> list[dict[str, Any]]:
        """Comments of an issue, oldest first."""
        with self.lock:
            return [dict(c) for c in self._issues.get(key.upper(), [])]

    def add_human_comment(
        self, key: str, text: str, account_id: str = "712020:alice", display_name: str = "Alice Oncall"
    ) -> dict[str, Any]:
        """A person comments on an issue (in the web UI); returns the comment as Jira stores it."""
        author = {**self._author(), "accountId": account_id, "displayName": display_name}
        with self.lock:
            comment_id = str(10000 + self.next_id())
            now = _jira_time()
            comment = {
                "self": f"https://your-domain.atlassian.net/rest/api/3/issue/{key}/comment/{comment_id}",
                "id": comment_id,
                "author": author,
                "updateAuthor": author,
                "body": adf_document(text),
                "created": now,
                "updated": now,
                "jsdPublic": True,
            }
            self._issues[key.upper()].append(comment)
            return dict(comment)

    def comment_created_event(self, key: str, comment: dict[str, Any]) -> dict[str, Any]:
        """The ``comment_created`` webhook payload Jira sends for ``comment``."""
        issue_id = str(20000 + sum(map(ord, key)))
        return {
            "timestamp": int(datetime.now(UTC).timestamp() * 1000),
            "webhookEvent": "comment_created",
            "comment": comment,
            "issue": {
                "id": issue_id,
                "self": f"https://your-domain.atlassian.net/rest/api/2/{issue_id}",
                "key": key.upper(),
                "fields": {"summary": f"{key} (simulated)", "issuetype": {"name": "Incident"}},
            },
        }

    # Tests deliver Jira's webhooks through the fake, as Jira would.
    send_webhook = staticmethod(deliver_webhook)

    def reset(self) -> None:
        """Clear faults, requests and issues."""
        super().reset()
        with self.lock:
            self._issues.clear()

    def rate_limit(self, times: int = 1, retry_after: int = 2) -> None:
        """Answer the next requests with Jira's 429."""
        reset = (datetime.now(UTC) + timedelta(seconds=retry_after)).isoformat(timespec="seconds")
        self.inject(
            None,
            "/rest/api/3/**",
            429,
            times=times,
            retry_after=retry_after,
            body={"errorMessages": ["Rate limit exceeded."], "errors": {}},
            headers={"X-RateLimit-Reset": reset, "RateLimit-Reason": "jira-burst-based"},
        )

    def rate_limit_headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "99"}

    def authenticate(self, call: Call) -> dict[str, Any] | None:
        found = basic_credentials(call.request.headers.get("authorization"))
        if found is None or found not in self.credentials:
            raise HttpError(
                401,
                {"errorMessages": ["Client must be authenticated to access this resource."], "errors": {}},
            )
        return {"accountId": "5b10ac8d82e05b22cc7d4ef5"}

    def _checked(self, call: Call) -> tuple[Any, str]:
        body, params = self.check(
            call, status=400, shape=lambda errors: {"errorMessages": errors, "errors": {}}
        )
        key = params["issueIdOrKey"].upper()
        if key not in self._issues:
            raise _errors(404, ["Issue does not exist or you do not have permission to see it."])
        return body, key

    def _author(self) -> dict[str, Any]:
        return {
            "accountId": "5b10ac8d82e05b22cc7d4ef5",
            "active": True,
            "displayName": "Handoff Broker",
            "self": "https://your-domain.atlassian.net/rest/api/3/user?accountId=5b10ac8d82e05b22cc7d4ef5",
        }

    async def _list(self, call: Call) -> Response:
        _, key = self._checked(call)
        comments = self.comments(key)
        if call.query.get("orderBy", "created").startswith("-"):
            comments.reverse()
        start = int(call.query.get("startAt", 0))
        size = int(call.query.get("maxResults", 100))
        page = comments[start : start + size]
        return JSONResponse({"startAt": start, "maxResults": size, "total": len(comments), "comments": page})

    async def _add(self, call: Call) -> Response:
        body, key = self._checked(call)
        problems = adf_errors(body.get("body"))
        if problems:
            self._reject(call, problems)
            raise _errors(
                400, [f"Comment body is not valid Atlassian Document Format: {p}" for p in problems[:5]]
            )
        with self.lock:
            comment_id = str(10000 + self.next_id())
            now = _jira_time()
            comment = {
                "self": f"https://your-domain.atlassian.net/rest/api/3/issue/{key}/comment/{comment_id}",
                "id": comment_id,
                "author": self._author(),
                "updateAuthor": self._author(),
                "body": body["body"],
                "created": now,
                "updated": now,
                "jsdPublic": True,
            }
            self._issues[key].append(comment)
        return JSONResponse(comment, 201)
