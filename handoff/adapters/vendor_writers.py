"""Which writer serves which backend ``type``: adding a backend is one module plus an entry here.

Used by the composition root only; the use cases reach writers through :class:`handoff.ports.Writers`.
"""

from __future__ import annotations

from handoff.adapters.github import GitHubWriter
from handoff.adapters.jira import JiraWriter
from handoff.adapters.pagerduty import PagerDutyWriter
from handoff.adapters.servicenow import ServiceNowWriter
from handoff.adapters.vendors import WriterContext
from handoff.domain.shared_memory.config import Backend
from handoff.ports import Writer


def make_writer(backend: Backend, ctx: WriterContext) -> Writer:
    """The writer for a configured backend."""
    if backend.type == "github":
        return GitHubWriter(backend, ctx)
    if backend.type == "pagerduty":
        return PagerDutyWriter(backend, ctx)
    if backend.type == "servicenow":
        return ServiceNowWriter(backend, ctx)
    if backend.type == "jira":
        return JiraWriter(backend, ctx)
    raise ValueError(f"no writer for backend type {backend.type!r}")


class VendorWriters:
    """Implements :class:`handoff.ports.Writers`: each backend's writer, sharing one context (HTTP
    client, secrets, coordination state)."""

    def __init__(self, ctx: WriterContext) -> None:
        self.ctx = ctx

    def writer_for(self, backend: Backend) -> Writer:
        """A writer for ``backend`` (cheap: writers keep no state of their own)."""
        return make_writer(backend, self.ctx)
