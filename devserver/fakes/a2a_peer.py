"""A partner agent that speaks A2A v1.0, built from ``a2a-sdk``'s own server components.

The protocol side is entirely the SDK's: ``DefaultRequestHandler`` with an ``InMemoryTaskStore``, its
JSON-RPC route and agent card route. Only the agent's behaviour is scripted (:class:`ScriptedExecutor`):
it records every message it executes, then completes with an artifact, asks for input, rejects or
fails. Served through :class:`FakeService`, so requests are recorded and faults can be injected; with
``perform=True, drop=True`` the SDK handles a request and then the connection is dropped before the
caller sees the answer (the peer accepted, the caller does not know).

With ``push=True`` the card declares ``capabilities.pushNotifications`` and the SDK's own push machinery
runs: the config a ``SendMessage`` carries is kept in its ``InMemoryPushNotificationConfigStore``, and its
``BasePushNotificationSender`` POSTs every task update (a ``StreamResponse`` as JSON) to the URL with the
token in ``X-A2A-Notification-Token``. Every notification sent is recorded in :attr:`FakeA2APeer.pushes`
with the answer it got; ``set_script(push_token="tampered")`` (or ``"missing"``) sends a wrong token (or
none) instead of the registered one.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from starlette.responses import Response

from devserver.fakes._service import Call, FakeService

RPC_PATH = "/a2a"
CARD_PATH = f"{RPC_PATH}/.well-known/agent-card.json"
Behaviour = Literal["complete", "completeText", "inputRequired", "reject", "fail", "working"]
PushToken = Literal["registered", "tampered", "missing"]
TOKEN_HEADER = "X-A2A-Notification-Token"  # noqa: S105 - a header name, not a secret
# The handoff contract's A2A extension, spelled out as a partner that adopted it would: a data part whose
# metadata holds this URI is the contract document its "schema" names.
CONTRACT_EXTENSION = "https://schemas.handoff-broker.dev/handoff-context/v1/a2a-extension"
CONTRACT_SCHEMAS = "https://schemas.handoff-broker.dev/handoff-context/v1/"


def contract_tag(name: str) -> dict[str, Any]:
    """Metadata tagging a data part as the contract document ``name`` (``handback-request`` ...)."""
    return {CONTRACT_EXTENSION: {"schema": f"{CONTRACT_SCHEMAS}{name}.json"}}


def is_tagged(metadata: dict[str, Any], name: str) -> bool:
    """Whether a part's metadata tags it as the contract document ``name``."""
    tag = metadata.get(CONTRACT_EXTENSION)
    return isinstance(tag, dict) and tag.get("schema") == f"{CONTRACT_SCHEMAS}{name}.json"


@dataclass
class Execution:
    """One message the peer's agent executed."""

    message_id: str
    context_id: str
    task_id: str
    text: str
    data: dict[str, Any] | None
    behaviour: str
    extensions: frozenset[str] = frozenset()  # what the A2A-Extensions header asked for
    contract: dict[str, Any] | None = None  # the data part tagged as the contract's handoff-request


@dataclass
class PeerScript:
    """What the agent does with the next messages (changed by tests between handoffs)."""

    behaviour: Behaviour = "complete"
    work_seconds: float = 0.3
    result: dict[str, Any] = field(
        default_factory=lambda: {
            "outcome": "rootCauseFound",
            "summary": "Datadog APM shows p99 latency from the payments gateway after its TLS change",
            "rootCause": "The gateway's new TLS policy forces a full handshake on every call",
            "recommendedActions": ["Re-enable session resumption on the gateway"],
        }
    )
    detail: str = "Which environment should I look at, prod-eu or prod-us?"
    push_token: PushToken = "registered"  # noqa: S105 - which token to send, not a token
    # "contract": the result's data part is tagged with the contract's A2A extension (a handback-request).
    handback_form: Literal["data", "contract"] = "data"


@dataclass
class PushDelivery:
    """One push notification the peer POSTed, and the answer it got."""

    url: str
    token: str | None
    state: str | None
    status: int
    at: float  # time.monotonic() when the answer came


def _executor_class() -> type:
    from a2a.helpers.proto_helpers import get_data_parts, get_text_parts, new_task_from_user_message
    from a2a.server.agent_execution import AgentExecutor
    from a2a.server.tasks import TaskUpdater
    from a2a.types import Part
    from google.protobuf import struct_pb2
    from google.protobuf.json_format import MessageToDict

    class ScriptedExecutor(AgentExecutor):
        """Records each message, then acts as the peer's script says."""

        def __init__(self, peer: FakeA2APeer) -> None:
            self.peer = peer

        async def execute(self, context: Any, event_queue: Any) -> None:
            message = context.message
            script = self.peer.script
            data = next((d for d in get_data_parts(message.parts) if isinstance(d, dict)), None)
            contract = next(
                (
                    MessageToDict(part.data)
                    for part in message.parts
                    if part.HasField("data") and is_tagged(MessageToDict(part.metadata), "handoff-request")
                ),
                None,
            )
            with self.peer.lock:
                self.peer.executions.append(
                    Execution(
                        message_id=message.message_id,
                        context_id=context.context_id,
                        task_id=context.task_id,
                        text="\n".join(get_text_parts(message.parts)),
                        data=data,
                        behaviour=script.behaviour,
                        extensions=frozenset(context.requested_extensions),
                        contract=contract,
                    )
                )
            if context.current_task is None:
                await event_queue.enqueue_event(new_task_from_user_message(message))
            updater = TaskUpdater(event_queue, context.task_id, context.context_id)
            await updater.start_work()
            if script.behaviour == "working":
                return
            await asyncio.sleep(script.work_seconds)
            note = updater.new_agent_message([Part(text=script.detail)])
            if script.behaviour == "inputRequired":
                await updater.requires_input(note)
            elif script.behaviour == "reject":
                await updater.reject(updater.new_agent_message([Part(text="Out of scope for this agent.")]))
            elif script.behaviour == "fail":
                await updater.failed(updater.new_agent_message([Part(text="The APM backend timed out.")]))
            else:
                parts = [Part(text=script.result.get("summary", "done"))]
                if script.behaviour == "complete":
                    value = struct_pb2.Value()
                    value.struct_value.update(script.result)
                    tag = struct_pb2.Struct()
                    if script.handback_form == "contract":
                        tag.update(contract_tag("handback-request"))
                    parts.append(Part(data=value, media_type="application/json", metadata=tag))
                await updater.add_artifact(parts, name="findings")
                await updater.complete()

        async def cancel(self, context: Any, event_queue: Any) -> None:
            updater = TaskUpdater(event_queue, context.task_id, context.context_id)
            await updater.cancel()

    return ScriptedExecutor


def _sender_class() -> type:
    from a2a.server.tasks import BasePushNotificationSender
    from a2a.types import TaskPushNotificationConfig

    class ScriptedSender(BasePushNotificationSender):
        """The SDK's sender, with the token replaced when the script says so."""

        def __init__(self, peer: FakeA2APeer, client: httpx.AsyncClient, store: Any) -> None:
            super().__init__(client, store)
            self.peer = peer

        async def _dispatch_notification(self, event: Any, push_info: Any, task_id: str) -> bool:
            mode = self.peer.script.push_token
            if mode != "registered":
                changed = TaskPushNotificationConfig()
                changed.CopyFrom(push_info)
                changed.token = "" if mode == "missing" else f"{push_info.token[:-4]}XXXX"
                push_info = changed
            sent: bool = await super()._dispatch_notification(event, push_info, task_id)
            return sent

    return ScriptedSender


class FakeA2APeer(FakeService):
    """An A2A agent on ``/a2a`` with its card at ``/a2a/.well-known/agent-card.json``."""

    service_name = "a2a-peer"

    def __init__(self, name: str = "partner", *, push: bool = False) -> None:
        super().__init__()
        from a2a.server.request_handlers import DefaultRequestHandler
        from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
        from a2a.server.tasks import InMemoryPushNotificationConfigStore, InMemoryTaskStore
        from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
        from starlette.applications import Starlette

        self.name = name
        self.script = PeerScript()
        self.executions: list[Execution] = []
        self.pushes: list[PushDelivery] = []
        self.card = AgentCard(
            name=name,
            description="A simulated partner APM agent (A2A).",
            version="1.0",
            supported_interfaces=[
                AgentInterface(url="http://127.0.0.1", protocol_binding="JSONRPC", protocol_version="1.0")
            ],
            capabilities=AgentCapabilities(streaming=False, push_notifications=push),
            default_input_modes=["application/json", "text/plain"],
            default_output_modes=["application/json", "text/plain"],
            skills=[
                AgentSkill(id="apm", name="APM investigation", description="Looks at traces.", tags=["apm"])
            ],
        )
        self.task_store = InMemoryTaskStore()
        push_store = InMemoryPushNotificationConfigStore() if push else None
        # Created here, used only on the server thread's event loop (where the SDK sends).
        self._push_client = httpx.AsyncClient(timeout=10, event_hooks={"response": [self._record_push]})
        handler = DefaultRequestHandler(
            agent_executor=_executor_class()(self),
            task_store=self.task_store,
            agent_card=self.card,
            push_config_store=push_store,
            push_sender=_sender_class()(self, self._push_client, push_store) if push else None,
        )
        self.app = Starlette(
            routes=[
                *create_agent_card_routes(self.card, card_url=CARD_PATH),
                *create_jsonrpc_routes(handler, RPC_PATH),
            ]
        )
        self.route("POST", RPC_PATH, self._forward, auth=False)
        self.route("GET", CARD_PATH, self._forward, auth=False)

    def start(self, *, port: int = 0) -> FakeA2APeer:
        """Serve, then point the card's interface at the real port."""
        super().start(port=port)
        self.card.supported_interfaces[0].url = self.rpc_url
        return self

    @property
    def rpc_url(self) -> str:
        """The JSON-RPC endpoint (what the broker's registry names as ``delivery.url``)."""
        return f"{self.url}{RPC_PATH}"

    def set_script(self, **changes: Any) -> None:
        """Change what the agent does with the next messages (``behaviour``, ``work_seconds``, ...)."""
        with self.lock:
            for key, value in changes.items():
                setattr(self.script, key, value)

    def executions_for(self, handoff_id: str) -> list[Execution]:
        """Messages executed for a handoff (found through the handoff id in their data part)."""
        with self.lock:
            return [e for e in self.executions if (e.data or {}).get("handoffId") == handoff_id]

    def pushes_to(self, handoff_id: str) -> list[PushDelivery]:
        """The push notifications sent for a handoff (to the URL the broker gave, which ends with it)."""
        with self.lock:
            return [push for push in self.pushes if push.url.rstrip("/").endswith(f"/{handoff_id}")]

    def reset(self) -> None:
        """Forget executions and pushes and restore the default script (tasks stay in the SDK's store)."""
        super().reset()
        with self.lock:
            self.executions.clear()
            self.pushes.clear()
            self.script = PeerScript()

    async def _record_push(self, response: httpx.Response) -> None:
        request = response.request
        try:
            body = json.loads(request.content)
        except ValueError:
            body = {}
        event = body.get("task") or body.get("statusUpdate") or {}
        state = (event.get("status") or {}).get("state") if isinstance(event, dict) else None
        with self.lock:
            self.pushes.append(
                PushDelivery(
                    url=str(request.url),
                    token=request.headers.get(TOKEN_HEADER),
                    state=state,
                    status=response.status_code,
                    at=time.monotonic(),
                )
            )

    async def _forward(self, call: Call) -> Response:
        """Run the SDK's Starlette app for this request and return its answer."""
        scope = dict(call.request.scope)
        body = call.body
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        status = 500
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def send(message: dict[str, Any]) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        kept = {k.decode(): v.decode() for k, v in headers if k.lower() not in (b"content-length",)}
        return Response(content=b"".join(chunks), status_code=status, headers=kept)
