"""A2A (v1.0, JSON-RPC binding) client for partner agents, built on ``a2a-sdk``'s own client.

The SDK is imported inside the methods (it pulls in protobuf and google-api-core, too heavy for a cold
start that does not need it). The SDK client is async; queue workers are synchronous, so every call
runs in its own event loop with its own ``httpx.AsyncClient`` from the one client factory.

The registry's ``delivery.url`` is the peer's JSON-RPC endpoint itself: the broker does not follow
the URL an agent card names, so the SSRF rule checked on ``delivery.url`` is the one that applies. The
card is read only for ``capabilities.pushNotifications``, from the peer's own host: beside the endpoint
(``{url}/.well-known/agent-card.json``, where this broker and the a2a-sdk's routes publish it), else at
the host's root (``/.well-known/agent-card.json``, where the A2A specification puts it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from handoff.adapters import telemetry
from handoff.adapters.egress import EgressPolicy
from handoff.adapters.http import (
    classify,
    insecure_local,
    make_async_http_client,
    make_http_client,
    monotonic,
    transport_error,
)
from handoff.adapters.token_cache import TokenCache
from handoff.domain.contract import A2A_EXTENSION_URI, extension_metadata, tagged_document
from handoff.domain.records import AgentCallError, RemoteArtifact, RemoteTask
from handoff.domain.registry import A2ADelivery, AgentConfig
from handoff.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

log = logging.getLogger("handoff")

T = TypeVar("T")
PROTOCOL_VERSION = "1.0"
STATE_PREFIX = "TASK_STATE_"
LIST_PAGE_SIZE = 50
CARD_PATH = ".well-known/agent-card.json"
# What a peer's card says about push notifications is read again after this long (sooner when the card
# could not be read).
CARD_TTL_SECONDS = 3600.0
CARD_RETRY_SECONDS = 300.0


class A2AClientGateway:
    """Implements :class:`handoff.domain.records.RemoteAgentGateway` with the ``a2a-sdk`` client."""

    def __init__(self, settings: Settings, credential: TokenCredential) -> None:
        self.settings = settings
        self.credential = credential
        self.tokens = TokenCache(credential)
        self._pushes: dict[str, tuple[bool, float]] = {}
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- RemoteAgentGateway

    def send_message(
        self,
        agent: AgentConfig,
        *,
        message_id: str,
        context_id: str,
        text: str,
        data: dict[str, Any],
        contract: dict[str, Any] | None = None,
        push_url: str | None = None,
        push_token: str | None = None,
    ) -> RemoteTask:
        """``SendMessage`` with ``return_immediately``: a text part for people, a data part for models,
        and with ``contract`` the handoff as the contract's ``handoff-request`` in a data part tagged with
        the contract's A2A extension (:func:`handoff.domain.contract.extension_metadata`).
        With ``push_url``, the task's push notification config rides in the same request
        (``configuration.taskPushNotificationConfig``), so it is in place before the task can end."""
        from a2a.types import (
            Message,
            Part,
            Role,
            SendMessageConfiguration,
            SendMessageRequest,
            TaskPushNotificationConfig,
        )

        parts = [
            Part(text=text, media_type="text/markdown"),
            Part(data=_value(data), media_type="application/json"),
        ]
        if contract is not None:
            tag = _struct(extension_metadata("handoff-request"))
            parts.append(Part(data=_value(contract), media_type="application/json", metadata=tag))
        request = SendMessageRequest(
            message=Message(
                message_id=message_id,
                context_id=context_id,
                role=Role.ROLE_USER,
                parts=parts,
                metadata=_struct({"handoffId": data.get("handoffId")}),
            ),
            configuration=SendMessageConfiguration(
                return_immediately=True,
                accepted_output_modes=["text/plain", "text/markdown", "application/json"],
            ),
        )
        if push_url:
            request.configuration.task_push_notification_config.CopyFrom(
                TaskPushNotificationConfig(url=push_url, token=push_token or "")
            )

        async def call(client: Any) -> RemoteTask:
            async for event in client.send_message(request):
                if event.HasField("task"):
                    return _task(event.task)
                if event.HasField("message"):
                    # A peer that answers with a message and no task did the work at once: treat the
                    # message as the completed result.
                    return _message_as_task(event.message, message_id, context_id)
            raise AgentCallError("SendMessage answered with neither a task nor a message", transient=True)

        return self._run(agent, "SendMessage", call)

    def get_task(self, agent: AgentConfig, task_id: str) -> RemoteTask:
        """``GetTask`` with the task's artifacts."""
        from a2a.types import GetTaskRequest

        async def call(client: Any) -> RemoteTask:
            return _task(await client.get_task(GetTaskRequest(id=task_id, history_length=0)))

        return self._run(agent, "GetTask", call)

    def find_task(self, agent: AgentConfig, *, context_id: str, message_id: str) -> RemoteTask | None:
        """``ListTasks`` of the context, looking for the task whose history holds ``message_id``.

        Peers that do not list tasks answer with an error: then None, and the caller sends again
        with the same ``message_id`` (which a peer may deduplicate on).
        """
        from a2a.types import ListTasksRequest
        from a2a.utils.errors import A2AError, InternalError

        async def call(client: Any) -> RemoteTask | None:
            try:
                page = await client.list_tasks(
                    ListTasksRequest(context_id=context_id, page_size=LIST_PAGE_SIZE, include_artifacts=True)
                )
            except A2AError as exc:
                if isinstance(exc, InternalError):
                    raise
                return None
            for task in page.tasks:
                if any(message.message_id == message_id for message in task.history):
                    return _task(task)
            return None

        return self._run(agent, "ListTasks", call)

    def supports_push(self, agent: AgentConfig) -> bool:
        """Whether the peer's agent card declares ``capabilities.pushNotifications`` (read once an hour;
        a card that cannot be read means no: the task is polled)."""
        now = monotonic()
        with self._lock:
            cached = self._pushes.get(agent.name)
        if cached is not None and cached[1] > now:
            return cached[0]
        pushes = self._card_pushes(agent)
        ttl = CARD_TTL_SECONDS if pushes is not None else CARD_RETRY_SECONDS
        with self._lock:
            self._pushes[agent.name] = (bool(pushes), now + ttl)
        return bool(pushes)

    def _card_pushes(self, agent: AgentConfig) -> bool | None:
        """What the first card found says; None when there is none to read."""
        url = _a2a_delivery(agent).url
        candidates = [f"{url.rstrip('/')}/{CARD_PATH}", str(httpx.URL(url).join(f"/{CARD_PATH}"))]
        policy = EgressPolicy.from_settings(self.settings)
        with make_http_client(self.settings.http_timeout_seconds, policy) as http:
            for card_url in dict.fromkeys(candidates):
                try:
                    response = http.get(
                        card_url,
                        headers={"Accept": "application/json"},
                        extensions=insecure_local(agent.allow_insecure_local),
                    )
                    card = response.json() if response.status_code == 200 else None
                except (httpx.HTTPError, ValueError) as exc:
                    log.info("agent card of %s not read at %s: %s", agent.name, card_url, type(exc).__name__)
                    continue
                if isinstance(card, dict):
                    return _declares_push(card)
        log.info("no agent card of %s found; its tasks are polled", agent.name)
        return None

    # ---------------------------------------------------------------- plumbing

    def _headers(self, agent: AgentConfig) -> dict[str, str]:
        """The partner's credential, and the contract's extension activated on every call (a partner
        that does not know it ignores the header)."""
        from a2a.extensions.common import HTTP_EXTENSION_HEADER

        return {HTTP_EXTENSION_HEADER: A2A_EXTENSION_URI, **self._credential(agent)}

    def _credential(self, agent: AgentConfig) -> dict[str, str]:
        delivery = _a2a_delivery(agent)
        if delivery.bearer_token_setting:
            # The app setting is named in the registry (for example a Key Vault reference), so its
            # name cannot be a fixed Settings field.
            token = os.environ.get(delivery.bearer_token_setting)
            if not token:
                raise AgentCallError(
                    f"app setting {delivery.bearer_token_setting} (the bearer token for agent "
                    f"{agent.name}) is not set",
                    transient=False,
                )
            return {"Authorization": f"Bearer {token}"}
        if delivery.token_scope:
            return {"Authorization": f"Bearer {self.tokens.get(delivery.token_scope)}"}
        return {}

    def _run(self, agent: AgentConfig, method: str, call: Callable[[Any], Awaitable[T]]) -> T:
        """``call`` with an SDK client of the agent (``Any``: a2a-sdk ships no type information)."""
        headers = self._headers(agent)
        url = _a2a_delivery(agent).url

        async def main() -> T:
            from a2a.client import ClientConfig, ClientFactory
            from a2a.types import AgentCapabilities, AgentCard, AgentInterface

            card = AgentCard(
                name=agent.name,
                description=agent.description or agent.name,
                version="1",
                supported_interfaces=[
                    AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version=PROTOCOL_VERSION)
                ],
                capabilities=AgentCapabilities(streaming=False, push_notifications=False),
            )
            async with make_async_http_client(
                self.settings.http_timeout_seconds,
                headers,
                EgressPolicy.from_settings(self.settings),
                allow_insecure_local=agent.allow_insecure_local,
            ) as http:
                config = ClientConfig(streaming=False, polling=True, httpx_client=http)
                client = ClientFactory(config).create(card)
                return await call(client)

        try:
            with telemetry.span(f"a2a.{method}", {"handoff.target": agent.name, "a2a.method": method}):
                return asyncio.run(main())
        except AgentCallError:
            raise
        except Exception as exc:
            raise _call_error(method, url, exc) from None


def _a2a_delivery(agent: AgentConfig) -> A2ADelivery:
    """The agent's A2A delivery; an agent delivered otherwise never reaches this client."""
    if not isinstance(agent.delivery, A2ADelivery):
        raise AgentCallError(f"agent {agent.name} is not delivered over A2A", transient=False)
    return agent.delivery


def _declares_push(card: dict[str, Any]) -> bool:
    """``capabilities.pushNotifications`` of a card as JSON (``push_notifications`` from peers that
    write proto field names)."""
    capabilities = card.get("capabilities")
    if not isinstance(capabilities, dict):
        return False
    return capabilities.get("pushNotifications", capabilities.get("push_notifications")) is True


def _call_error(method: str, url: str, exc: Exception) -> AgentCallError:
    """Classify an SDK failure: HTTP answers as everywhere else, JSON-RPC errors as permanent except
    the server's internal error, broken transport and bodies as transient."""
    from a2a.client import A2AClientError, A2AClientTimeoutError
    from a2a.utils.errors import A2AError, InternalError

    cause = exc.__cause__
    if isinstance(cause, httpx.HTTPStatusError):
        return classify("POST", url, cause.response)
    if isinstance(cause, httpx.HTTPError):
        return transport_error("POST", url, cause)
    if isinstance(exc, A2AClientTimeoutError):
        return AgentCallError(f"{method} {url} timed out", transient=True)
    if isinstance(exc, A2AClientError):
        return AgentCallError(f"{method} {url} failed: {type(exc).__name__}", transient=True)
    if isinstance(exc, A2AError):
        detail = f"{method} {url} answered {type(exc).__name__}: {str(exc.message or exc)[:200]}"
        return AgentCallError(detail, transient=isinstance(exc, InternalError))
    if isinstance(exc, httpx.HTTPError):
        return transport_error("POST", url, exc)
    return AgentCallError(f"{method} {url} failed: {type(exc).__name__}", transient=True)


def _value(values: dict[str, Any]) -> Any:
    from google.protobuf import struct_pb2

    value = struct_pb2.Value()
    value.struct_value.update(json.loads(json.dumps(values)))
    return value


def _struct(values: dict[str, Any]) -> Any:
    from google.protobuf import struct_pb2

    struct = struct_pb2.Struct()
    struct.update({key: value for key, value in values.items() if value is not None})
    return struct


def _part_data(part: Any) -> Any:
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(part.data) if part.HasField("data") else None


def _artifact(name: str | None, parts: Any) -> RemoteArtifact:
    from google.protobuf.json_format import MessageToDict

    texts = [part.text for part in parts if part.HasField("text")]
    data = next((value for value in (_part_data(part) for part in parts) if isinstance(value, dict)), None)
    contract = next(
        (
            value
            for part in parts
            if tagged_document(MessageToDict(part.metadata)) == "handback-request"
            and isinstance(value := _part_data(part), dict)
        ),
        None,
    )
    return RemoteArtifact(name=name or None, text="\n\n".join(texts), data=data, contract=contract)


def _state_name(state: int) -> str:
    from a2a.types import TaskState

    name: str = TaskState.Name(state)
    return name.removeprefix(STATE_PREFIX)


def _task(task: Any) -> RemoteTask:
    status_text = ""
    if task.status.HasField("message"):
        status_text = "\n".join(part.text for part in task.status.message.parts if part.HasField("text"))
    return RemoteTask(
        task_id=task.id,
        context_id=task.context_id,
        state=_state_name(task.status.state),
        status_text=status_text,
        artifacts=tuple(_artifact(artifact.name, artifact.parts) for artifact in task.artifacts),
    )


def _message_as_task(message: Any, message_id: str, context_id: str) -> RemoteTask:
    return RemoteTask(
        task_id=message.task_id or f"message:{message.message_id or message_id}",
        context_id=message.context_id or context_id,
        state="COMPLETED",
        artifacts=(_artifact("reply", message.parts),),
    )
