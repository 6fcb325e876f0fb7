"""The broker as an A2A (v1.0) agent: an A2A partner hands work to a registered SRE Agent.

Served with ``a2a-sdk``'s own server components (its JSON-RPC dispatcher and agent card route, a
Starlette app) behind ``func.AsgiMiddleware`` in an HTTP-triggered function. The request handler
below maps A2A onto the handoff service, so there is one schema (``HandoffRequest``, sent as the
message's ``data`` part), one authorization rule (:mod:`handoff.domain.auth`) and one set of use cases:

* ``SendMessage`` accepts a handoff and answers at once with a task whose id is the handoff id. The
  message id is the idempotency key, so a partner retrying the same message gets the same task.
* ``GetTask`` reports the handoff: accepted → SUBMITTED, delivered → WORKING, a hand-back →
  COMPLETED with the hand-back as an artifact, failed/rejected/canceled/inputRequired likewise.

The SDK is imported only when the first A2A request arrives.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Callable
from functools import lru_cache
from typing import Any, TypeVar

from handoff.adapters.telemetry import span
from handoff.adapters.telemetry.wiring import accepted
from handoff.domain.auth import Caller
from handoff.domain.contract import (
    A2A_EXTENSION_DESCRIPTION,
    A2A_EXTENSION_URI,
    extension_params,
    tagged_document,
)
from handoff.domain.errors import NotFound, Problem, ServiceUnavailable, Unprocessable, single_field
from handoff.domain.intake import check_value, validate_document
from handoff.domain.messages import handback_text
from handoff.domain.models import HandoffRequest, HandoffView
from handoff.domain.registry import Registry
from handoff.entrypoints.contract_schemas import SCHEMAS_ROUTE
from handoff.ports import StorageUnavailable
from handoff.services.handoffs import Handoffs
from handoff.settings import Settings

T = TypeVar("T")
ROUTE = "a2a"
CARD_PATH = ".well-known/agent-card.json"
PROTOCOL_VERSION = "1.0"
ROUTE_PREFIX = "/api"  # host.json sets no routePrefix, so the Functions default applies

# Handoff status → A2A TaskState name (without the TASK_STATE_ prefix).
TASK_STATES = {
    "accepted": "SUBMITTED",
    "delivered": "WORKING",
    "handedBack": "COMPLETED",
    "failed": "FAILED",
    "inputRequired": "INPUT_REQUIRED",
    "rejected": "REJECTED",
    "canceled": "CANCELED",
}


def task_state_of(view: HandoffView) -> str:
    """The A2A task state of a handoff: COMPLETED as soon as a hand-back is recorded."""
    if view.handbacks and view.status in ("delivered", "handedBack"):
        return "COMPLETED"
    return TASK_STATES[view.status]


def rpc_url(settings: Settings) -> str:
    """The public URL of the JSON-RPC endpoint, as the agent card names it."""
    return f"{settings.base_url}{ROUTE_PREFIX}/{ROUTE}"


def build_agent_card(settings: Settings, registry: Registry) -> Any:
    """The broker's agent card: one JSON-RPC interface at ``/api/a2a`` and a skill per SRE Agent."""
    from a2a.types import (
        AgentCapabilities,
        AgentCard,
        AgentExtension,
        AgentInterface,
        AgentSkill,
        APIKeySecurityScheme,
        HTTPAuthSecurityScheme,
        SecurityRequirement,
        SecurityScheme,
        StringList,
    )

    skills = [
        AgentSkill(
            id="handoff",
            name="Hand off an investigation",
            description=(
                "Send a handoff request (the broker's HandoffRequest JSON, as the message's data part) to "
                "hand an investigation to a registered Azure SRE Agent. The task completes when that agent "
                "hands its findings back; the hand-back is the task's artifact."
            ),
            tags=["handoff", "sre", "incident", "investigation"],
            input_modes=["application/json"],
            output_modes=["application/json", "text/markdown"],
        )
    ]
    for agent in registry.agents:
        if agent.is_a2a:
            continue
        skills.append(
            AgentSkill(
                id=f"handoff-to-{agent.name}",
                name=f"Hand off to {agent.label}",
                description=agent.description or f"Hand an investigation to the SRE Agent {agent.label}.",
                tags=["handoff", agent.name],
                input_modes=["application/json"],
                output_modes=["application/json", "text/markdown"],
            )
        )
    if settings.http_auth_level == "function":
        scheme_name = "functionKey"
        scheme = SecurityScheme(
            api_key_security_scheme=APIKeySecurityScheme(
                location="header", name="x-functions-key", description="The function app's function key."
            )
        )
    else:
        scheme_name = "entra"
        scheme = SecurityScheme(
            http_auth_security_scheme=HTTPAuthSecurityScheme(
                scheme="bearer", bearer_format="JWT", description="An Entra ID token for the broker's app."
            )
        )
    return AgentCard(
        name="Handoff Broker",
        description=(
            "Hands an investigation from one agent to an Azure SRE Agent with structured context, and "
            "brings the findings back."
        ),
        version="1.0",
        supported_interfaces=[
            AgentInterface(
                url=rpc_url(settings), protocol_binding="JSONRPC", protocol_version=PROTOCOL_VERSION
            )
        ],
        capabilities=AgentCapabilities(
            streaming=False,
            push_notifications=False,
            extended_agent_card=False,
            extensions=[
                AgentExtension(
                    uri=A2A_EXTENSION_URI,
                    description=A2A_EXTENSION_DESCRIPTION,
                    required=False,
                    params=_struct(extension_params(f"{settings.base_url}{ROUTE_PREFIX}/{SCHEMAS_ROUTE}")),
                )
            ],
        ),
        default_input_modes=["application/json"],
        default_output_modes=["application/json", "text/markdown"],
        skills=skills,
        security_schemes={scheme_name: scheme},
        security_requirements=[SecurityRequirement(schemes={scheme_name: StringList()})],
    )


def _struct(values: dict[str, Any]) -> Any:
    from google.protobuf import struct_pb2

    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


# A protobuf Struct spends three message levels on every JSON object (Struct, map entry, Value), and
# protobuf refuses to decode more than 100: deeper parts of a handoff travel as JSON text instead.
STRUCT_DEPTH = 24


def struct_safe(value: Any, depth: int = STRUCT_DEPTH) -> Any:
    """``value`` with every array or object nested deeper than ``depth`` replaced by its JSON text, so
    that it fits a protobuf ``Struct`` (the full value is at ``GET /api/handoffs/{id}``)."""
    if not isinstance(value, dict | list):
        return value
    if depth <= 1:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, dict):
        return {key: struct_safe(item, depth - 1) for key, item in value.items()}
    return [struct_safe(item, depth - 1) for item in value]


def task_of(view: HandoffView) -> Any:
    """The A2A task that reports a handoff (id = handoff id)."""
    from a2a.types import Artifact, Message, Part, Role, Task, TaskState, TaskStatus
    from google.protobuf import struct_pb2

    state = task_state_of(view)
    where = view.target.thread_url or view.target.task_id or ""
    status_text = {
        "SUBMITTED": f"Accepted; delivering to {view.target.agent}.",
        "WORKING": f"{view.target.agent} is investigating" + (f": {where}" if where else "."),
        "COMPLETED": f"{view.target.agent} handed back its findings.",
    }.get(state, view.last_error or f"The handoff is {view.status}.")
    artifacts = []
    for handback in view.handbacks:
        data = struct_pb2.Value()
        data.struct_value.update(struct_safe(handback.to_wire()))
        text = handback_text(handback.outcome, handback.summary, handback.root_cause)
        artifacts.append(
            Artifact(
                artifact_id=f"{view.id}-handback-{handback.seq}",
                name="handback",
                description=f"Hand-back {handback.seq} from {handback.agent}",
                parts=[
                    Part(text=text, media_type="text/markdown"),
                    Part(data=data, media_type="application/json"),
                ],
            )
        )
    metadata = struct_pb2.Struct()
    metadata.update({"handoff": struct_safe(view.to_wire())})
    context_id = view.correlation_id or view.root_handoff_id
    return Task(
        id=view.id,
        context_id=context_id,
        status=TaskStatus(
            state=TaskState.Value(f"TASK_STATE_{state}"),
            message=Message(
                message_id=f"{view.id}-status-{view.updated_at.timestamp():.0f}",
                context_id=context_id,
                task_id=view.id,
                role=Role.ROLE_AGENT,
                parts=[Part(text=status_text)],
            ),
        ),
        artifacts=artifacts,
        metadata=metadata,
    )


def handoff_request_of(message: Any, contract: bool = False) -> HandoffRequest:
    """The handoff request in a message's ``data`` part.

    Without the contract's extension activated: the first part that is a JSON object, its wrong fields
    named as pointers into the message (``/message/parts/0/data/context/severity``). With it
    (``contract``): the part tagged as a ``handoff-request`` (else the first JSON object), validated as the
    REST body is, with the very problem ``POST /api/handoffs`` answers (``/context/severity``).
    """
    from google.protobuf.json_format import MessageToDict

    candidates: list[tuple[int, dict[str, Any]]] = []
    for index, part in enumerate(message.parts):
        if not part.HasField("data"):
            continue
        data = MessageToDict(part.data)
        if not isinstance(data, dict):
            continue
        if contract and tagged_document(MessageToDict(part.metadata)) == "handoff-request":
            candidates.insert(0, (index, data))
            break
        candidates.append((index, data))
    if not candidates:
        raise a2a_error(
            single_field(Unprocessable, "/message/parts", "no data part with a JSON object")
        ) from None
    index, data = candidates[0]
    if message.context_id and "correlationId" not in data:
        # The partner's A2A context is its correlation id: GetTask answers with it again.
        data["correlationId"] = message.context_id
    prefix = "" if contract else f"/message/parts/{index}/data"
    try:
        check_value(data, prefix=prefix)
        return validate_document(data, HandoffRequest, prefix=prefix)
    except Problem as problem:
        raise a2a_error(problem) from None


def activated_extensions(requested: set[str]) -> list[str]:
    """The extensions of a request's ``A2A-Extensions`` header that the broker activates (echoed back
    in the answer's header): the contract's, when it is asked for."""
    return [A2A_EXTENSION_URI] if A2A_EXTENSION_URI in requested else []


def a2a_error(problem: Problem) -> Exception:
    """The A2A error for a problem of the service layer (its title, detail and field errors as data)."""
    from a2a.utils.errors import InternalError, InvalidParamsError, InvalidRequestError, TaskNotFoundError

    data = problem.to_json()
    if isinstance(problem, NotFound):
        return TaskNotFoundError(message=problem.detail, data=data)
    if problem.status in (400, 413, 422):
        return InvalidParamsError(message=problem.detail, data=data)
    if problem.status >= 500:
        return InternalError(message=problem.detail, data=data)
    return InvalidRequestError(message=f"{problem.title}: {problem.detail}", data=data)


def make_request_handler(get_handoffs: Callable[[], Handoffs]) -> Any:
    """An ``a2a-sdk`` ``RequestHandler`` over the handoff use cases."""
    from a2a.server.request_handlers import RequestHandler
    from a2a.utils.errors import InternalError, InvalidParamsError, UnsupportedOperationError

    async def run(call: Callable[[], T]) -> T:
        try:
            # The service is synchronous (storage SDK calls); keep it off the event loop.
            return await asyncio.to_thread(call)
        except Problem as problem:
            raise a2a_error(problem) from None
        except StorageUnavailable:
            raise a2a_error(ServiceUnavailable("storage is unavailable; retry later")) from None
        except Exception:
            import logging

            logging.getLogger("handoff").exception("unhandled error serving an A2A request")
            raise InternalError(message="an unexpected error occurred; it has been logged") from None

    class HandoffRequestHandler(RequestHandler):
        """SendMessage and GetTask over handoffs; everything else is unsupported."""

        async def on_message_send(self, params: Any, context: Any) -> Any:
            message = params.message
            if message.task_id:
                raise InvalidParamsError(message="follow-up messages to an existing task are not supported")
            contract = bool(activated_extensions(context.requested_extensions))
            request = handoff_request_of(message, contract)
            caller: Caller = context.state["caller"]
            intake = get_handoffs().intake

            def accept() -> HandoffView:
                with span("handoff.accept", {"handoff.via": "a2a"}) as current:
                    view, created = intake.accept_request(request, caller, message.message_id)
                    accepted(current, view, created, "a2a")
                return view

            return task_of(await run(accept))

        async def on_get_task(self, params: Any, context: Any) -> Any:
            caller: Caller = context.state["caller"]
            queries = get_handoffs().queries
            return task_of(await run(lambda: queries.get(params.id, caller)))

        async def on_list_tasks(self, params: Any, context: Any) -> Any:
            raise UnsupportedOperationError(message="ListTasks is not supported; use GetTask")

        async def on_cancel_task(self, params: Any, context: Any) -> Any:
            raise UnsupportedOperationError(message="a handoff cannot be canceled over A2A")

        async def on_message_send_stream(self, params: Any, context: Any) -> AsyncGenerator[Any, None]:
            for _ in ():  # never runs: the yield makes this an async generator, as the SDK expects
                yield
            raise UnsupportedOperationError(message="streaming is not supported; use SendMessage and GetTask")

        async def on_subscribe_to_task(self, params: Any, context: Any) -> AsyncGenerator[Any, None]:
            for _ in ():  # never runs: the yield makes this an async generator, as the SDK expects
                yield
            raise UnsupportedOperationError(message="streaming is not supported; use GetTask")

        async def on_create_task_push_notification_config(self, params: Any, context: Any) -> Any:
            raise UnsupportedOperationError(message="push notifications are not supported")

        async def on_get_task_push_notification_config(self, params: Any, context: Any) -> Any:
            raise UnsupportedOperationError(message="push notifications are not supported")

        async def on_list_task_push_notification_configs(self, params: Any, context: Any) -> Any:
            raise UnsupportedOperationError(message="push notifications are not supported")

        async def on_delete_task_push_notification_config(self, params: Any, context: Any) -> Any:
            raise UnsupportedOperationError(message="push notifications are not supported")

        async def on_get_extended_agent_card(self, params: Any, context: Any) -> Any:
            raise UnsupportedOperationError(message="there is no extended agent card")

    return HandoffRequestHandler()


@lru_cache(maxsize=1)
def get_a2a_app() -> Any:
    """The Starlette app with the SDK's JSON-RPC route and agent card route (built once)."""
    from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
    from a2a.server.routes.common import DefaultServerCallContextBuilder
    from starlette.applications import Starlette

    from handoff.bootstrap import get_handoffs, get_registry
    from handoff.entrypoints.responses import caller_of_headers
    from handoff.settings import get_settings

    settings = get_settings()

    class CallerContextBuilder(DefaultServerCallContextBuilder):
        """Adds the caller, decided by the same rule as the REST API."""

        def build(self, request: Any) -> Any:
            context = super().build(request)
            # handle() has already identified this request and counted it against its rate limit.
            context.state["caller"] = caller_of_headers(
                dict(request.headers), settings.http_auth_level, rate_limited=False
            )
            return context

    card = build_agent_card(settings, get_registry())
    base = f"{ROUTE_PREFIX}/{ROUTE}"
    routes = [
        *create_agent_card_routes(card, card_url=f"{base}/{CARD_PATH}"),
        *create_jsonrpc_routes(
            make_request_handler(get_handoffs), base, context_builder=CallerContextBuilder()
        ),
    ]
    return echo_extensions(Starlette(routes=routes))


def echo_extensions(app: Any) -> Any:
    """``app`` answering every request with the extensions it activated for it in ``A2A-Extensions``
    (the A2A specification's echo), as :func:`activated_extensions` decides for the request's header."""
    from a2a.extensions.common import HTTP_EXTENSION_HEADER, get_requested_extensions

    header = HTTP_EXTENSION_HEADER.lower().encode()

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        values = [value.decode("latin-1") for key, value in scope.get("headers", []) if key.lower() == header]
        activated = activated_extensions(get_requested_extensions(values))
        if scope.get("type") != "http" or not activated:
            await app(scope, receive, send)
            return

        async def send_echo(message: dict[str, Any]) -> None:
            if message.get("type") == "http.response.start":
                headers = [*message.get("headers", []), (header, ",".join(activated).encode())]
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_echo)

    return wrapped
