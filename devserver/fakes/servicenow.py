"""Simulated ServiceNow Table API: incidents and their journal fields (``work_notes``, ``comments``).

ServiceNow publishes no static OpenAPI document, so the checks follow its documentation: ``Accept``
and ``Content-Type`` are required on PUT/PATCH (``400`` otherwise), Basic or bearer auth, journal
fields append an entry (in ``sys_journal_field``) and read back as ``""``, error bodies
``{"error": {"message", "detail"}, "status": "failure"}``. ``rate_limit()`` injects the documented 429.
Encoded queries take ``=``, ``!=``, ``LIKE``, ``IN``, ``>=``, ``>``, ``<=``, ``<``, ``ORDERBY`` and
``ORDERBYDESC``.

ServiceNow has no signed webhooks: people's journal entries (:meth:`FakeServiceNow.add_human_entry`)
reach a receiver through a business rule's outbound REST message, which the broker's docs set up with
the shared secret in ``X-Handoff-Webhook-Token`` (:meth:`FakeServiceNow.send_webhook`).
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.responses import JSONResponse, Response

from devserver.fakes._service import Call, HttpError
from devserver.fakes._vendor import VendorFake, basic_credentials, epoch

JOURNAL_FIELDS = ("work_notes", "comments")
SYSPARMS = {
    "sysparm_display_value",
    "sysparm_fields",
    "sysparm_input_display_value",
    "sysparm_query_no_domain",
    "sysparm_view",
    "sysparm_query",
    "sysparm_limit",
    "sysparm_offset",
    "sysparm_exclude_reference_link",
    "sysparm_suppress_pagination_header",
}


def glide_now() -> str:
    """Now as the Table API's (non-display) date-time values: UTC, ``YYYY-MM-DD HH:MM:SS``."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _failure(status: int, message: str, detail: str = "") -> HttpError:
    return HttpError(status, {"error": {"message": message, "detail": detail}, "status": "failure"})


class FakeServiceNow(VendorFake):
    """Records of tables (``incident`` by default) and journal entries, in memory."""

    service_name = "fake-servicenow"

    def __init__(self, users: tuple[tuple[str, str], ...] = (("handoff.bot", "snow_test_password"),)) -> None:
        super().__init__()
        self.users = set(users)
        self._records: dict[str, dict[str, dict[str, Any]]] = {}
        self._journal: list[dict[str, Any]] = []
        for prefix in ("/api/now/table", "/api/now/{version}/table"):
            self.route("GET", prefix + "/{table}", self._query)
            self.route("PATCH", prefix + "/{table}/{sys_id}", self._update)
            self.route("PUT", prefix + "/{table}/{sys_id}", self._update)

    def add_record(self, number: str, table: str = "incident") -> str:
        """Create a record (an incident by default); returns its sys_id."""
        sys_id = secrets.token_hex(16)
        with self.lock:
            self._records.setdefault(table, {})[sys_id] = {
                "sys_id": sys_id,
                "number": number,
                "state": "2",
                "short_description": f"{number} (simulated)",
                "work_notes": "",
                "comments": "",
            }
        return sys_id

    def journal(self, sys_id: str, element: str | None = None) -> list[dict[str, Any]]:
        """Journal entries of a record, oldest first."""
        with self.lock:
            return [
                dict(j)
                for j in self._journal
                if j["element_id"] == sys_id and element in (None, j["element"])
            ]

    def add_human_entry(
        self, sys_id: str, value: str, user: str = "alice.oncall", element: str = "work_notes"
    ) -> dict[str, Any]:
        """A person adds a work note (or comment) to a record in the UI; returns the journal entry."""
        with self.lock:
            table = next((name for name, rows in self._records.items() if sys_id in rows), "incident")
            entry = self._journal_entry(table, sys_id, element, value, user)
            return dict(entry)

    def journal_event(self, entry: dict[str, Any]) -> dict[str, Any]:
        """What the broker's business rule sends for a journal entry (docs/shared-memory.md)."""
        with self.lock:
            record = self._records.get(entry["name"], {}).get(entry["element_id"], {})
        return {
            "sys_id": entry["sys_id"],
            "element": entry["element"],
            "element_id": entry["element_id"],
            "name": entry["name"],
            "number": record.get("number", ""),
            "value": entry["value"],
            "sys_created_by": entry["sys_created_by"],
            "sys_created_on": entry["sys_created_on"],
        }

    @staticmethod
    def send_webhook(
        url: str, secret: str, payload: dict[str, Any], token: str | None = None
    ) -> httpx.Response:
        """POST the business rule's message: JSON body, the shared secret in ``X-Handoff-Webhook-Token``
        (``token`` replaces it, ``""`` leaves it out)."""
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "ServiceNow",
        }
        if token != "":
            headers["X-Handoff-Webhook-Token"] = token or secret
        return httpx.post(url, content=json.dumps(payload).encode(), headers=headers, timeout=30)

    def _journal_entry(self, table: str, sys_id: str, element: str, value: str, user: Any) -> dict[str, Any]:
        entry = {
            "sys_id": secrets.token_hex(16),
            "element": element,
            "element_id": sys_id,
            "name": table,
            "value": value,
            "sys_created_on": glide_now(),
            "sys_created_by": user,
        }
        self._journal.append(entry)
        return entry

    def reset(self) -> None:
        """Clear faults, requests, records and journal."""
        super().reset()
        with self.lock:
            self._records.clear()
            self._journal.clear()

    def rate_limit(self, times: int = 1, retry_after: int = 2) -> None:
        """Answer the next requests with a rate-limit rule's 429."""
        self.inject(
            None,
            "/api/now/**",
            429,
            times=times,
            retry_after=retry_after,
            body={
                "error": {
                    "message": "Rate limit exceeded",
                    "detail": "Rate limit of 100 requests per hour for Table API exceeded",
                },
                "status": "failure",
            },
            headers={
                "X-RateLimit-Limit": "100",
                "X-RateLimit-Reset": str(epoch() + retry_after),
                "X-RateLimit-Rule": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
            },
        )

    def authenticate(self, call: Call) -> dict[str, Any] | None:
        found = basic_credentials(call.request.headers.get("authorization"))
        if found is None or found not in self.users:
            raise _failure(401, "User Not Authenticated", "Required to provide Auth information")
        unknown = [name for name in call.query if name not in SYSPARMS]
        if unknown:
            raise _failure(400, "Invalid query parameter", ", ".join(unknown))
        return {"user": found[0]}

    async def _query(self, call: Call) -> Response:
        table = call.params["table"]
        conditions = _parse_query(call.query.get("sysparm_query", ""))
        limit = int(call.query.get("sysparm_limit", "10000"))
        with self.lock:
            rows = (
                self._journal if table == "sys_journal_field" else list(self._records.get(table, {}).values())
            )
            found = [dict(r) for r in rows if all(_holds(r, c) for c in conditions if c[1] != "ORDERBY")]
        for field, op, value in conditions:
            if op == "ORDERBY":
                found.sort(key=lambda row: str(row.get(field, "")), reverse=value == "DESC")
        found = found[:limit]
        fields = call.query.get("sysparm_fields")
        if fields:
            keep = fields.split(",")
            found = [{k: v for k, v in r.items() if k in keep} for r in found]
        return JSONResponse({"result": found})

    async def _update(self, call: Call) -> Response:
        headers = call.request.headers
        if "application/json" not in headers.get("accept", "") or "application/json" not in headers.get(
            "content-type", ""
        ):
            self._reject(call, ["Accept and Content-Type must be application/json"])
            raise _failure(400, "Accept and Content-Type headers are required for PUT and PATCH")
        body = call.json()
        if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
            self._reject(call, ["body must be an object of field names to string values"])
            raise _failure(400, "Invalid request body", "name-value pairs of fields are expected")
        table, sys_id = call.params["table"], call.params["sys_id"]
        with self.lock:
            record = self._records.get(table, {}).get(sys_id)
            if record is None:
                raise _failure(
                    404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
                )
            for name, value in body.items():
                if name in JOURNAL_FIELDS:
                    self._journal_entry(table, sys_id, name, value, (call.claims or {}).get("user"))
                else:
                    record[name] = value
            result = dict(record)
        return JSONResponse({"result": result})


_OPERATORS = ("!=", ">=", "<=", ">", "<", "=")


def _parse_query(query: str) -> list[tuple[str, str, str]]:
    conditions = []
    for part in filter(None, query.split("^")):
        if part.startswith("ORDERBYDESC"):
            conditions.append((part[len("ORDERBYDESC") :], "ORDERBY", "DESC"))
        elif part.startswith("ORDERBY"):
            conditions.append((part[len("ORDERBY") :], "ORDERBY", "ASC"))
        elif "LIKE" in part:
            field, _, value = part.partition("LIKE")
            conditions.append((field, "LIKE", value))
        elif "IN" in part and "=" not in part:
            field, _, value = part.partition("IN")
            conditions.append((field, "IN", value))
        else:
            at = min((i for i in (part.find(op) for op in _OPERATORS) if i >= 0), default=len(part))
            op = next(op for op in _OPERATORS if part.startswith(op, at)) if at < len(part) else "="
            conditions.append((part[:at], op, part[at + len(op) :]))
    return conditions


def _holds(row: dict[str, Any], condition: tuple[str, str, str]) -> bool:
    field, op, value = condition
    actual = str(row.get(field, ""))
    if op == "LIKE":
        return value in actual
    if op == "IN":
        return actual in value.split(",")
    if op == "=":
        return actual == value
    if op == "!=":
        return actual != value
    # Date-times ("YYYY-MM-DD HH:MM:SS") and numbers compare as the instance compares them.
    return {">=": actual >= value, "<=": actual <= value, ">": actual > value, "<": actual < value}[op]
