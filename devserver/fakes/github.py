"""Simulated GitHub REST API for issues and issue comments (as in ``github-issues.json``).

Checks what GitHub's description leaves out: ``Authorization`` (``Bearer`` or ``token``), ``Accept``,
``X-GitHub-Api-Version`` and ``User-Agent``. Answers with ``x-ratelimit-*`` headers; can enforce
GitHub's content-creation secondary limit per repository (``min_content_interval``), and inject
primary (``403`` + ``x-ratelimit-remaining: 0``) and secondary (``403`` + message) rate limits.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.responses import JSONResponse, Response

from devserver.fakes._service import Call, HttpError, utc_now
from devserver.fakes._vendor import VendorFake, epoch

DOCS = "https://docs.github.com/rest"
SUPPORTED_VERSIONS = ("2022-11-28", "2026-03-10")
SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID."
)


def _message(status: int, message: str, errors: list[Any] | None = None) -> HttpError:
    body: dict[str, Any] = {"message": message, "documentation_url": DOCS, "status": str(status)}
    if errors:
        body["errors"] = errors
    return HttpError(status, body)


def deliver_webhook(
    url: str,
    secret: str,
    event: str,
    payload: dict[str, Any],
    delivery: str | None = None,
    signature: str | None = None,
) -> httpx.Response:
    """Deliver a webhook as GitHub documents it: JSON body, ``X-GitHub-Event``, ``X-GitHub-Delivery``
    (a GUID; redeliveries reuse it) and ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw
    body>`` keyed with the webhook's secret. ``signature`` replaces the computed one."""
    body = json.dumps(payload).encode()
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/7c2a3f1",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "123456",
        "X-GitHub-Hook-Installation-Target-Type": "repository",
    }
    if signature != "":
        headers["X-Hub-Signature-256"] = signature or f"sha256={digest}"
    return httpx.post(url, content=body, headers=headers, timeout=30)


def bot_user() -> dict[str, Any]:
    """The user object of the app's bot account, as GitHub embeds it in issues and comments."""
    login = "handoff-bot"
    base = f"https://api.github.com/users/{login}"
    return {
        "login": login,
        "id": 1001,
        "node_id": "U_kgDOAAAD6Q",
        "avatar_url": "https://avatars.githubusercontent.com/u/1001",
        "gravatar_id": "",
        "url": base,
        "html_url": f"https://github.com/{login}",
        "followers_url": f"{base}/followers",
        "following_url": f"{base}/following{{/other_user}}",
        "gists_url": f"{base}/gists{{/gist_id}}",
        "starred_url": f"{base}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{base}/subscriptions",
        "organizations_url": f"{base}/orgs",
        "repos_url": f"{base}/repos",
        "events_url": f"{base}/events{{/privacy}}",
        "received_events_url": f"{base}/received_events",
        "type": "Bot",
        "site_admin": False,
    }


def issue_document(repo_name: str, number: int, issue_id: int, title: Any, body: Any) -> dict[str, Any]:
    """A new open issue of the bot, as GitHub returns it."""
    url = f"https://api.github.com/repos/{repo_name}/issues/{number}"
    now = utc_now()
    return {
        "id": issue_id,
        "node_id": f"I_kwDO{number:06d}",
        "url": url,
        "repository_url": f"https://api.github.com/repos/{repo_name}",
        "labels_url": url + "/labels{/name}",
        "comments_url": url + "/comments",
        "events_url": url + "/events",
        "html_url": f"https://github.com/{repo_name}/issues/{number}",
        "number": number,
        "state": "open",
        "title": str(title),
        "body": body,
        "user": bot_user(),
        "labels": [],
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "locked": False,
        "comments": 0,
        "closed_at": None,
        "created_at": now,
        "updated_at": now,
        "author_association": "NONE",
    }


def label_documents(issue_url: str, labels: list[Any]) -> list[dict[str, Any]]:
    """The label objects of a new issue created with these label names."""
    return [
        {
            "id": i + 1,
            "node_id": f"LA_{i}",
            "url": issue_url,
            "name": str(label),
            "color": "ededed",
            "default": False,
            "description": None,
        }
        for i, label in enumerate(labels)
    ]


def comment_document(
    repo_name: str,
    issue: dict[str, Any],
    comment_id: int,
    body: Any,
    user: dict[str, Any],
    author_association: str,
) -> dict[str, Any]:
    """A new issue comment, as GitHub returns it."""
    now = utc_now()
    return {
        "id": comment_id,
        "node_id": f"IC_kwDO{comment_id}",
        "url": f"https://api.github.com/repos/{repo_name}/issues/comments/{comment_id}",
        "html_url": f"{issue['html_url']}#issuecomment-{comment_id}",
        "body": body,
        "user": user,
        "created_at": now,
        "updated_at": now,
        "issue_url": issue["url"],
        "author_association": author_association,
    }


class FakeGitHub(VendorFake):
    """Repositories with issues and comments, in memory."""

    service_name = "fake-github"
    spec_file = "github-issues.json"

    def __init__(self, tokens: tuple[str, ...] = ("ghp_test_token",), repos: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.tokens = set(tokens)
        self._repos: dict[str, dict[str, Any]] = {}
        self.min_content_interval = 0.0
        self._last_content: dict[str, float] = {}
        self.secondary_hits = 0
        self.remaining = 5000
        self.reset_at = epoch() + 3600
        for repo in repos:
            self.add_repo(repo)
        base = "/repos/{owner}/{repo}/issues"
        self.route("POST", base, self._create_issue)
        self.route("GET", base + "/{number}", self._get_issue)
        self.route("GET", base + "/{number}/comments", self._list_comments)
        self.route("POST", base + "/{number}/comments", self._create_comment)

    # -------------------------------------------------------------- inspection and setup
    def add_repo(self, full_name: str) -> None:
        """Create an empty repository ``owner/name``."""
        with self.lock:
            self._repos.setdefault(full_name.lower(), {"name": full_name, "issues": {}, "comments": {}})

    def issues(self, repo: str) -> list[dict[str, Any]]:
        """The repository's issues in number order."""
        with self.lock:
            data = self._repos[repo.lower()]
            return [dict(data["issues"][n]) for n in sorted(data["issues"])]

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        """Comments of one issue, oldest first."""
        with self.lock:
            return [dict(c) for c in self._repos[repo.lower()]["comments"].get(number, [])]

    def add_issue(self, repo: str, title: str, body: str = "") -> int:
        """Open an issue as someone else would; returns its number."""
        with self.lock:
            return self._new_issue(self._repos[repo.lower()], repo, title, body)["number"]

    def add_human_comment(self, repo: str, number: int, body: str, login: str = "alice") -> dict[str, Any]:
        """A person comments on an issue (in the web UI); returns the comment as GitHub stores it."""
        with self.lock:
            data = self._repos[repo.lower()]
            issue = data["issues"][number]
            comment_id = self.next_id() + 500000
            user = {**bot_user(), "login": login, "id": 2000 + len(login), "type": "User"}
            comment = comment_document(data["name"], issue, comment_id, body, user, "MEMBER")
            data["comments"].setdefault(number, []).append(comment)
            issue["comments"] += 1
            return dict(comment)

    def issue_comment_event(self, repo: str, number: int, comment: dict[str, Any]) -> dict[str, Any]:
        """The ``issue_comment`` ``created`` webhook payload GitHub sends for ``comment``."""
        with self.lock:
            data = self._repos[repo.lower()]
            issue = dict(data["issues"][number])
        owner = data["name"].split("/")[0]
        return {
            "action": "created",
            "issue": issue,
            "comment": comment,
            "repository": {
                "id": 4242,
                "name": data["name"].split("/")[1],
                "full_name": data["name"],
                "owner": {"login": owner, "type": "Organization"},
                "html_url": f"https://github.com/{data['name']}",
            },
            "sender": comment["user"],
        }

    # Tests deliver GitHub's webhooks through the fake, as GitHub would.
    send_webhook = staticmethod(deliver_webhook)

    def reset(self) -> None:
        """Clear faults and requests; keep repositories but empty them."""
        super().reset()
        with self.lock:
            for data in self._repos.values():
                data["issues"].clear()
                data["comments"].clear()
            self._last_content.clear()
            self.secondary_hits = 0
            self.min_content_interval = 0.0

    def secondary_limit(self, times: int = 1, retry_after: float | None = None) -> None:
        """Answer the next content-creating requests with a secondary rate limit (403 + message)."""
        self.inject(
            "POST",
            "/repos/**",
            403,
            times=times,
            retry_after=retry_after,
            body={"message": SECONDARY_MESSAGE, "documentation_url": DOCS},
        )

    def primary_limit(self, times: int = 1, reset_in: int = 2) -> None:
        """Answer the next requests as over the primary limit (403, remaining 0, reset time)."""
        self.inject(
            None,
            "/repos/**",
            403,
            times=times,
            body={"message": "API rate limit exceeded for user.", "documentation_url": DOCS},
            headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(epoch() + reset_in)},
        )

    # -------------------------------------------------------------- protocol
    def rate_limit_headers(self) -> dict[str, str]:
        with self.lock:
            if epoch() >= self.reset_at:
                self.remaining, self.reset_at = 5000, epoch() + 3600
            self.remaining = max(0, self.remaining - 1)
            return {
                "x-ratelimit-limit": "5000",
                "x-ratelimit-remaining": str(self.remaining),
                "x-ratelimit-used": str(5000 - self.remaining),
                "x-ratelimit-reset": str(self.reset_at),
                "x-ratelimit-resource": "core",
                "x-github-api-version-selected": "2022-11-28",
            }

    def authenticate(self, call: Call) -> dict[str, Any] | None:
        headers = call.request.headers
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() not in ("bearer", "token") or token not in self.tokens:
            raise _message(401, "Bad credentials" if auth else "Requires authentication")
        if not headers.get("user-agent"):
            raise _message(
                403,
                "Request forbidden by administrative rules. "
                "Please make sure your request has a User-Agent header",
            )
        if "application/vnd.github" not in headers.get(
            "accept", ""
        ) and "application/json" not in headers.get("accept", ""):
            raise _message(415, "Unsupported 'Accept' header; use application/vnd.github+json")
        version = headers.get("x-github-api-version")
        if version is None:
            raise _message(400, "X-GitHub-Api-Version is required here: pin the REST API version")
        if version not in SUPPORTED_VERSIONS:
            raise _message(410, f"API version '{version}' is not supported")
        return {"login": "handoff-bot"}

    def _checked(self, call: Call) -> tuple[Any, dict[str, Any], dict[str, str]]:
        body, params = self.check(
            call,
            status=422,
            shape=lambda errors: {
                "message": "Invalid request.\n\n" + "\n".join(errors),
                "documentation_url": DOCS,
            },
        )
        repo = self._repos.get(f"{params['owner']}/{params['repo']}".lower())
        if repo is None:
            raise _message(404, "Not Found")
        return body, repo, params

    def _content_write(self, repo: dict[str, Any]) -> None:
        # GitHub's secondary limit on content creation, enforced per repository when configured.
        now = time.monotonic()
        key = repo["name"].lower()
        with self.lock:
            last = self._last_content.get(key)
            if self.min_content_interval and last is not None and now - last < self.min_content_interval:
                self.secondary_hits += 1
                raise HttpError(
                    403,
                    {"message": SECONDARY_MESSAGE, "documentation_url": DOCS},
                    headers={"retry-after": "1"},
                )
            self._last_content[key] = now

    def _new_issue(self, repo: dict[str, Any], name: str, title: Any, body: Any) -> dict[str, Any]:
        number = len(repo["issues"]) + 1
        issue = issue_document(repo["name"], number, self.next_id() + 100000, title, body)
        repo["issues"][number] = issue
        return issue

    async def _create_issue(self, call: Call) -> Response:
        body, repo, _ = self._checked(call)
        self._content_write(repo)
        with self.lock:
            issue = self._new_issue(repo, repo["name"], body["title"], body.get("body"))
            issue["labels"] = label_documents(issue["url"], body.get("labels") or [])
        return JSONResponse(issue, 201, headers={"Location": issue["url"]})

    def _issue(self, repo: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        issue = repo["issues"].get(int(params["issue_number"]))
        if issue is None:
            raise _message(404, "Not Found")
        return issue

    async def _get_issue(self, call: Call) -> Response:
        _, repo, params = self._checked(call)
        with self.lock:
            return JSONResponse(self._issue(repo, params))

    async def _list_comments(self, call: Call) -> Response:
        _, repo, params = self._checked(call)
        per_page = min(100, int(call.query.get("per_page", 30)))
        page = int(call.query.get("page", 1))
        since = call.query.get("since")
        with self.lock:
            issue = self._issue(repo, params)
            comments = list(repo["comments"].get(issue["number"], []))
        if since:
            cutoff = datetime.fromisoformat(since.replace("Z", "+00:00"))
            comments = [
                c
                for c in comments
                if datetime.fromisoformat(c["updated_at"].replace("Z", "+00:00")) >= cutoff.astimezone(UTC)
            ]
        chunk = comments[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(comments):
            headers["Link"] = f'<{call.request.url.include_query_params(page=page + 1)}>; rel="next"'
        return JSONResponse(chunk, headers=headers)

    async def _create_comment(self, call: Call) -> Response:
        body, repo, params = self._checked(call)
        with self.lock:
            issue = self._issue(repo, params)
        self._content_write(repo)
        with self.lock:
            comment_id = self.next_id() + 500000
            comment = comment_document(repo["name"], issue, comment_id, body["body"], bot_user(), "NONE")
            repo["comments"].setdefault(issue["number"], []).append(comment)
            issue["comments"] += 1
        return JSONResponse(comment, 201, headers={"Location": comment["url"]})
