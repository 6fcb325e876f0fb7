"""State of a simulated SRE Agent: messages, threads, HTTP triggers and the pure helpers they use.

Nothing here does HTTP or locking; :class:`~devserver.fakes.sre_agent.store.AgentStore` keeps these
objects and :class:`~devserver.fakes.sre_agent.agent.FakeSreAgent` guards them with its lock.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from devserver.fakes._service import iso_at

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


def question_options(options: Iterable[str | Mapping[str, str]]) -> list[dict[str, str]]:
    """Answer options of a user question: a bare string becomes ``{"label": ..., "description": ""}``."""
    return [{"label": item, "description": ""} if isinstance(item, str) else dict(item) for item in options]


def json_field(data: Mapping[str, Any], key: str) -> tuple[bool, Any]:
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
