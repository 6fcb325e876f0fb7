"""Simulated ServiceNow Table API: incidents and their journal fields (``work_notes``, ``comments``).

ServiceNow publishes no static OpenAPI document, so the checks follow its documentation: ``Accept``
and ``Content-Type`` are required on PUT/PATCH (``400`` otherwise), Basic or bearer auth, journal
fields append an entry (in ``sys_journal_field``) and read back as ``""``, error bodies
``{"error": {"message", "detail"}, "status": "failure"}``. ``rate_limit()`` injects the documented 429.
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.responses import JSONResponse, Response

from devserver.fakes._service import Call, HttpError, utc_now
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
            found = [dict(r) for r in rows if all(_holds(r, c) for c in conditions)][:limit]
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
                    self._journal.append(
                        {
                            "sys_id": secrets.token_hex(16),
                            "element": name,
                            "element_id": sys_id,
                            "name": table,
                            "value": value,
                            "sys_created_on": utc_now(),
                            "sys_created_by": (call.claims or {}).get("user"),
                        }
                    )
                else:
                    record[name] = value
            result = dict(record)
        return JSONResponse({"result": result})


def _parse_query(query: str) -> list[tuple[str, str, str]]:
    conditions = []
    for part in filter(None, query.split("^")):
        if "LIKE" in part:
            field, _, value = part.partition("LIKE")
            conditions.append((field, "LIKE", value))
        else:
            field, _, value = part.partition("=")
            conditions.append((field, "=", value))
    return conditions


def _holds(row: dict[str, Any], condition: tuple[str, str, str]) -> bool:
    field, op, value = condition
    actual = str(row.get(field, ""))
    return value in actual if op == "LIKE" else actual == value
