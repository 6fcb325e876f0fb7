"""PagerDuty: a plain-text note on the incident (``POST /incidents/{id}/notes``).

``Authorization: Token token=<key>``, ``Accept: application/vnd.pagerduty+json;version=2``,
``Content-Type: application/json`` (PagerDuty's spec requires it on every operation) and ``From``
with the configured user's e-mail. Stops before PagerDuty's 2,000-notes-per-incident cap.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from handoff.adapters.vendors import WriterContext, request, vendor_url
from handoff.domain.models import is_pagerduty_incident_id
from handoff.domain.shared_memory.config import PagerDutyBackend
from handoff.domain.shared_memory.content import plain_text
from handoff.domain.shared_memory.destinations import pagerduty_incident
from handoff.domain.shared_memory.human_entries import HumanEntry, own_marker
from handoff.domain.shared_memory.vendor_entries import pagerduty_note_entry
from handoff.domain.shared_memory.writes import Destination, WriteError, WriteJob


def pagerduty_headers(backend: PagerDutyBackend, ctx: WriterContext, *, post: bool = False) -> dict[str, str]:
    """PagerDuty's documented request headers with the backend's key (``From`` on writes)."""
    headers = {
        "Authorization": f"Token token={ctx.secret(backend.secret_setting)}",
        "Accept": "application/vnd.pagerduty+json;version=2",
        "Content-Type": "application/json",
    }
    if post:
        headers["From"] = backend.from_email
    return headers


def list_notes(backend: PagerDutyBackend, ctx: WriterContext, incident: str) -> list[dict[str, Any]]:
    """The incident's notes as PagerDuty answers (raw JSON, oldest first)."""
    response = request(
        ctx.http,
        "GET",
        vendor_url(backend.api_base, "incidents", incident, "notes"),
        headers=pagerduty_headers(backend, ctx),
        expect=(200,),
        allow_insecure_local=backend.allow_insecure_local,
    )
    notes = response.json().get("notes", [])
    return [note for note in notes if isinstance(note, dict)] if isinstance(notes, list) else []


class PagerDutyWriter:
    """Writes plain-text incident notes."""

    def __init__(self, backend: PagerDutyBackend, ctx: WriterContext) -> None:
        self.backend = backend
        self.ctx = ctx

    def _headers(self, *, post: bool = False) -> dict[str, str]:
        return pagerduty_headers(self.backend, self.ctx, post=post)

    def destination(self, job: WriteJob) -> Destination | None:
        """The incident the handoff names (or its alert's ``pagerdutyIncidentId``); None without one."""
        incident_id = pagerduty_incident(job.record, job.details)
        if not incident_id:
            return None
        return Destination(f"incident {incident_id}", {"incident": incident_id})

    def _notes(self, incident: str) -> list[dict[str, Any]]:
        """The incident's notes as PagerDuty answers (raw JSON)."""
        return list_notes(self.backend, self.ctx, incident)

    def find(self, dest: Destination, job: WriteJob) -> str | None:
        """The broker's own note ending with the write's marker, if any (a note by anyone else that
        quotes the marker is a person's)."""
        incident = dest.text("incident")
        now = self.ctx.clock()
        for note in self._notes(incident):
            entry = pagerduty_note_entry(self.backend.name, incident, note, None, now)
            if own_marker(self.backend, entry) == job.note.marker:
                return f"incident {incident} note {note.get('id')}"
        return None

    def write(self, dest: Destination, job: WriteJob) -> str:
        """Add the note (an earlier attempt's note is looked for by :meth:`find`, on a retry only);
        skipped (a warning) at the note cap."""
        incident = dest.text("incident")
        notes = self._notes(incident)
        limit = self.ctx.settings.shared_memory_pagerduty_note_limit
        if len(notes) >= limit:
            raise WriteError(
                f"incident {incident} has {len(notes)} notes; stopping at {limit} "
                "(PagerDuty allows at most 2,000 per incident)",
                transient=False,
                skip=True,
            )
        url = vendor_url(self.backend.api_base, "incidents", incident, "notes")
        response = request(
            self.ctx.http,
            "POST",
            url,
            json={"note": {"content": plain_text(job.note)}},
            headers=self._headers(post=True),
            expect=(200, 201),
            allow_insecure_local=self.backend.allow_insecure_local,
        )
        note_id = response.json().get("note", {}).get("id")
        return f"incident {incident} note {note_id}"


class PagerDutyReader:
    """Reads people's notes on an incident (``GET /incidents/{id}/notes``: all of them, unpaged)."""

    def __init__(self, backend: PagerDutyBackend, ctx: WriterContext) -> None:
        self.backend = backend
        self.ctx = ctx

    def entries_since(self, destination: str, since: datetime) -> list[HumanEntry]:
        """Notes created at ``since`` or later (none on a record that is no PagerDuty incident id: it is
        never asked for)."""
        if not is_pagerduty_incident_id(destination):
            return []
        now = self.ctx.clock()
        notes = list_notes(self.backend, self.ctx, destination)
        entries = [pagerduty_note_entry(self.backend.name, destination, note, None, now) for note in notes]
        return [entry for entry in entries if entry.at >= since]
