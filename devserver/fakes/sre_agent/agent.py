"""The simulated SRE Agent itself: its settings, caller checks and the Python API tests drive it with."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from devserver.fakes._service import Call, FakeService, HttpError
from devserver.fakes.identity import InvalidTokenError, bearer_claims
from devserver.fakes.sre_agent.control import ControlRoutes
from devserver.fakes.sre_agent.data_plane import ThreadRoutes
from devserver.fakes.sre_agent.pages import PageRoutes
from devserver.fakes.sre_agent.state import (
    AGENT_ROLE,
    DEFAULT_AUDIENCES,
    ReplyText,
    Trigger,
    TriggerResponseForm,
    default_reply,
    question_options,
)
from devserver.fakes.sre_agent.store import AgentStore
from devserver.fakes.sre_agent.triggers import TriggerRoutes


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
        self.store = AgentStore(self)
        # Routes match in registration order: the data plane first, then the /_fake/ control API and the
        # HTML pages for people (devserver/fakes/sre_agent/pages.py).
        ThreadRoutes(self).register()
        TriggerRoutes(self).register()
        ControlRoutes(self).register()
        PageRoutes(self).register()

    @property
    def endpoint(self) -> str:
        """The agent's base URL (its ``agentEndpoint``)."""
        return self.url

    def url_or_none(self) -> str | None:
        """The base URL while the server runs, else None (trigger URLs are then null)."""
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
            self.store.clear_threads()

    def threads(self) -> list[dict[str, Any]]:
        """Every thread, oldest first, each with its ``messages`` and a ``_fake`` block
        (``agent`` as sent in ``startMessage.agent``, ``triggerId``, ``createdBy``)."""
        now = time.time()
        with self.lock:
            return [thread.to_json(now, fake=True) for thread in self.store.sorted_threads()]

    def thread(self, thread_id: str) -> dict[str, Any]:
        """One thread with its messages (``KeyError`` if unknown)."""
        now = time.time()
        with self.lock:
            return self.store.thread_or_key_error(thread_id).to_json(now, fake=True)

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
            thread = self.store.new_thread(
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
            thread = self.store.thread_or_key_error(thread_id)
            message = self.store.append(
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
            thread = self.store.thread_or_key_error(thread_id)
            return self.store.add_approval(thread, title, description, status).to_json(time.time(), fake=True)

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
        opts = question_options(options)
        with self.lock:
            thread = self.store.thread_or_key_error(thread_id)
            message = self.store.add_user_question(
                thread, question, header=header, options=opts, allow_free_text=allow_free_text, status=status
            )
            return message.to_json(time.time(), fake=True)

    def set_incident_status(self, thread_id: str, status: str | None) -> None:
        """Set ``status.incidentStatus.status`` of a thread (e.g. ``"resolved"``)."""
        with self.lock:
            self.store.thread_or_key_error(thread_id).incident_status = status

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
            self.store.triggers[trigger.id] = trigger
        return trigger.id

    def trigger_url(self, trigger_id: str) -> str:
        """The webhook URL of a trigger (the server must be running)."""
        return f"{self.url}/api/v1/httptriggers/trigger/{trigger_id}"

    def set_trigger_enabled(self, trigger_id: str, enabled: bool) -> None:
        """Enable or disable a trigger (a disabled trigger's webhook answers 404)."""
        with self.lock:
            self.store.triggers[trigger_id].enabled = enabled

    def trigger_executions(self, trigger_id: str) -> list[dict[str, Any]]:
        """Executions of a trigger (``executionId``, ``executionTime``, ``threadId``, ``success``,
        ``payload``)."""
        with self.lock:
            return json.loads(json.dumps(self.store.triggers[trigger_id].executions))
