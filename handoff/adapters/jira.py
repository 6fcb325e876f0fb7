"""Jira Cloud: a comment in Atlassian Document Format, with a Mermaid code block of the chain.

The credential is ``email:api-token`` (HTTP Basic, as Atlassian documents for API tokens) or an OAuth
bearer token.
"""

from __future__ import annotations

from datetime import datetime

from handoff.adapters.vendors import WriterContext, json_api_headers, request, vendor_url
from handoff.domain.shared_memory.config import JiraBackend
from handoff.domain.shared_memory.content import adf
from handoff.domain.shared_memory.destinations import jira_issue
from handoff.domain.shared_memory.human_entries import HumanEntry, own_marker
from handoff.domain.shared_memory.vendor_entries import jira_entry
from handoff.domain.shared_memory.writes import Destination, WriteError, WriteJob

# Pages of 100 comments a poll reads back, newest first, before it stops.
READ_PAGES = 5


class JiraWriter:
    """Writes ADF comments."""

    def __init__(self, backend: JiraBackend, ctx: WriterContext) -> None:
        self.backend = backend
        self.ctx = ctx

    def _headers(self) -> dict[str, str]:
        return json_api_headers(self.ctx.secret(self.backend.secret_setting))

    def destination(self, job: WriteJob) -> Destination | None:
        """The handoff's issue inside the backend's project, else the backend's fixed issue."""
        key = jira_issue(self.backend, job.record)
        return Destination(key, {"key": key}) if key else None

    def _url(self, key: str) -> str:
        return vendor_url(self.backend.api_base, "rest", "api", "3", "issue", key, "comment")

    def find(self, dest: Destination, job: WriteJob) -> str | None:
        """The broker's own comment ending with the write's marker among the newest hundred, if any (a
        comment by anyone else that quotes the marker is a person's)."""
        key = dest.text("key")
        response = request(
            self.ctx.http,
            "GET",
            self._url(key),
            params={"orderBy": "-created", "maxResults": 100},
            headers=self._headers(),
            expect=(200,),
            allow_insecure_local=self.backend.allow_insecure_local,
        )
        now = self.ctx.clock()
        for comment in response.json().get("comments", []):
            if not isinstance(comment, dict):
                continue
            if own_marker(self.backend, jira_entry(self.backend, key, comment, "", now)) == job.note.marker:
                return str(comment.get("self") or comment.get("id"))
        return None

    def write(self, dest: Destination, job: WriteJob) -> str:
        """Add the comment."""
        response = request(
            self.ctx.http,
            "POST",
            self._url(dest.text("key")),
            json={"body": adf(job.note)},
            headers=self._headers(),
            expect=(201,),
            allow_insecure_local=self.backend.allow_insecure_local,
        )
        data = response.json()
        return str(data.get("self") or data.get("id"))


class JiraReader:
    """Reads people's comments on an issue (``GET /rest/api/3/issue/{key}/comment``)."""

    def __init__(self, backend: JiraBackend, ctx: WriterContext) -> None:
        self.backend = backend
        self.ctx = ctx

    def entries_since(self, destination: str, since: datetime) -> list[HumanEntry]:
        """Comments created at ``since`` or later. Read newest first (``orderBy=-created``), page by
        page, down to the first older one: a poll reads only what is new, however long the issue."""
        if not self.backend.may_write_to(destination):
            raise WriteError(f"{destination[:80]!r} is not an issue of this backend", transient=False)
        url = vendor_url(self.backend.api_base, "rest", "api", "3", "issue", destination, "comment")
        now = self.ctx.clock()
        entries: list[HumanEntry] = []
        for page in range(READ_PAGES):
            response = request(
                self.ctx.http,
                "GET",
                url,
                params={"orderBy": "-created", "startAt": page * 100, "maxResults": 100},
                headers=json_api_headers(self.ctx.secret(self.backend.secret_setting)),
                expect=(200,),
                allow_insecure_local=self.backend.allow_insecure_local,
            )
            comments = response.json().get("comments", [])
            comments = [c for c in comments if isinstance(c, dict)] if isinstance(comments, list) else []
            found = [jira_entry(self.backend, destination, comment, "", now) for comment in comments]
            entries += [entry for entry in found if entry.at >= since]
            if len(comments) < 100 or any(entry.at < since for entry in found):
                break
        return entries
