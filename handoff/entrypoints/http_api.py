"""REST API: handoffs, hand-backs, audit, timeline, links, agents, health and the OpenAPI document."""

from __future__ import annotations

import re

import azure.functions as func

from handoff.adapters.telemetry import span
from handoff.adapters.telemetry.wiring import accepted, view_attributes
from handoff.bootstrap import get_handoffs
from handoff.domain.auth import Caller
from handoff.domain.errors import BadRequest, FieldError
from handoff.domain.ids import IDEMPOTENCY_KEY_HEADER
from handoff.domain.listing import parse_list_query
from handoff.domain.timeline import MERMAID_CONTENT_TYPE, sequence, timeline_view, to_mermaid
from handoff.domain.timeline_svg import to_svg
from handoff.entrypoints.contract_schemas import SCHEMAS_ROUTE
from handoff.entrypoints.mcp_tools import TOOLS, NoArguments
from handoff.entrypoints.responses import REST_AUTH_LEVEL, handle, json_response
from handoff.services.queries import AUDIT_PAGE

bp = func.Blueprint()


@bp.route(route="handoffs", methods=["POST"], auth_level=REST_AUTH_LEVEL)
def create_handoff(req: func.HttpRequest) -> func.HttpResponse:
    """Accept a handoff: 202 with its id and Location (200 when an Idempotency-Key replays)."""

    def action(caller: Caller) -> func.HttpResponse:
        with span("handoff.accept", {"handoff.via": "rest"}) as current:
            view, created = get_handoffs().intake.accept(
                req.get_body(), caller, req.headers.get(IDEMPOTENCY_KEY_HEADER)
            )
            accepted(current, view, created, "rest")
        return json_response(view, 202 if created else 200, {"Location": view.links["self"]})

    return handle(req, action)


@bp.route(route="handoffs", methods=["GET"], auth_level=REST_AUTH_LEVEL)
def list_handoffs(req: func.HttpRequest) -> func.HttpResponse:
    """One page of the handoffs the caller may see, newest first (``status``, ``source``, ``target``,
    ``since``, ``alertRule``, ``top``, ``continuationToken``), from the handoff index."""

    def action(caller: Caller) -> func.HttpResponse:
        query = parse_list_query(dict(req.params))
        page = get_handoffs().listing.list(query, caller)
        return json_response({**page.to_wire(), "continuationToken": page.continuation_token})

    return handle(req, action)


@bp.route(route="handoffs/{id}", methods=["GET"], auth_level=REST_AUTH_LEVEL)
def get_handoff(req: func.HttpRequest) -> func.HttpResponse:
    """The handoff: status, both threads with deep links, context, attempts and hand-backs."""
    return handle(
        req, lambda caller: json_response(get_handoffs().queries.get(req.route_params["id"], caller))
    )


@bp.route(route="handoffs/{id}/audit", methods=["GET"], auth_level=REST_AUTH_LEVEL)
def get_handoff_audit(req: func.HttpRequest) -> func.HttpResponse:
    """One page of the handoff's append-only audit events, oldest first (``top``, ``continuationToken``)."""

    def action(caller: Caller) -> func.HttpResponse:
        top = page_size(req.params.get("top"), AUDIT_PAGE)
        token = req.params.get("continuationToken")
        return json_response(get_handoffs().queries.audit(req.route_params["id"], caller, top, token))

    return handle(req, action)


@bp.route(route="handoffs/{id}/audit/verify", methods=["GET"], auth_level=REST_AUTH_LEVEL)
def verify_handoff_audit(req: func.HttpRequest) -> func.HttpResponse:
    """Recompute the audit's hash chain: valid, or the first sequence number where it breaks."""
    return handle(
        req, lambda caller: json_response(get_handoffs().queries.verify_audit(req.route_params["id"], caller))
    )


TIMELINE_FORMATS = ("mermaid", "svg", "json")
# An SVG opened on its own is a document: it may run nothing and load nothing.
SVG_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}


@bp.route(route="handoffs/{id}/timeline", methods=["GET"], auth_level=REST_AUTH_LEVEL)
def get_handoff_timeline(req: func.HttpRequest) -> func.HttpResponse:
    """The chain the handoff belongs to as a sequence diagram. ``format`` alone picks the answer (the
    Accept header is not consulted): ``mermaid`` (default, ``text/vnd.mermaid``), ``svg``
    (``image/svg+xml``) or ``json`` (the chain's handoffs and the Mermaid source)."""

    def action(caller: Caller) -> func.HttpResponse:
        form = req.params.get("format") or "mermaid"
        if form not in TIMELINE_FORMATS:
            raise BadRequest(
                f"format must be one of {', '.join(TIMELINE_FORMATS)}",
                errors=[FieldError(field="format", message=f"one of {', '.join(TIMELINE_FORMATS)}")],
            )
        timeline = get_handoffs().queries.timeline(req.route_params["id"], caller)
        diagram = sequence(timeline)
        if form == "json":
            return json_response(timeline_view(timeline, diagram))
        if form == "svg":
            return func.HttpResponse(to_svg(diagram), mimetype="image/svg+xml", headers=SVG_HEADERS)
        return func.HttpResponse(to_mermaid(diagram), mimetype=MERMAID_CONTENT_TYPE, charset="utf-8")

    return handle(req, action)


def page_size(value: str | None, most: int) -> int:
    """The ``top`` query parameter: 1..``most`` (400 naming it otherwise); ``most`` when absent."""
    if value is None or value == "":
        return most
    if not re.fullmatch(r"[0-9]{1,6}", value) or not 1 <= int(value) <= most:
        raise BadRequest(
            f"top must be a whole number from 1 to {most}",
            errors=[FieldError(field="top", message=f"must be a whole number from 1 to {most}")],
        )
    return int(value)


@bp.route(route="handoffs/{id}/handback", methods=["POST"], auth_level=REST_AUTH_LEVEL)
def hand_back(req: func.HttpRequest) -> func.HttpResponse:
    """Take the target agent's findings and queue their delivery into the source thread."""

    def action(caller: Caller) -> func.HttpResponse:
        with span("handoff.handback.accept", {"handoff.id": req.route_params["id"]}) as current:
            view, created = get_handoffs().handbacks.hand_back(
                req.route_params["id"], req.get_body(), caller, req.headers.get(IDEMPOTENCY_KEY_HEADER)
            )
            current.set({**view_attributes(view), "handoff.created": created})
        return json_response(view, 202 if created else 200, {"Location": view.links["self"]})

    return handle(req, action)


@bp.route(route="handoffs/{id}/retry", methods=["POST"], auth_level=REST_AUTH_LEVEL)
def retry_handoff(req: func.HttpRequest) -> func.HttpResponse:
    """Operators: queue the handoff's failed steps again (202), or nothing when none failed (200)."""

    def action(caller: Caller) -> func.HttpResponse:
        view, steps = get_handoffs().sweeper.retry(req.route_params["id"], caller)
        retried = [{key: value for key, value in step.items() if key != "op"} for step in steps]
        body = {"handoffId": view.id, "status": view.status, "retried": retried}
        return json_response(body, 202 if steps else 200, {"Location": view.links["self"]})

    return handle(req, action)


@bp.route(route="threads/{agent}/{threadId}/links", methods=["GET"], auth_level=REST_AUTH_LEVEL)
def thread_links(req: func.HttpRequest) -> func.HttpResponse:
    """Every thread linked to this one (by registered agent name), following chains."""
    params = req.route_params
    return handle(
        req,
        lambda caller: json_response(
            get_handoffs().queries.thread_links(params["agent"], params["threadId"], caller)
        ),
    )


@bp.route(route="links", methods=["GET"], auth_level=REST_AUTH_LEVEL)
def links(req: func.HttpRequest) -> func.HttpResponse:
    """Like the thread links route, with ``agent`` (name or resource ID) and ``threadId`` as query."""

    def action(caller: Caller) -> func.HttpResponse:
        agent, thread_id = req.params.get("agent"), req.params.get("threadId")
        missing = [name for name, value in (("agent", agent), ("threadId", thread_id)) if not value]
        if missing:
            raise BadRequest(
                f"missing query parameter(s): {', '.join(missing)}",
                errors=[FieldError(field=name, message="required query parameter") for name in missing],
            )
        return json_response(get_handoffs().queries.thread_links(agent or "", thread_id or "", caller))

    return handle(req, action)


AGENT_LIST = next(tool for tool in TOOLS if tool.name == "handoff_list_agents")


@bp.route(route="agents", methods=["GET"], auth_level=REST_AUTH_LEVEL)
def list_agents(req: func.HttpRequest) -> func.HttpResponse:
    """The registered agents, exactly as the MCP tool ``handoff_list_agents`` lists them (same caller
    rule: any caller the broker knows)."""
    return handle(req, lambda caller: json_response(AGENT_LIST.run(get_handoffs(), caller, NoArguments())))


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """200 when storage answers, 503 otherwise (within about 2 s)."""

    def action(_caller: Caller) -> func.HttpResponse:
        try:
            result = get_handoffs().queries.health()
        except Exception:  # the service itself could not be built: storage unreachable at start
            return json_response({"status": "unhealthy", "storage": "unreachable"}, 503)
        return json_response(result, 200 if result.status == "healthy" else 503)

    return handle(req, action, public=True)


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    """The OpenAPI 3.1 document of this API, generated from the models."""
    from handoff.entrypoints.openapi import openapi_document

    return handle(req, lambda _caller: json_response(openapi_document()), public=True)


@bp.route(route=f"{SCHEMAS_ROUTE}/{{name}}.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def contract_schema(req: func.HttpRequest) -> func.HttpResponse:
    """A JSON Schema of the handoff contract, byte for byte as checked in (spec/handoff-context/v1);
    public, as schemas are. 404 for a name the contract does not have."""
    from handoff.domain.contract import MEDIA_TYPE
    from handoff.entrypoints.contract_schemas import schema_file

    def action(_caller: Caller) -> func.HttpResponse:
        body = schema_file(req.route_params["name"])
        return func.HttpResponse(
            body, status_code=200, headers={"Cache-Control": "public, max-age=3600"}, mimetype=MEDIA_TYPE
        )

    return handle(req, action, public=True)
