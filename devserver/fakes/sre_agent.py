"""A simulated Azure SRE Agent data plane (threads, messages, HTTP triggers, approvals).

One :class:`FakeSreAgent` is one ``Microsoft.App/agents`` resource; started, it serves its own base
URL, which plays the part of ``properties.agentEndpoint``. It checks what the real service is known
to check: case-insensitive paths, a bearer token from the token endpoint with an accepted audience
(``https://azuresre.dev``, the SRE Agent app id or ``https://azuresre.ai``; ARM tokens get ``401``),
optionally the caller's principal (``403``), and the request shapes.

Replies of the agent itself can be simulated (``auto_reply``): after a new thread or a user message
the agent appends a message that is incomplete at first (its text grows as if streamed) and becomes
complete after ``auto_reply_delay`` seconds. Completion is evaluated lazily at read time, so no
background task is involved.
"""

from __future__ import annotations

import itertools
import json
import re
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.responses import JSONResponse, Response

from devserver.fakes._service import Call, FakeService, HttpError, iso_at, problem
from devserver.fakes.identity import InvalidTokenError, bearer_claims

#: audience of the official API reference
AUDIENCE_AZURESRE_DEV = "https://azuresre.dev"
#: SRE Agent first-party application id (used as audience by Microsoft's MCP client)
AUDIENCE_APP_ID = "59f0a04a-b322-4310-adc9-39ac41e9631e"
#: audience used by some Microsoft labs
AUDIENCE_AZURESRE_AI = "https://azuresre.ai"
DEFAULT_AUDIENCES: tuple[str, ...] = (AUDIENCE_AZURESRE_DEV, AUDIENCE_APP_ID, AUDIENCE_AZURESRE_AI)

AGENT_ROLE = "SREAgent"
USER_ROLE = "User"
TITLE_MAX = 80

TriggerResponseForm = Literal["flat", "nested"]
ReplyText = str | Callable[[str], str]

_PLACEHOLDER = re.compile(r"\{payload\.([A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*)\}")


def title_from(text: str) -> str:
    """Thread title as the service derives it: first non-empty line, Markdown heading marks removed,
    whitespace collapsed, cut to 80 characters (ending in an ellipsis when cut)."""
    for line in text.splitlines():
        cleaned = " ".join(line.strip().lstrip("#").split())
        if cleaned:
            return cleaned if len(cleaned) <= TITLE_MAX else cleaned[: TITLE_MAX - 1].rstrip() + "…"
    return "New thread"


def default_reply(prompt: str) -> str:
    """Default text of a simulated agent reply."""
    return (
        f"I looked into: {title_from(prompt)}\n\n"
        "Findings: no anomalies remain; the issue is mitigated. (simulated reply)"
    )


def render_trigger_prompt(prompt: str, payload: Any) -> str:
    """Fill ``{payload.field}`` placeholders (dotted paths allowed) from a JSON payload.

    Fields of the payload no placeholder refers to are appended as raw JSON; placeholders naming a
    missing field are left as they are. A payload that is not an object is appended whole.
    """
    if payload is None:
        return prompt
    if not isinstance(payload, dict):
        return f"{prompt}\n\n{json.dumps(payload, ensure_ascii=False)}"
    used: set[str] = set()

    def lookup(match: re.Match[str]) -> str:
        parts = match.group(1).split(".")
        value: Any = payload
        for part in parts:
            if not isinstance(value, dict) or part not in value:
                return match.group(0)
            value = value[part]
        used.add(parts[0])
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    text = _PLACEHOLDER.sub(lookup, prompt)
    rest = {key: value for key, value in payload.items() if key not in used}
    if rest:
        text = f"{text}\n\n{json.dumps(rest, ensure_ascii=False)}"
    return text


def _ci(data: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    """Look a key up the way ASP.NET Core binds JSON (property names compare case-insensitively)."""
    if key in data:
        return True, data[key]
    for name, value in data.items():
        if name.lower() == key.lower():
            return True, value
    return False, None


@dataclass
class Message:
    """One message of a thread (serialised as the SRE Agent message object)."""

    id: str
    seq: int
    role: str
    user_id: str | None
    display_name: str | None
    text: str
    created: float
    message_type: str = "Text"
    complete_at: float | None = None
    approval: dict[str, Any] | None = None
    user_question: dict[str, Any] | None = None
    agent: str | None = None

    def is_complete(self, now: float) -> bool:
        """Whether the message is finished at ``now``."""
        return self.complete_at is None or now >= self.complete_at

    def updated(self, now: float) -> float:
        """When the message last changed as of ``now``."""
        if self.complete_at is not None and now >= self.complete_at:
            return self.complete_at
        return self.created

    def visible_text(self, now: float) -> str:
        """The text so far: while incomplete, a prefix that grows with time."""
        if self.is_complete(now) or self.complete_at is None:
            return self.text
        span = max(self.complete_at - self.created, 1e-6)
        shown = int(len(self.text) * max(0.0, min(1.0, (now - self.created) / span)))
        return self.text[:shown]

    def to_json(self, now: float, *, fake: bool = False) -> dict[str, Any]:
        """The message object (camelCase, ``timeStamp`` with a capital S)."""
        body: dict[str, Any] = {
            "id": self.id,
            "timeStamp": iso_at(self.created),
            "author": {"role": self.role, "userId": self.user_id, "displayName": self.display_name},
            "text": self.visible_text(now),
            "messageType": self.message_type,
            "isComplete": self.is_complete(now),
        }
        if self.approval is not None:
            body["approval"] = dict(self.approval)
        if self.user_question is not None:
            body["userQuestion"] = json.loads(json.dumps(self.user_question))
        if fake:
            body["_fake"] = {"agent": self.agent}
        return body


@dataclass
class Thread:
    """One conversation thread on the agent."""

    id: str
    seq: int
    title: str
    source: str
    created: float
    messages: list[Message]
    agent: str | None = None
    trigger_id: str | None = None
    created_by: str | None = None
    incident_status: str | None = None

    def modified(self, now: float) -> float:
        """Latest change as of ``now``."""
        return max([self.created, *(message.updated(now) for message in self.messages)])

    def to_json(self, now: float, *, fake: bool = False) -> dict[str, Any]:
        """The thread object; with ``fake`` also every message and what the caller sent."""
        start = self.messages[0]
        last = self.messages[-1]
        last_json = last.to_json(now)
        body: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "source": self.source,
            "status": {
                "actionsStatus": {"hasCriticalActions": False, "hasWarningActions": False},
                "incidentStatus": {"incidentId": None, "status": self.incident_status},
            },
            "createdTimestamp": iso_at(self.created),
            "modifiedTimestamp": iso_at(self.modified(now)),
            "startMessage": {
                "author": {"role": start.role, "userId": start.user_id, "displayName": start.display_name},
                "text": start.text,
            },
            "lastMessage": {
                "isComplete": last_json["isComplete"],
                "author": last_json["author"],
                "messageType": last_json["messageType"],
                "text": last_json["text"],
            },
        }
        if fake:
            body["messages"] = [message.to_json(now, fake=True) for message in self.messages]
            body["_fake"] = {"agent": self.agent, "triggerId": self.trigger_id, "createdBy": self.created_by}
        return body


@dataclass
class Trigger:
    """An HTTP trigger: a prompt template that starts a thread when its webhook is called."""

    id: str
    name: str
    prompt: str
    agent: str | None = None
    description: str = ""
    agent_mode: str = "autonomous"
    enabled: bool = True
    response_form: TriggerResponseForm | None = None
    executions: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self, base_url: str | None) -> dict[str, Any]:
        """The trigger as the management API lists it (carries both ``id`` and ``triggerId``)."""
        return {
            "id": self.id,
            "triggerId": self.id,
            "name": self.name,
            "description": self.description,
            "agentPrompt": self.prompt,
            "agent": self.agent,
            "agentMode": self.agent_mode,
            "enabled": self.enabled,
            "triggerUrl": f"{base_url}/api/v1/httptriggers/trigger/{self.id}" if base_url else None,
        }


class FakeSreAgent(FakeService):
    """A simulated SRE Agent (one per agent resource).

    :param name: short name (also the last segment of the default resource id)
    :param resource_id: ARM id of the ``Microsoft.App/agents`` resource
    :param accepted_audiences: token audiences accepted for data-plane calls
    :param allowed_principals: object ids allowed to call (``None``: everyone; others get ``403``)
    :param auto_reply: simulate the agent answering new threads and user messages
    :param auto_reply_text: reply text, or a function of the prompt that returns it
    :param auto_reply_delay: seconds until a simulated reply is complete
    :param trigger_response: ``"flat"`` (documented webhook answer) or ``"nested"`` (``{"execution": {...}}``)
    :param trigger_requires_auth: whether the trigger webhook demands a bearer token (the docs disagree)
    :param secret: token signing secret (default: the process-wide one of the token endpoint)
    """

    service_name = "sre-agent"

    def __init__(
        self,
        name: str,
        resource_id: str | None = None,
        *,
        accepted_audiences: Iterable[str] = DEFAULT_AUDIENCES,
        allowed_principals: Collection[str] | None = None,
        auto_reply: bool = False,
        auto_reply_text: ReplyText | None = None,
        auto_reply_delay: float = 0.5,
        trigger_response: TriggerResponseForm = "flat",
        trigger_requires_auth: bool = True,
        display_name: str = "Azure SRE Agent",
        secret: str | bytes | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.service_name = f"sre-agent-{name}"
        self.resource_id = resource_id or (
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-local"
            f"/providers/Microsoft.App/agents/{name}"
        )
        self.accepted_audiences = tuple(accepted_audiences)
        self.allowed_principals = None if allowed_principals is None else set(allowed_principals)
        self.auto_reply = auto_reply
        self.auto_reply_text: ReplyText = auto_reply_text or default_reply
        self.auto_reply_delay = auto_reply_delay
        self.trigger_response: TriggerResponseForm = trigger_response
        self.trigger_requires_auth = trigger_requires_auth
        self.display_name = display_name
        self.secret = secret
        self._threads: dict[str, Thread] = {}
        self._triggers: dict[str, Trigger] = {}
        self._seq = itertools.count(1)
        self._add_routes()

    # ----------------------------------------------------------------- wiring
    def _add_routes(self) -> None:
        r = self.route
        r("GET", "/api/v1/threads", self._list_threads)
        r("POST", "/api/v1/threads", self._create_thread)
        r("GET", "/api/v1/threads/{thread_id}", self._get_thread)
        r("DELETE", "/api/v1/threads/{thread_id}", self._delete_thread)
        r("GET", "/api/v1/threads/{thread_id}/messages", self._list_messages)
        r("POST", "/api/v1/threads/{thread_id}/messages", self._post_message)
        r("GET", "/api/v1/approvals/{thread_id}", self._list_approvals)
        r("POST", "/api/v1/approvals/{approval_id}/approve", self._approve)
        r("POST", "/api/v1/approvals/{thread_id}/{approval_id}/decision", self._decide)
        r(
            "POST",
            "/api/v1/httptriggers/trigger/{trigger_id}",
            self._fire_trigger,
            auth=self.trigger_requires_auth,
        )
        r("GET", "/api/v1/httptriggers", self._list_triggers)
        r("POST", "/api/v1/httptriggers/create", self._create_trigger)
        r("GET", "/api/v1/httptriggers/{trigger_id}", self._get_trigger)
        r("PUT", "/api/v1/httptriggers/{trigger_id}", self._update_trigger)
        r("DELETE", "/api/v1/httptriggers/{trigger_id}", self._delete_trigger)
        r("POST", "/api/v1/httptriggers/{trigger_id}/enable", self._enable_trigger)
        r("POST", "/api/v1/httptriggers/{trigger_id}/disable", self._disable_trigger)
        r("POST", "/api/v1/httptriggers/{trigger_id}/execute", self._execute_trigger)
        r("GET", "/api/v1/httptriggers/{trigger_id}/executions", self._list_executions)
        c = self.route
        c("GET", "/_fake/threads", self._ctl_threads, control=True)
        c("POST", "/_fake/threads", self._ctl_create_thread, control=True)
        c("POST", "/_fake/threads/{thread_id}/messages", self._ctl_add_message, control=True)
        c("POST", "/_fake/threads/{thread_id}/approvals", self._ctl_add_approval, control=True)
        c("POST", "/_fake/threads/{thread_id}/questions", self._ctl_add_question, control=True)
        c("GET", "/_fake/triggers", self._ctl_triggers, control=True)
        c("POST", "/_fake/triggers", self._ctl_add_trigger, control=True)
        c("POST", "/_fake/auto-reply", self._ctl_auto_reply, control=True)

    @property
    def endpoint(self) -> str:
        """The agent's base URL (its ``agentEndpoint``)."""
        return self.url

    def _base_url(self) -> str | None:
        try:
            return self.url
        except RuntimeError:
            return None

    def authenticate(self, call: Call) -> dict[str, Any]:
        """Bearer token with an accepted audience (401), then the principal check (403)."""
        try:
            claims = bearer_claims(
                call.request.headers.get("authorization"), self.accepted_audiences, secret=self.secret
            )
        except InvalidTokenError as exc:
            raise HttpError(
                401,
                {"error": {"code": "Unauthorized", "message": str(exc)}},
                headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{exc}"'},
            ) from None
        allowed = self.allowed_principals
        if allowed is not None and claims.get("oid") not in allowed:
            raise HttpError(
                403,
                {
                    "error": {
                        "code": "Forbidden",
                        "message": f"The principal '{claims.get('oid')}' does not have permission "
                        f"'Microsoft.App/agents/threads/write' on '{self.resource_id}'.",
                    }
                },
            )
        return claims

    # ----------------------------------------------------------------- Python API: state
    def reset(self) -> None:
        """Drop threads, trigger executions, faults and recorded requests (triggers and settings stay)."""
        with self.lock:
            super().reset()
            self._threads.clear()
            for trigger in self._triggers.values():
                trigger.executions.clear()

    def threads(self) -> list[dict[str, Any]]:
        """Every thread, oldest first, each with its ``messages`` and a ``_fake`` block
        (``agent`` as sent in ``startMessage.agent``, ``triggerId``, ``createdBy``)."""
        now = time.time()
        with self.lock:
            return [thread.to_json(now, fake=True) for thread in self._sorted_threads()]

    def thread(self, thread_id: str) -> dict[str, Any]:
        """One thread with its messages (``KeyError`` if unknown)."""
        now = time.time()
        with self.lock:
            return self._thread_or_key_error(thread_id).to_json(now, fake=True)

    def messages(self, thread_id: str) -> list[dict[str, Any]]:
        """The messages of a thread, oldest first."""
        return self.thread(thread_id)["messages"]

    def wait_for_threads(self, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until at least ``count`` threads exist; returns them (``TimeoutError`` otherwise)."""
        deadline = time.monotonic() + timeout
        while True:
            threads = self.threads()
            if len(threads) >= count:
                return threads
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: {len(threads)} thread(s) after {timeout}s, wanted {count}")
            time.sleep(0.02)

    def create_thread(
        self,
        text: str,
        *,
        user_id: str = "local-user",
        display_name: str = "Local User",
        agent: str | None = None,
        source: str = "Chat",
    ) -> dict[str, Any]:
        """Start a thread directly (as if a person had opened it in the portal)."""
        with self.lock:
            thread = self._new_thread(
                text, user_id=user_id, display_name=display_name, agent=agent, source=source
            )
            return thread.to_json(time.time(), fake=True)

    def add_message(
        self,
        thread_id: str,
        text: str,
        *,
        role: str = AGENT_ROLE,
        user_id: str | None = None,
        display_name: str | None = None,
        complete_after: float | None = None,
        message_type: str = "Text",
    ) -> dict[str, Any]:
        """Append a message (by default a complete agent message); ``complete_after`` seconds makes
        it incomplete until then. Does not trigger an automatic reply."""
        with self.lock:
            thread = self._thread_or_key_error(thread_id)
            message = self._append(
                thread,
                role=role,
                user_id=user_id,
                display_name=display_name,
                text=text,
                complete_after=complete_after,
                message_type=message_type,
            )
            return message.to_json(time.time(), fake=True)

    def add_approval(
        self, thread_id: str, title: str, description: str = "", *, status: str = "Pending"
    ) -> dict[str, Any]:
        """Append an agent message asking for approval (``messageType: Approval``)."""
        with self.lock:
            thread = self._thread_or_key_error(thread_id)
            message = self._append(
                thread,
                role=AGENT_ROLE,
                text=f"Approval required: {title}",
                message_type="Approval",
                approval={
                    "id": str(uuid.uuid4()),
                    "title": title,
                    "description": description,
                    "status": status,
                },
            )
            return message.to_json(time.time(), fake=True)

    def add_user_question(
        self,
        thread_id: str,
        question: str,
        *,
        header: str | None = None,
        options: Iterable[str | Mapping[str, str]] = (),
        allow_free_text: bool = True,
        status: str = "Pending",
    ) -> dict[str, Any]:
        """Append an agent message asking the user a question (``messageType: UserQuestion``)."""
        opts = [
            {"label": item, "description": ""} if isinstance(item, str) else dict(item) for item in options
        ]
        with self.lock:
            thread = self._thread_or_key_error(thread_id)
            message = self._append(
                thread,
                role=AGENT_ROLE,
                text=question,
                message_type="UserQuestion",
                user_question={
                    "questionId": str(uuid.uuid4()),
                    "question": question,
                    "header": header,
                    "options": opts,
                    "allowFreeText": allow_free_text,
                    "status": status,
                },
            )
            return message.to_json(time.time(), fake=True)

    def set_incident_status(self, thread_id: str, status: str | None) -> None:
        """Set ``status.incidentStatus.status`` of a thread (e.g. ``"resolved"``)."""
        with self.lock:
            self._thread_or_key_error(thread_id).incident_status = status

    def set_auto_reply(
        self, enabled: bool = True, *, text: ReplyText | None = None, delay: float | None = None
    ) -> None:
        """Turn simulated agent replies on or off, optionally changing their text and delay."""
        with self.lock:
            self.auto_reply = enabled
            if text is not None:
                self.auto_reply_text = text
            if delay is not None:
                self.auto_reply_delay = delay

    # ----------------------------------------------------------------- Python API: triggers
    def add_trigger(
        self,
        name: str,
        prompt: str,
        *,
        agent: str | None = None,
        enabled: bool = True,
        response_form: TriggerResponseForm | None = None,
        trigger_id: str | None = None,
    ) -> str:
        """Register an HTTP trigger and return its id (``response_form`` overrides the agent's)."""
        trigger = Trigger(
            id=trigger_id or uuid.uuid4().hex,
            name=name,
            prompt=prompt,
            agent=agent,
            enabled=enabled,
            response_form=response_form,
        )
        with self.lock:
            self._triggers[trigger.id] = trigger
        return trigger.id

    def trigger_url(self, trigger_id: str) -> str:
        """The webhook URL of a trigger (the server must be running)."""
        return f"{self.url}/api/v1/httptriggers/trigger/{trigger_id}"

    def set_trigger_enabled(self, trigger_id: str, enabled: bool) -> None:
        """Enable or disable a trigger (a disabled trigger's webhook answers 404)."""
        with self.lock:
            self._triggers[trigger_id].enabled = enabled

    def trigger_executions(self, trigger_id: str) -> list[dict[str, Any]]:
        """Executions of a trigger (``executionId``, ``executionTime``, ``threadId``, ``success``,
        ``payload``)."""
        with self.lock:
            return json.loads(json.dumps(self._triggers[trigger_id].executions))

    # ----------------------------------------------------------------- internals
    def _sorted_threads(self) -> list[Thread]:
        return sorted(self._threads.values(), key=lambda thread: thread.seq)

    def _thread_or_key_error(self, thread_id: str) -> Thread:
        thread = self._find_thread(thread_id)
        if thread is None:
            raise KeyError(thread_id)
        return thread

    def _find_thread(self, thread_id: str) -> Thread | None:
        thread = self._threads.get(thread_id)
        if thread is None:
            for key, value in self._threads.items():
                if key.lower() == thread_id.lower():
                    return value
        return thread

    def _thread_or_404(self, thread_id: str) -> Thread:
        thread = self._find_thread(thread_id)
        if thread is None:
            raise HttpError(404, problem(404, f"Thread '{thread_id}' was not found."))
        return thread

    def _next_time(self, previous: float | None = None) -> float:
        # strictly increasing timestamps keep ordering by time stable for fast callers
        now = time.time()
        return max(now, previous + 0.001) if previous is not None else now

    def _new_thread(
        self,
        text: str,
        *,
        user_id: str | None,
        display_name: str | None,
        agent: str | None,
        source: str,
        title: str | None = None,
        trigger_id: str | None = None,
        created_by: str | None = None,
    ) -> Thread:
        last = max((thread.created for thread in self._threads.values()), default=None)
        created = self._next_time(last)
        start = Message(
            id=str(uuid.uuid4()),
            seq=next(self._seq),
            role=USER_ROLE,
            user_id=user_id,
            display_name=display_name,
            text=text,
            created=created,
            agent=agent,
        )
        thread = Thread(
            id=str(uuid.uuid4()),
            seq=next(self._seq),
            title=title or title_from(text),
            source=source,
            created=created,
            messages=[start],
            agent=agent,
            trigger_id=trigger_id,
            created_by=created_by,
        )
        self._threads[thread.id] = thread
        self._maybe_reply(thread, text)
        return thread

    def _append(
        self,
        thread: Thread,
        *,
        role: str,
        text: str,
        user_id: str | None = None,
        display_name: str | None = None,
        message_type: str = "Text",
        complete_after: float | None = None,
        approval: dict[str, Any] | None = None,
        user_question: dict[str, Any] | None = None,
        agent: str | None = None,
    ) -> Message:
        created = self._next_time(thread.messages[-1].created)
        if role == AGENT_ROLE:
            user_id = user_id or "agent-default"
            display_name = display_name or self.display_name
        message = Message(
            id=str(uuid.uuid4()),
            seq=next(self._seq),
            role=role,
            user_id=user_id,
            display_name=display_name,
            text=text,
            created=created,
            message_type=message_type,
            complete_at=created + complete_after if complete_after else None,
            approval=approval,
            user_question=user_question,
            agent=agent,
        )
        thread.messages.append(message)
        return message

    def _maybe_reply(self, thread: Thread, prompt: str) -> None:
        if not self.auto_reply:
            return
        text_source = self.auto_reply_text
        text = text_source(prompt) if callable(text_source) else text_source
        self._append(thread, role=AGENT_ROLE, text=text, complete_after=max(self.auto_reply_delay, 1e-3))

    @staticmethod
    def _int_param(call: Call, *names: str) -> int | None:
        raw = call.query_value(*names)
        if raw is None or raw == "":
            return None
        try:
            value = int(raw)
        except ValueError:
            raise HttpError(400, problem(400, f"Query parameter {names[0]} must be an integer.")) from None
        if value < 0:
            raise HttpError(400, problem(400, f"Query parameter {names[0]} must not be negative."))
        return value

    @staticmethod
    def _order(call: Call, fields: Mapping[str, str]) -> tuple[str, bool] | None:
        raw = call.query_value("$orderby", "orderby")
        if not raw:
            return None
        parts = raw.replace("+", " ").split()
        key = fields.get(parts[0].lower()) if parts else None
        direction = parts[1].lower() if len(parts) > 1 else "asc"
        if key is None or len(parts) > 2 or direction not in ("asc", "desc"):
            raise HttpError(400, problem(400, f"Unsupported $orderby value '{raw}'."))
        return key, direction == "desc"

    @staticmethod
    def _page(items: list[Any], call: Call) -> list[Any]:
        skip = FakeSreAgent._int_param(call, "$skip", "skip") or 0
        top = FakeSreAgent._int_param(call, "$top", "top")
        items = items[skip:]
        return items if top is None else items[:top]

    @staticmethod
    def _validate_message(data: Any, prefix: str) -> tuple[str, str | None, str | None, str | None]:
        """Check ``{"text", "userId", "displayName", "agent"}``; returns the four values."""
        if not isinstance(data, dict):
            raise HttpError(
                400,
                problem(
                    400,
                    "One or more validation errors occurred.",
                    {prefix or "$": ["An object is required."]},
                ),
                media_type="application/problem+json",
            )
        errors: dict[str, list[str]] = {}
        values: dict[str, str | None] = {}
        for key, required in (("text", True), ("userId", False), ("displayName", False), ("agent", False)):
            present, value = _ci(data, key)
            name = f"{prefix}.{key}" if prefix else key
            if not present or value is None:
                if required:
                    errors[name] = [f"The {key} field is required."]
                values[key] = None
            elif not isinstance(value, str):
                errors[name] = [f"The {key} field must be a string."]
            elif required and not value.strip():
                errors[name] = [f"The {key} field must not be empty."]
            else:
                values[key] = value
        if errors:
            raise HttpError(
                400,
                problem(400, "One or more validation errors occurred.", errors),
                media_type="application/problem+json",
            )
        return values["text"] or "", values["userId"], values["displayName"], values["agent"]

    # ----------------------------------------------------------------- data-plane handlers
    async def _list_threads(self, call: Call) -> Response:
        order = self._order(
            call, {"createdtimestamp": "created", "modifiedtimestamp": "modified", "title": "title"}
        )
        now = time.time()
        with self.lock:
            threads = self._sorted_threads()
            if order is not None:
                key, desc = order
                sort_key: Callable[[Thread], Any] = {
                    "created": lambda t: (t.created, t.seq),
                    "modified": lambda t: (t.modified(now), t.seq),
                    "title": lambda t: (t.title.lower(), t.seq),
                }[key]
                threads = sorted(threads, key=sort_key, reverse=desc)
            page = [thread.to_json(now) for thread in self._page(threads, call)]
        return JSONResponse({"value": page})

    async def _create_thread(self, call: Call) -> Response:
        data = call.json()
        if not isinstance(data, dict):
            raise HttpError(400, problem(400, "The request body must be a JSON object."))
        present, start = _ci(data, "startMessage")
        if not present:
            raise HttpError(
                400,
                problem(
                    400,
                    "One or more validation errors occurred.",
                    {"startMessage": ["The startMessage field is required."]},
                ),
                media_type="application/problem+json",
            )
        text, user_id, display_name, agent = self._validate_message(start, "startMessage")
        oid = (call.claims or {}).get("oid")
        with self.lock:
            thread = self._new_thread(
                text,
                user_id=user_id or oid,
                display_name=display_name,
                agent=agent,
                source="Chat",
                created_by=oid,
            )
            body = thread.to_json(time.time())
        return JSONResponse(body)

    async def _get_thread(self, call: Call) -> Response:
        with self.lock:
            body = self._thread_or_404(call.params["thread_id"]).to_json(time.time())
        return JSONResponse(body)

    async def _delete_thread(self, call: Call) -> Response:
        with self.lock:
            thread = self._thread_or_404(call.params["thread_id"])
            del self._threads[thread.id]
        return Response(status_code=204)

    async def _list_messages(self, call: Call) -> Response:
        order = self._order(call, {"timestamp": "time"})
        now = time.time()
        with self.lock:
            messages = list(self._thread_or_404(call.params["thread_id"]).messages)
            if order is not None and order[1]:
                messages.reverse()
            page = [message.to_json(now) for message in self._page(messages, call)]
        return JSONResponse({"value": page})

    async def _post_message(self, call: Call) -> Response:
        data = call.json()
        text, user_id, display_name, agent = self._validate_message(data, "")
        oid = (call.claims or {}).get("oid")
        with self.lock:
            thread = self._thread_or_404(call.params["thread_id"])
            message = self._append(
                thread,
                role=USER_ROLE,
                text=text,
                user_id=user_id or oid,
                display_name=display_name,
                agent=agent,
            )
            body = message.to_json(time.time())
            self._maybe_reply(thread, text)
        return JSONResponse(body)

    async def _list_approvals(self, call: Call) -> Response:
        with self.lock:
            thread = self._thread_or_404(call.params["thread_id"])
            pending = [
                dict(message.approval)
                for message in thread.messages
                if message.approval and message.approval.get("status") in ("Pending", "PendingAuthorization")
            ]
        return JSONResponse({"value": pending})

    def _set_approval(self, approval_id: str, status: str) -> dict[str, Any]:
        for thread in self._threads.values():
            for message in thread.messages:
                if message.approval and message.approval.get("id", "").lower() == approval_id.lower():
                    message.approval["status"] = status
                    return dict(message.approval)
        raise HttpError(404, problem(404, f"Approval '{approval_id}' was not found."))

    async def _approve(self, call: Call) -> Response:
        with self.lock:
            return JSONResponse(self._set_approval(call.params["approval_id"], "Approved"))

    async def _decide(self, call: Call) -> Response:
        data = call.json(required=False) or {}
        decision = str(data.get("decision", "approve") if isinstance(data, dict) else "approve").lower()
        status = "Rejected" if decision in ("reject", "rejected", "deny", "denied") else "Approved"
        with self.lock:
            self._thread_or_404(call.params["thread_id"])
            return JSONResponse(self._set_approval(call.params["approval_id"], status))

    # ----------------------------------------------------------------- HTTP triggers
    def _trigger_or_404(self, trigger_id: str, *, enabled_only: bool = False) -> Trigger:
        trigger = self._triggers.get(trigger_id)
        if trigger is None:
            trigger = next(
                (t for key, t in self._triggers.items() if key.lower() == trigger_id.lower()), None
            )
        if trigger is None or (enabled_only and not trigger.enabled):
            raise HttpError(404, problem(404, f"HTTP trigger '{trigger_id}' was not found or is disabled."))
        return trigger

    def _run_trigger(self, trigger: Trigger, payload: Any, caller: str | None) -> dict[str, Any]:
        text = render_trigger_prompt(trigger.prompt, payload)
        thread = self._new_thread(
            text,
            user_id=caller,
            display_name=f"HTTP Trigger: {trigger.name}",
            agent=trigger.agent,
            source="HttpTrigger",
            title=f"HTTP Trigger: {trigger.name}",
            trigger_id=trigger.id,
            created_by=caller,
        )
        execution = {
            "executionId": str(uuid.uuid4()),
            "executionTime": iso_at(thread.created),
            "threadId": thread.id,
            "success": True,
            "payload": payload,
        }
        trigger.executions.append(execution)
        return execution

    async def _fire_trigger(self, call: Call) -> Response:
        payload = call.json(required=False)
        with self.lock:
            trigger = self._trigger_or_404(call.params["trigger_id"], enabled_only=True)
            execution = self._run_trigger(trigger, payload, (call.claims or {}).get("oid"))
            form = trigger.response_form or self.trigger_response
        summary = {key: execution[key] for key in ("executionTime", "threadId", "success")}
        if form == "nested":
            return JSONResponse(
                {"message": "HTTP trigger execution initiated successfully", "execution": summary}, 202
            )
        return JSONResponse({"message": "HTTP trigger execution initiated", **summary}, 202)

    async def _execute_trigger(self, call: Call) -> Response:
        payload = call.json(required=False)
        with self.lock:
            trigger = self._trigger_or_404(call.params["trigger_id"], enabled_only=True)
            execution = self._run_trigger(trigger, payload or None, (call.claims or {}).get("oid"))
        summary = {key: execution[key] for key in ("executionTime", "threadId", "success")}
        return JSONResponse(
            {"message": "HTTP trigger execution initiated successfully", "execution": summary}, 202
        )

    async def _list_triggers(self, call: Call) -> Response:
        base = self._base_url()
        with self.lock:
            return JSONResponse([trigger.to_json(base) for trigger in self._triggers.values()])

    def _trigger_fields(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise HttpError(400, problem(400, "The request body must be a JSON object."))
        errors: dict[str, list[str]] = {}
        fields: dict[str, Any] = {}
        for key, attr, required in (
            ("name", "name", True),
            ("agentPrompt", "prompt", True),
            ("agent", "agent", False),
            ("description", "description", False),
            ("agentMode", "agent_mode", False),
        ):
            present, value = _ci(data, key)
            if present and value is not None and not isinstance(value, str):
                errors[key] = [f"The {key} field must be a string."]
            elif required and not value:
                errors[key] = [f"The {key} field is required."]
            elif present and value is not None:
                fields[attr] = value
        if errors:
            raise HttpError(
                400,
                problem(400, "One or more validation errors occurred.", errors),
                media_type="application/problem+json",
            )
        return fields

    async def _create_trigger(self, call: Call) -> Response:
        fields = self._trigger_fields(call.json())
        trigger_id = self.add_trigger(
            fields.pop("name"), fields.pop("prompt"), agent=fields.pop("agent", None)
        )
        with self.lock:
            trigger = self._triggers[trigger_id]
            for attr, value in fields.items():
                setattr(trigger, attr, value)
            url = trigger.to_json(self._base_url())["triggerUrl"]
        return JSONResponse(
            {"triggerId": trigger_id, "triggerUrl": url, "message": "HTTP trigger created successfully"}
        )

    async def _get_trigger(self, call: Call) -> Response:
        base = self._base_url()
        with self.lock:
            return JSONResponse(self._trigger_or_404(call.params["trigger_id"]).to_json(base))

    async def _update_trigger(self, call: Call) -> Response:
        fields = self._trigger_fields(call.json())
        base = self._base_url()
        with self.lock:
            trigger = self._trigger_or_404(call.params["trigger_id"])
            for attr, value in fields.items():
                setattr(trigger, attr, value)
            return JSONResponse(trigger.to_json(base))

    async def _delete_trigger(self, call: Call) -> Response:
        with self.lock:
            trigger = self._trigger_or_404(call.params["trigger_id"])
            del self._triggers[trigger.id]
        return Response(status_code=204)

    async def _enable_trigger(self, call: Call) -> Response:
        return self._toggle(call, True)

    async def _disable_trigger(self, call: Call) -> Response:
        return self._toggle(call, False)

    def _toggle(self, call: Call, enabled: bool) -> Response:
        base = self._base_url()
        with self.lock:
            trigger = self._trigger_or_404(call.params["trigger_id"])
            trigger.enabled = enabled
            return JSONResponse(trigger.to_json(base))

    async def _list_executions(self, call: Call) -> Response:
        with self.lock:
            trigger = self._trigger_or_404(call.params["trigger_id"])
            return JSONResponse({"value": json.loads(json.dumps(trigger.executions))})

    # ----------------------------------------------------------------- control API
    async def _ctl_threads(self, call: Call) -> Response:
        return JSONResponse({"value": self.threads()})

    async def _ctl_create_thread(self, call: Call) -> Response:
        data = call.json()
        text, user_id, display_name, agent = self._validate_message(data, "")
        body = self.create_thread(
            text, user_id=user_id or "local-user", display_name=display_name or "Local User", agent=agent
        )
        return JSONResponse(body, 201)

    def _ctl_thread_id(self, call: Call) -> str:
        with self.lock:
            return self._thread_or_404(call.params["thread_id"]).id

    async def _ctl_add_message(self, call: Call) -> Response:
        thread_id = self._ctl_thread_id(call)
        data = call.json()
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise HttpError(400, problem(400, "A JSON object with a string 'text' is required."))
        complete = data.get("complete", True)
        delay = data.get("completeAfter")
        body = self.add_message(
            thread_id,
            data["text"],
            role=str(data.get("role", AGENT_ROLE)),
            user_id=data.get("userId"),
            display_name=data.get("displayName"),
            complete_after=float(delay) if delay else (None if complete else 3600.0),
            message_type=str(data.get("messageType", "Text")),
        )
        return JSONResponse(body, 201)

    async def _ctl_add_approval(self, call: Call) -> Response:
        thread_id = self._ctl_thread_id(call)
        data = call.json(required=False) or {}
        body = self.add_approval(
            thread_id,
            str(data.get("title", "Run a remediation command")),
            str(data.get("description", "")),
            status=str(data.get("status", "Pending")),
        )
        return JSONResponse(body, 201)

    async def _ctl_add_question(self, call: Call) -> Response:
        thread_id = self._ctl_thread_id(call)
        data = call.json(required=False) or {}
        body = self.add_user_question(
            thread_id,
            str(data.get("question", "How should I proceed?")),
            header=data.get("header"),
            options=data.get("options", ()),
            allow_free_text=bool(data.get("allowFreeText", True)),
            status=str(data.get("status", "Pending")),
        )
        return JSONResponse(body, 201)

    async def _ctl_triggers(self, call: Call) -> Response:
        base = self._base_url()
        with self.lock:
            items = [
                {**trigger.to_json(base), "executions": json.loads(json.dumps(trigger.executions))}
                for trigger in self._triggers.values()
            ]
        return JSONResponse({"value": items})

    async def _ctl_add_trigger(self, call: Call) -> Response:
        data = call.json()
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise HttpError(400, problem(400, "A JSON object with 'name' and 'prompt' is required."))
        prompt = data.get("prompt", data.get("agentPrompt"))
        if not isinstance(prompt, str):
            raise HttpError(400, problem(400, "A JSON object with 'name' and 'prompt' is required."))
        form = data.get("responseForm")
        if form not in (None, "flat", "nested"):
            raise HttpError(400, problem(400, "responseForm must be 'flat' or 'nested'."))
        trigger_id = self.add_trigger(
            data["name"],
            prompt,
            agent=data.get("agent"),
            enabled=bool(data.get("enabled", True)),
            response_form=form,
            trigger_id=data.get("triggerId"),
        )
        return JSONResponse({"triggerId": trigger_id, "triggerUrl": self.trigger_url(trigger_id)}, 201)

    async def _ctl_auto_reply(self, call: Call) -> Response:
        data = call.json()
        if not isinstance(data, dict):
            raise HttpError(400, problem(400, "A JSON object is required."))
        text = data.get("text")
        delay = data.get("delay")
        self.set_auto_reply(
            bool(data.get("enabled", True)),
            text=str(text) if text is not None else None,
            delay=float(delay) if delay is not None else None,
        )
        return JSONResponse({"enabled": self.auto_reply, "delay": self.auto_reply_delay, "text": text})
