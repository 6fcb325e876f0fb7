"""Shared-memory writes: the queue worker, and the replay of writes that failed for good."""

from __future__ import annotations

import logging

import azure.functions as func

from handoff.bootstrap import get_handoffs, get_shared_memory
from handoff.domain.auth import Caller
from handoff.domain.errors import BadRequest, FieldError, Problem
from handoff.domain.intake import MAX_BODY_BYTES, load_json, load_queue_message
from handoff.entrypoints.queue_triggers import consume
from handoff.entrypoints.responses import REST_AUTH_LEVEL, handle, json_response
from handoff.settings import SHARED_MEMORY_QUEUE, STORAGE_CONNECTION

log = logging.getLogger("handoff")
bp = func.Blueprint()


@bp.queue_trigger(arg_name="msg", queue_name=SHARED_MEMORY_QUEUE, connection=STORAGE_CONNECTION)
def write_shared_memory(msg: func.QueueMessage) -> None:
    """Perform one shared-memory write; failures are rescheduled by the service."""
    try:
        message = load_queue_message(msg.get_body(), "shared-memory message")
    except Problem as problem:
        log.error("shared-memory message %s: %s; moving it to the poison queue", msg.id, problem.detail)
        get_shared_memory().queue.send_poison({"reason": problem.detail[:500], "messageId": msg.id})
        return
    with consume(SHARED_MEMORY_QUEUE, msg, message):
        get_shared_memory().process(message, msg.dequeue_count or 1)


@bp.route(route="handoffs/{id}/shared-memory", methods=["GET"], auth_level=REST_AUTH_LEVEL)
def shared_memory_writes(req: func.HttpRequest) -> func.HttpResponse:
    """The state of every shared-memory write of a handoff."""

    def action(caller: Caller) -> func.HttpResponse:
        handoff_id = req.route_params["id"]
        get_handoffs().queries.readable_record(handoff_id, caller, "read the shared-memory writes of")
        service = get_shared_memory()
        return json_response({"handoffId": handoff_id, "writes": service.writes(handoff_id)})

    return handle(req, action)


@bp.route(route="handoffs/{id}/shared-memory/replay", methods=["POST"], auth_level=REST_AUTH_LEVEL)
def replay_shared_memory(req: func.HttpRequest) -> func.HttpResponse:
    """Re-queue the handoff's failed shared-memory writes; body ``{"backend": name}`` (optional)."""

    def action(caller: Caller) -> func.HttpResponse:
        handoff_id = req.route_params["id"]
        handoffs = get_handoffs()
        handoffs.queries.readable_record(handoff_id, caller, "replay the shared-memory writes of")
        handoffs.context.authorizer.require_operator(caller, "replay shared-memory writes", handoff_id)
        body = req.get_body()
        backend = None
        if body.strip():
            data = load_json(body, limit_bytes=MAX_BODY_BYTES, invalid=BadRequest)
            if (
                not isinstance(data, dict)
                or set(data) - {"backend"}
                or not isinstance(data.get("backend", ""), str)
            ):
                raise BadRequest(
                    "body may only carry a string 'backend'",
                    errors=[FieldError(field="/backend", message="must be a backend name")],
                )
            backend = data.get("backend")
        result = get_shared_memory().replay(handoff_id, backend, caller.describe())
        return json_response(result, 202 if result["replayed"] else 200)

    return handle(req, action)
