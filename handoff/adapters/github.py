"""GitHub Issues: a comment on the handoff's issue, the backend's issue, or one issue per investigation.

Headers as GitHub documents them: ``Authorization: Bearer``, ``Accept: application/vnd.github+json``,
``X-GitHub-Api-Version: 2022-11-28``, a ``User-Agent``. Content-creating requests (issues, comments)
are spaced per repository through storage, so several broker instances together stay under GitHub's
secondary limits (80 per minute, 500 per hour).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from handoff.adapters.vendors import WriterContext, request, vendor_url
from handoff.domain.shared_memory.config import GitHubBackend
from handoff.domain.shared_memory.content import chain_issue, chain_marker, markdown
from handoff.domain.shared_memory.destinations import github_issue
from handoff.domain.shared_memory.human_entries import HumanEntry, own_marker
from handoff.domain.shared_memory.vendor_entries import github_entry
from handoff.domain.shared_memory.writes import Destination, WriteError, WriteJob

API_VERSION = "2022-11-28"
CHAIN_LEASE_SECONDS = 60.0
PROBE_BACK = 20
PAGES = 10
_ISSUE_KEY = re.compile(r"^(?P<repo>[a-z0-9_.-]+/[a-z0-9_.-]+)#(?P<number>[0-9]+)$")


def github_headers(backend: GitHubBackend, ctx: WriterContext) -> dict[str, str]:
    """GitHub's documented request headers with the backend's token."""
    return {
        "Authorization": f"Bearer {ctx.secret(backend.secret_setting)}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
    }


class GitHubWriter:
    """Writes Markdown comments with a Mermaid diagram of the chain."""

    def __init__(self, backend: GitHubBackend, ctx: WriterContext) -> None:
        self.backend = backend
        self.ctx = ctx

    def _headers(self) -> dict[str, str]:
        return github_headers(self.backend, self.ctx)

    def _url(self, repo: str, *segments: str | int) -> str:
        return vendor_url(self.backend.api_base, "repos", *repo.split("/"), *segments)

    def content_gate(self, repo: str) -> str:
        """Spacing key of content writes: the repository on this GitHub host."""
        return f"github|{self.backend.api_base.lower()}|{repo.lower()}"

    def _take_slot(self, repo: str) -> None:
        settings = self.ctx.settings
        wait = self.ctx.state.reserve_slot(
            self.content_gate(repo),
            settings.shared_memory_github_spacing_seconds,
            settings.shared_memory_github_hourly_limit,
            self.ctx.clock(),
        )
        if wait > 0:
            raise WriteError(
                f"waiting {wait:.1f}s for {repo}'s content-write slot",
                transient=True,
                retry_after=wait,
                deferral=True,
            )

    # -------------------------------------------------------------- destination

    def destination(self, job: WriteJob) -> Destination | None:
        """The issue the handoff names (in a repository the backend names), the backend's fixed issue,
        else the investigation chain's own issue (opened on first use)."""
        issue = github_issue(self.backend, job.record)
        if issue is not None:
            repo, number = issue
            return Destination(f"{repo}#{number}", {"repo": repo, "number": number})
        repo = self.backend.repo
        number = self._chain_issue(job)
        return Destination(f"{repo}#{number}", {"repo": repo, "number": number, "chainIssue": True})

    def _chain_issue(self, job: WriteJob) -> int:
        """The issue of this investigation chain: opened once (its body carries the chain marker, so a
        retry after a lost answer finds it instead of opening a second)."""
        repo = self.backend.repo
        root = job.record.stored.root_id
        key = f"{self.backend.name}|{root}"
        status, number, stale = self.ctx.state.claim_chain(key, self.ctx.clock(), CHAIN_LEASE_SECONDS)
        if status == "created" and number:
            return number
        if status == "busy":
            raise WriteError(
                "the chain's issue is being opened by another write",
                transient=True,
                retry_after=5,
                deferral=True,
            )
        needle = chain_marker(root, self.backend.name)
        if stale:
            found = self._probe(repo, needle)
            if found:
                self.ctx.state.set_chain(key, found)
                return found
        try:
            self._take_slot(repo)
        except WriteError:
            self.ctx.state.abandon_chain(key)  # nothing was sent: the next attempt claims afresh
            raise
        title = job.root_title or job.record.stored.request.context.title
        payload: dict[str, Any] = chain_issue(title, job.root_summary, needle)
        if self.backend.labels:
            payload["labels"] = list(self.backend.labels)
        try:
            response = request(
                self.ctx.http,
                "POST",
                self._url(repo, "issues"),
                json=payload,
                headers=self._headers(),
                expect=(201,),
                allow_insecure_local=self.backend.allow_insecure_local,
            )
        except WriteError:
            # GitHub may have opened it before the answer was lost: the next attempt probes first.
            self.ctx.state.release_chain(key)
            raise
        number = int(response.json()["number"])
        self.ctx.state.set_chain(key, number)
        self.ctx.state.set_hint(self.content_gate(repo), number)
        return number

    def _exists(self, repo: str, number: int) -> dict[str, Any] | None:
        """The issue as GitHub answers (raw JSON), or None when there is none with this number."""
        response = request(
            self.ctx.http,
            "GET",
            self._url(repo, "issues", number),
            headers=self._headers(),
            expect=(200, 301, 404, 410),
            allow_insecure_local=self.backend.allow_insecure_local,
        )
        return response.json() if response.status_code == 200 else None

    def _probe(self, repo: str, needle: str) -> int | None:
        """Find the issue an earlier attempt may have opened: locate the newest issue number (gallop,
        then bisect, from the highest number seen), then read back the newest few for the marker."""
        hint = self.ctx.state.get_hint(self.content_gate(repo))
        low, step, high = hint, 1, None
        for _ in range(40):
            candidate = low + step
            if self._exists(repo, candidate) is None:
                high = candidate
                break
            low, step = candidate, step * 2
        if high is None:
            return None
        while high - low > 1:
            mid = (low + high) // 2
            if self._exists(repo, mid) is None:
                high = mid
            else:
                low = mid
        now = self.ctx.clock()
        for number in range(low, max(0, low - PROBE_BACK), -1):
            issue = self._exists(repo, number)
            if issue is None:
                continue
            # The issue's opening post, read like a comment: the broker's own, ending with the marker.
            if own_marker(self.backend, github_entry(self.backend, repo, number, issue, "", now)) == needle:
                return number
        return None

    # -------------------------------------------------------------- comments

    def find(self, dest: Destination, job: WriteJob) -> str | None:
        """The broker's own comment ending with the write's marker, read back from a little before the
        first attempt (a comment by anyone else that quotes the marker is a person's)."""
        repo, number = dest.text("repo"), dest.number("number")
        since = (job.first_at - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for page in range(1, PAGES + 1):
            response = request(
                self.ctx.http,
                "GET",
                self._url(repo, "issues", number, "comments"),
                params={"since": since, "per_page": 100, "page": page},
                headers=self._headers(),
                expect=(200,),
                allow_insecure_local=self.backend.allow_insecure_local,
            )
            comments = response.json()
            now = self.ctx.clock()
            for comment in comments:
                if not isinstance(comment, dict):
                    continue
                entry = github_entry(self.backend, repo, number, comment, "", now)
                if own_marker(self.backend, entry) == job.note.marker:
                    return str(comment.get("html_url") or comment.get("url"))
            if len(comments) < 100:
                break
        return None

    def write(self, dest: Destination, job: WriteJob) -> str:
        """Comment on the issue (in this repository's content-write slot)."""
        repo, number = dest.text("repo"), dest.number("number")
        self._take_slot(repo)
        response = request(
            self.ctx.http,
            "POST",
            self._url(repo, "issues", number, "comments"),
            json={"body": markdown(job.note)},
            headers=self._headers(),
            expect=(201,),
            allow_insecure_local=self.backend.allow_insecure_local,
        )
        data = response.json()
        return str(data.get("html_url") or data.get("url"))


class GitHubReader:
    """Reads people's comments on an issue (``GET .../issues/{n}/comments?since=``)."""

    def __init__(self, backend: GitHubBackend, ctx: WriterContext) -> None:
        self.backend = backend
        self.ctx = ctx

    def entries_since(self, destination: str, since: datetime) -> list[HumanEntry]:
        """Comments created at ``since`` or later (GitHub's ``since`` is on the update time, so edited
        older comments are listed too, and left out here), oldest first."""
        found = _ISSUE_KEY.match(destination)
        if found is None:
            raise WriteError(f"{destination[:80]!r} is not an issue of this backend", transient=False)
        repo, number = found["repo"], int(found["number"])
        url = vendor_url(self.backend.api_base, "repos", *repo.split("/"), "issues", number, "comments")
        stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        now = self.ctx.clock()
        entries: list[HumanEntry] = []
        for page in range(1, PAGES + 1):
            response = request(
                self.ctx.http,
                "GET",
                url,
                params={"since": stamp, "per_page": 100, "page": page},
                headers=github_headers(self.backend, self.ctx),
                expect=(200,),
                allow_insecure_local=self.backend.allow_insecure_local,
            )
            comments = response.json()
            comments = comments if isinstance(comments, list) else []
            entries += [
                github_entry(self.backend, repo, number, c, "", now) for c in comments if isinstance(c, dict)
            ]
            if len(comments) < 100:
                break
        return [entry for entry in entries if entry.at >= since]
