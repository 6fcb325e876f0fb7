"""A2A push notifications: the partner says its task ended, so the hand-back does not wait for a poll.

When the partner's agent card declares push notifications, the handoff's ``SendMessage`` asks it to POST
the task's updates to ``{base URL}/api/a2a/push/{handoffId}`` with a token of that handoff's own: the
HMAC-SHA256 of the handoff id under a secret of the broker's (:func:`push_token`), so nothing is stored
per handoff and no token opens another handoff. The a2a-sdk sends the token in
``X-A2A-Notification-Token``; a partner that sends it as ``Authorization: Bearer`` is understood too.

A notification is a hint, never the result: its state decides only whether to look now, and the look is
the usual ``a2aPoll`` (``GetTask`` with the broker's own credentials) queued without delay. Partners
deliver at least once; the hand-back is recorded once however often the task is looked at.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from handoff.domain.auth import Authorizer, Caller
from handoff.domain.errors import NotFound, Unauthorized, Unprocessable, single_field
from handoff.domain.ids import is_uuid
from handoff.domain.intake import MAX_RPC_BODY_BYTES, load_json
from handoff.domain.work import A2APoll
from handoff.services.context import ServiceContext
from handoff.settings import Settings

log = logging.getLogger("handoff")

PUSH_SECRET = "a2a-push"  # noqa: S105 - the name of the secret's row, not a secret
PUSH_ROUTE = "a2a/push"  # under /api, followed by the handoff id
TOKEN_HEADER = "X-A2A-Notification-Token"  # noqa: S105 - a header name, not a secret
MAX_NOTIFICATION_BYTES = MAX_RPC_BODY_BYTES
MAX_TASK_ID = 256
STATE_PREFIX = "TASK_STATE_"
# Task states after which the broker looks at once (the poll decides what they mean for the handoff).
ENDING_STATES = frozenset({"COMPLETED", "FAILED", "CANCELED", "REJECTED", "INPUT_REQUIRED"})
KNOWN_STATES = ENDING_STATES | {"SUBMITTED", "WORKING", "AUTH_REQUIRED", "UNSPECIFIED", "UNKNOWN"}
# The events of a v1.0 StreamResponse that carry a state, with the name of their task id (camelCase as
# ProtoJSON writes them, snake_case from peers that keep the proto field names).
STATED_EVENTS = (("task", "id"), ("statusUpdate", "taskId"), ("status_update", "task_id"))
STATELESS_EVENTS = ("artifactUpdate", "artifact_update", "message")
WAITING = ("accepted", "delivered")


def push_token(secret: bytes, handoff_id: str) -> str:
    """The token a partner presents with the notifications of one handoff's task (base64url, unpadded)."""
    digest = hmac.new(secret, handoff_id.encode("utf-8", "replace"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def push_url(settings: Settings, handoff_id: str) -> str:
    """Where a partner pushes the notifications of one handoff's task (the broker's public base URL)."""
    return f"{settings.base_url}/api/{PUSH_ROUTE}/{handoff_id}"


def presented_token(headers: Mapping[str, str]) -> str:
    """The token a notification carries: ``X-A2A-Notification-Token``, else a bearer token."""
    lowered = {key.lower(): value for key, value in headers.items()}
    token = lowered.get(TOKEN_HEADER.lower(), "").strip()
    if token:
        return token
    scheme, _, credentials = lowered.get("authorization", "").strip().partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


@dataclass(frozen=True)
class Notification:
    """What the broker reads of a push notification: the task it is about (and where the body names it)
    and the state it reports (None for an event without one: an artifact, a message)."""

    task_id: str | None
    task_id_field: str
    state: str | None

    @property
    def ends_task(self) -> bool:
        """Whether the state is one after which the broker looks at the task at once."""
        return self.state in ENDING_STATES


def task_state(value: str) -> str:
    """An A2A task state in the broker's spelling: ``TASK_STATE_INPUT_REQUIRED`` (v1.0) and
    ``input-required`` (v0.3) are both ``INPUT_REQUIRED``."""
    state = value.strip().upper().replace("-", "_").removeprefix(STATE_PREFIX)
    return "CANCELED" if state == "CANCELLED" else state


def read_notification(body: bytes) -> Notification:
    """The notification in ``body``: a v1.0 ``StreamResponse`` (``task``, ``statusUpdate``,
    ``artifactUpdate`` or ``message``), or a v0.3 task or status-update event sent as it is.
    A body that is none of these is a 4xx problem naming the field."""
    data: Any = load_json(body, limit_bytes=MAX_NOTIFICATION_BYTES, what="push notification")
    if not isinstance(data, dict):
        raise single_field(Unprocessable, "/", "a push notification is a JSON object (an A2A StreamResponse)")
    for key, id_key in STATED_EVENTS:
        if key in data:
            return _stated(data[key], f"/{key}", id_key)
    for key in STATELESS_EVENTS:
        if key in data:
            event = data[key]
            if not isinstance(event, dict):
                raise single_field(Unprocessable, f"/{key}", "must be a JSON object")
            task_id = event.get("taskId", event.get("task_id"))
            usable = isinstance(task_id, str) and 0 < len(task_id) <= MAX_TASK_ID
            return Notification(task_id if usable else None, f"/{key}/taskId", None)
    if "status" in data:  # v0.3 peers send the task (or a status-update event) itself
        return _stated(data, "", "taskId" if data.get("kind") == "status-update" else "id")
    raise single_field(
        Unprocessable,
        "/",
        "not an A2A push notification: expected task, statusUpdate, artifactUpdate or message",
    )


def _stated(event: object, where: str, id_key: str) -> Notification:
    if not isinstance(event, dict):
        raise single_field(Unprocessable, where or "/", "must be a JSON object")
    task_id = event.get(id_key)
    if not isinstance(task_id, str) or not task_id.strip() or len(task_id) > MAX_TASK_ID:
        raise single_field(
            Unprocessable, f"{where}/{id_key}", f"must be the task's id (1 to {MAX_TASK_ID} characters)"
        )
    status = event.get("status")
    if not isinstance(status, dict):
        raise single_field(Unprocessable, f"{where}/status", "must be an object with the task's state")
    raw = status.get("state")
    state = task_state(raw) if isinstance(raw, str) else None
    if state not in KNOWN_STATES:
        raise single_field(
            Unprocessable, f"{where}/status/state", "must be an A2A task state, e.g. TASK_STATE_COMPLETED"
        )
    return Notification(task_id, f"{where}/{id_key}", state)


class PushReceiver:
    """Takes partners' push notifications (``POST /api/a2a/push/{handoffId}``)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self._secret: bytes | None = None

    def token(self, handoff_id: str) -> str:
        """The push token of a handoff (the broker's secret is read once)."""
        if self._secret is None:
            self._secret = self.ctx.store.secret(PUSH_SECRET)
        return push_token(self._secret, handoff_id)

    def receive(self, handoff_id: str, headers: Mapping[str, str], body: bytes) -> tuple[dict[str, str], int]:
        """202 with the task looked at at once when the notification says it ended; 200 when there is
        nothing to do (a state that does not end the task, a handoff no longer waiting for it). 401
        without the handoff's token, before anything else is read; 4xx naming the field for a body
        that is not a notification or a task that is not the handoff's."""
        self._authenticate(handoff_id, headers)
        notification = read_notification(body)
        record = self.ctx.store.get(handoff_id)
        if record is None:
            raise single_field(NotFound, "handoffId", "no handoff with this id")
        state = record.state
        if state.remote_task_id and notification.task_id and notification.task_id != state.remote_task_id:
            raise single_field(Unprocessable, notification.task_id_field, "not the task of this handoff")
        if record.handbacks or state.status not in WAITING:
            return {"status": "ignored", "reason": f"the handoff is {state.status}"}, 200
        if not notification.ends_task:
            shown = notification.state or "no state"
            return {"status": "ignored", "reason": f"{shown} does not end the task"}, 200
        # The worker fetches the task itself (GetTask) rather than trusting this body.
        self.ctx.queue.send(A2APoll(handoff_id=handoff_id, notified=True).wire(), 0)
        log.info("push notification for %s: task is %s, looking now", handoff_id, notification.state)
        return {"status": "queued"}, 202

    def _authenticate(self, handoff_id: str, headers: Mapping[str, str]) -> None:
        presented = presented_token(headers)
        expected = self.token(handoff_id) if presented and is_uuid(handoff_id) else ""
        genuine = bool(expected) and hmac.compare_digest(
            presented.encode("utf-8", "replace"), expected.encode("ascii")
        )
        if not genuine:
            raise Authorizer.refuse(
                Caller("local", name="a2a-push"),
                "deliver an A2A push notification",
                f"{PUSH_ROUTE}/{handoff_id}",
                Unauthorized("missing or invalid push notification token"),
            )
