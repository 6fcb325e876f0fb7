"""Simulated PagerDuty REST API v2 incident notes (as in ``pagerduty-rest.json``).

Enforces ``Authorization: Token token=<key>`` exactly, the ``Accept`` version header and
``Content-Type: application/json`` on every operation (the spec marks them required; validators skip
them), ``From`` on note creation, and the 2,000-notes-per-incident cap. Answers with ``ratelimit-*``
headers; ``rate_limit()`` injects the documented 429.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

import httpx
from starlette.responses import JSONResponse, Response

from devserver.fakes._service import Call, HttpError, utc_now
from devserver.fakes._vendor import VendorFake, epoch

ACCEPT = "application/vnd.pagerduty+json;version=2"
NOTE_CAP = 2000


def _error(status: int, message: str, code: int, errors: list[str] | None = None) -> HttpError:
    body: dict[str, Any] = {"error": {"message": message, "code": code}}
    if errors:
        body["error"]["errors"] = errors
    return HttpError(status, body)


class FakePagerDuty(VendorFake):
    """Incidents and their notes, in memory."""

    service_name = "fake-pagerduty"
    spec_file = "pagerduty-rest.json"

    def __init__(self, tokens: tuple[str, ...] = ("pd_test_key",), users: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.tokens = set(tokens)
        self.users = {u.lower() for u in users}
        self._incidents: dict[str, list[dict[str, Any]]] = {}
        self.route("GET", "/incidents/{id}", self._get_incident)
        self.route("GET", "/incidents/{id}/notes", self._list_notes)
        self.route("POST", "/incidents/{id}/notes", self._create_note)

    def add_incident(self, incident_id: str, notes: int = 0) -> None:
        """Create an incident, optionally with ``notes`` notes already on it."""
        with self.lock:
            items = self._incidents.setdefault(incident_id, [])
            for index in range(notes):
                items.append(self._note(f"Earlier note {index}", "oncall@contoso.com"))

    def notes(self, incident_id: str) -> list[dict[str, Any]]:
        """Notes of an incident, oldest first."""
        with self.lock:
            return [dict(n) for n in self._incidents.get(incident_id, [])]

    def add_human_note(self, incident_id: str, content: str, user_id: str = "PALICE1") -> dict[str, Any]:
        """A person adds a note to an incident (in the web UI); returns the note."""
        with self.lock:
            note = self._note(content, "alice@contoso.com")
            note["user"] = {**note["user"], "id": user_id, "summary": "Alice Oncall"}
            self._incidents.setdefault(incident_id, []).append(note)
            return dict(note)

    @staticmethod
    def annotated_event(
        incident_id: str, note: dict[str, Any], event_id: str | None = None
    ) -> dict[str, Any]:
        """The v3 webhook payload of ``incident.annotated`` for ``note``."""
        return {
            "event": {
                "id": event_id or "01" + uuid.uuid4().hex[:24].upper(),
                "event_type": "incident.annotated",
                "resource_type": "incident",
                "occurred_at": note["created_at"],
                "agent": {
                    "html_url": f"https://subdomain.pagerduty.com/users/{note['user']['id']}",
                    "id": note["user"]["id"],
                    "self": f"https://api.pagerduty.com/users/{note['user']['id']}",
                    "summary": note["user"]["summary"],
                    "type": "user_reference",
                },
                "client": None,
                "data": {
                    "incident": {
                        "html_url": f"https://subdomain.pagerduty.com/incidents/{incident_id}",
                        "id": incident_id,
                        "self": f"https://api.pagerduty.com/incidents/{incident_id}",
                        "summary": incident_id,
                        "type": "incident_reference",
                    },
                    "id": note["id"],
                    "content": note["content"],
                    "trimmed": False,
                    "type": "incident_note",
                },
            }
        }

    @staticmethod
    def send_webhook(
        url: str, secrets: tuple[str, ...], payload: dict[str, Any], signature: str | None = None
    ) -> httpx.Response:
        """Deliver a v3 webhook as PagerDuty documents it: ``X-PagerDuty-Signature`` lists
        ``v1=<hex HMAC-SHA256 of the raw body>`` for each secret (several while one is rotated)."""
        body = json.dumps(payload).encode()
        signatures = ",".join(
            "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest() for secret in secrets
        )
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "PagerDuty-Webhook/V3.0",
            "X-Webhook-Id": str(uuid.uuid4()),
            "X-Webhook-Subscription": "PSUBSCR",
        }
        if signature != "":
            headers["X-PagerDuty-Signature"] = signature or signatures
        return httpx.post(url, content=body, headers=headers, timeout=30)

    def reset(self) -> None:
        """Clear faults, requests and incidents."""
        super().reset()
        with self.lock:
            self._incidents.clear()

    def rate_limit(self, times: int = 1, reset_seconds: int = 2) -> None:
        """Answer the next requests with PagerDuty's 429 (``ratelimit-reset`` in seconds)."""
        self.inject(
            None,
            "/incidents/**",
            429,
            times=times,
            body={"error": {"message": "Rate Limit Exceeded", "code": 2020}},
            headers={
                "ratelimit-limit": "960",
                "ratelimit-remaining": "0",
                "ratelimit-reset": str(reset_seconds),
            },
        )

    def rate_limit_headers(self) -> dict[str, str]:
        return {
            "ratelimit-limit": "960",
            "ratelimit-remaining": "959",
            "ratelimit-reset": str(60 - epoch() % 60),
        }

    def authenticate(self, call: Call) -> dict[str, Any] | None:
        auth = call.request.headers.get("authorization", "")
        if not auth.startswith("Token token=") or auth[len("Token token=") :] not in self.tokens:
            raise _error(401, "Unauthorized", 2006)
        headers = call.request.headers
        if ACCEPT not in headers.get("accept", ""):
            raise _error(400, "Invalid Input Provided", 2001, [f"Accept must be {ACCEPT}"])
        if headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise _error(400, "Invalid Input Provided", 2001, ["Content-Type must be application/json"])
        return {"key": "account"}

    def _checked(self, call: Call) -> tuple[Any, str]:
        body, params = self.check(
            call,
            status=400,
            shape=lambda errors: {
                "error": {"message": "Invalid Input Provided", "code": 2001, "errors": errors}
            },
        )
        if params["id"] not in self._incidents:
            raise _error(404, "Not Found", 2100)
        return body, params["id"]

    def _note(self, content: str, email: str) -> dict[str, Any]:
        return {
            "id": f"PN{self.next_id():05d}",
            "user": {
                "id": "PXPGF42",
                "type": "user_reference",
                "summary": email,
                "self": "https://api.pagerduty.com/users/PXPGF42",
                "html_url": "https://subdomain.pagerduty.com/users/PXPGF42",
            },
            "channel": {"summary": "The PagerDuty website or APIs"},
            "content": content,
            "created_at": utc_now(),
        }

    async def _get_incident(self, call: Call) -> Response:
        _, incident = self._checked(call)
        return JSONResponse(
            {
                "incident": {
                    "id": incident,
                    "type": "incident",
                    "summary": incident,
                    "self": f"https://api.pagerduty.com/incidents/{incident}",
                    "html_url": f"https://subdomain.pagerduty.com/incidents/{incident}",
                }
            }
        )

    async def _list_notes(self, call: Call) -> Response:
        _, incident = self._checked(call)
        return JSONResponse({"notes": self.notes(incident)})

    async def _create_note(self, call: Call) -> Response:
        body, incident = self._checked(call)
        sender = call.request.headers.get("from", "")
        if self.users and sender.lower() not in self.users:
            raise _error(400, "Invalid Input Provided", 2001, ["From must be a user of the account"])
        with self.lock:
            items = self._incidents[incident]
            if len(items) >= NOTE_CAP:
                raise _error(400, "Invalid Input Provided", 2001, ["A maximum of 2000 notes can be added"])
            note = self._note(body["note"]["content"], sender)
            items.append(note)
        return JSONResponse({"note": note})
