"""ServiceNow: a journal entry (``work_notes`` or ``comments``) on the incident through the Table API.

Journal fields append a new entry on every write; entries are read back from ``sys_journal_field``
to find an earlier write's marker. The credential is ``user:password`` (Basic) or an OAuth token.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from handoff.adapters.vendors import WriterContext, json_api_headers, request, vendor_url
from handoff.domain.models import is_path_segment_id
from handoff.domain.shared_memory.config import ServiceNowBackend
from handoff.domain.shared_memory.content import plain_text
from handoff.domain.shared_memory.human_entries import HumanEntry, own_marker
from handoff.domain.shared_memory.vendor_entries import servicenow_entry
from handoff.domain.shared_memory.writes import Destination, WriteError, WriteJob

_SYS_ID = re.compile(r"^[0-9a-f]{32}$")
JOURNAL_FIELDS = "sys_id,element,element_id,name,value,sys_created_by,sys_created_on"
READ_LIMIT = 100


class ServiceNowWriter:
    """Writes plain-text journal entries."""

    def __init__(self, backend: ServiceNowBackend, ctx: WriterContext) -> None:
        self.backend = backend
        self.ctx = ctx

    def _headers(self) -> dict[str, str]:
        return json_api_headers(self.ctx.secret(self.backend.secret_setting))

    def _table_url(self, table: str, sys_id: str = "") -> str:
        return vendor_url(self.backend.api_base, "api", "now", "table", table, *([sys_id] if sys_id else []))

    def destination(self, job: WriteJob) -> Destination | None:
        """The incident the handoff names (a sys_id, or a number looked up); None without one."""
        incident = job.record.stored.request.context.incident
        if not incident or (incident.platform or "").lower() != "servicenow":
            return None
        ref = incident.id.strip()
        table = self.backend.table
        if _SYS_ID.match(ref):
            return Destination(f"{table}/{ref}", {"sysId": ref, "number": None})
        if not is_path_segment_id(ref):
            # '^' or '=' would add conditions to the encoded query below (and so pick another record).
            raise WriteError(
                f"incident id {ref[:80]!r} is not a ServiceNow number or sys_id", transient=False
            )
        response = request(
            self.ctx.http,
            "GET",
            self._table_url(table),
            params={
                "sysparm_query": f"number={ref}",
                "sysparm_fields": "sys_id,number",
                "sysparm_limit": "1",
            },
            headers=self._headers(),
            expect=(200,),
            allow_insecure_local=self.backend.allow_insecure_local,
        )
        found = response.json().get("result", [])
        if not found:
            return None
        return Destination(f"{table}/{ref}", {"sysId": found[0]["sys_id"], "number": ref})

    def find(self, dest: Destination, job: WriteJob) -> str | None:
        """The broker's own journal entry ending with the write's marker, if any: the entries that
        contain the marker are read back and a person's that quotes it is passed over."""
        sys_id = dest.text("sysId")
        query = (
            f"element_id={sys_id}^element={self.backend.field}^valueLIKE{job.note.marker}"
            "^ORDERBYsys_created_on"
        )
        response = request(
            self.ctx.http,
            "GET",
            self._table_url("sys_journal_field"),
            params={"sysparm_query": query, "sysparm_fields": JOURNAL_FIELDS, "sysparm_limit": READ_LIMIT},
            headers=self._headers(),
            expect=(200,),
            allow_insecure_local=self.backend.allow_insecure_local,
        )
        rows = response.json().get("result", [])
        now = self.ctx.clock()
        entries = [servicenow_entry(self.backend, row, now) for row in rows if isinstance(row, dict)]
        for entry in entries:
            if own_marker(self.backend, entry) == job.note.marker:
                return f"{dest.label} {self.backend.field} {entry.entry_id}"
        return None

    def write(self, dest: Destination, job: WriteJob) -> str:
        """Append a journal entry (a PATCH of the journal field adds one)."""
        request(
            self.ctx.http,
            "PATCH",
            self._table_url(self.backend.table, dest.text("sysId")),
            params={"sysparm_fields": "sys_id,number"},
            json={self.backend.field: plain_text(job.note)},
            headers=self._headers(),
            expect=(200,),
            allow_insecure_local=self.backend.allow_insecure_local,
        )
        return f"{dest.label} {self.backend.field}"


class ServiceNowReader:
    """Reads people's journal entries on an incident (Table API on ``sys_journal_field``)."""

    def __init__(self, backend: ServiceNowBackend, ctx: WriterContext) -> None:
        self.backend = backend
        self.ctx = ctx

    def entries_since(self, destination: str, since: datetime) -> list[HumanEntry]:
        """Entries of the backend's journal ``field`` on the record created at ``since`` or later
        (``sys_created_on`` is UTC in the Table API's default, non-display values), oldest first."""
        if not _SYS_ID.match(destination):
            raise WriteError(f"{destination[:80]!r} is not a sys_id", transient=False)
        stamp = since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        query = (
            f"element_id={destination}^element={self.backend.field}^name={self.backend.table}"
            f"^sys_created_on>={stamp}^ORDERBYsys_created_on"
        )
        response = request(
            self.ctx.http,
            "GET",
            vendor_url(self.backend.api_base, "api", "now", "table", "sys_journal_field"),
            params={"sysparm_query": query, "sysparm_fields": JOURNAL_FIELDS, "sysparm_limit": READ_LIMIT},
            headers=json_api_headers(self.ctx.secret(self.backend.secret_setting)),
            expect=(200,),
            allow_insecure_local=self.backend.allow_insecure_local,
        )
        rows = response.json().get("result", [])
        now = self.ctx.clock()
        found = [servicenow_entry(self.backend, row, now) for row in rows if isinstance(row, dict)]
        # Whole seconds on the wire: what the cursor's own second holds comes back, and the cursor skips it.
        return [entry for entry in found if entry.at >= since.replace(microsecond=0)]
