"""PagerDuty: a plain-text note on the incident (``POST /incidents/{id}/notes``).

``Authorization: Token token=<key>``, ``Accept: application/vnd.pagerduty+json;version=2``,
``Content-Type: application/json`` (PagerDuty's spec requires it on every operation) and ``From``
with the configured user's e-mail. Stops before PagerDuty's 2,000-notes-per-incident cap.
"""

from __future__ import annotations

from typing import Any

from handoff.adapters.vendors import WriterContext, request, vendor_url
from handoff.domain.shared_memory.config import PagerDutyBackend
from handoff.domain.shared_memory.content import plain_text
from handoff.domain.shared_memory.destinations import pagerduty_incident
from handoff.domain.shared_memory.writes import Destination, WriteError, WriteJob


class PagerDutyWriter:
    """Writes plain-text incident notes."""

    def __init__(self, backend: PagerDutyBackend, ctx: WriterContext) -> None:
        self.backend = backend
        self.ctx = ctx

    def _headers(self, *, post: bool = False) -> dict[str, str]:
        headers = {
            "Authorization": f"Token token={self.ctx.secret(self.backend.secret_setting)}",
            "Accept": "application/vnd.pagerduty+json;version=2",
            "Content-Type": "application/json",
        }
        if post:
            headers["From"] = self.backend.from_email
        return headers

    def destination(self, job: WriteJob) -> Destination | None:
        """The incident the handoff names (or its alert's ``pagerdutyIncidentId``); None without one."""
        incident_id = pagerduty_incident(job.record, job.details)
        if not incident_id:
            return None
        return Destination(f"incident {incident_id}", {"incident": incident_id})

    def _notes(self, incident: str) -> list[dict[str, Any]]:
        """The incident's notes as PagerDuty answers (raw JSON)."""
        url = vendor_url(self.backend.api_base, "incidents", incident, "notes")
        response = request(
            self.ctx.http,
            "GET",
            url,
            headers=self._headers(),
            expect=(200,),
            allow_insecure_local=self.backend.allow_insecure_local,
        )
        return list(response.json().get("notes", []))

    def find(self, dest: Destination, job: WriteJob) -> str | None:
        """The note carrying the write's marker, if any."""
        incident = dest.text("incident")
        for note in self._notes(incident):
            if job.note.marker in str(note.get("content") or ""):
                return f"incident {incident} note {note.get('id')}"
        return None

    def write(self, dest: Destination, job: WriteJob) -> str:
        """Add the note unless it is there already; skipped (a warning) at the note cap."""
        incident = dest.text("incident")
        notes = self._notes(incident)
        for note in notes:
            if job.note.marker in str(note.get("content") or ""):
                return f"incident {incident} note {note.get('id')}"
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
