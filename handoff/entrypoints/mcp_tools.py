"""The broker's tools for agents: names, descriptions, argument models and what each one does.

An SRE Agent reaches the broker through an MCP connector (served by
:mod:`handoff.entrypoints.mcp_server`); its tools are named ``{connector}_{tool}`` and compete with up
to ~80 others for the model's attention, so each description says what the tool does and when to pick
it. Arguments are the REST API's own models (:class:`~handoff.domain.models.HandoffRequest`,
:class:`~handoff.domain.models.HandbackRequest`), so the two surfaces cannot drift, and every tool calls the
same use case as its REST twin with the caller built by the same rule. The tools that take or return a
document of the handoff contract (``spec/handoff-context/v1/``) publish that contract's checked-in schema
as their input or output schema, bundled into one self-contained schema.

This module imports no MCP SDK; it is plain domain code that the MCP entrypoint wraps.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from handoff.adapters.telemetry import current_span, from_caller, span
from handoff.adapters.telemetry.wiring import accepted, view_attributes
from handoff.domain.auth import Caller
from handoff.domain.errors import FieldError, Problem
from handoff.domain.history import HistoryQuery
from handoff.domain.intake import parse_body
from handoff.domain.listing import DEFAULT_TOP, MAX_TOP, HandoffList, ListQuery, parse_list_query
from handoff.domain.models import (
    HandbackRequest,
    HandoffRequest,
    HandoffStatus,
    HandoffView,
    PathSegmentId,
    ShortText,
    WireModel,
)
from handoff.domain.registry import AGENT_NAME_PATTERN
from handoff.entrypoints.contract_schemas import bundled_schema
from handoff.services.handoffs import Handoffs
from handoff.settings import Settings

MCP_ROUTE = "mcp"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


# ---------------------------------------------------------------- argument models


class HandoffRef(WireModel):
    """Arguments of ``handoff_get``."""

    handoff_id: ShortText = Field(description="Id of the handoff, as returned by handoff_create.")


class HandoffCreateArguments(HandoffRequest):
    """Arguments of ``handoff_create``: the REST handoff body plus the ``Idempotency-Key`` header."""

    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Optional. A key unique to this handoff (for example the incident id and the target); "
        "calling again with the same key returns the same handoff instead of opening a second one.",
    )

    def request(self) -> HandoffRequest:
        """The REST handoff body these arguments carry."""
        return HandoffRequest(**{name: getattr(self, name) for name in HandoffRequest.model_fields})


class HandbackArguments(HandbackRequest):
    """Arguments of ``handoff_hand_back``: the handoff id plus the REST hand-back body."""

    handoff_id: ShortText = Field(
        description="Id of the handoff you received; it is in the first message of your thread."
    )

    def request(self) -> HandbackRequest:
        """The REST hand-back body these arguments carry."""
        return HandbackRequest(**{name: getattr(self, name) for name in HandbackRequest.model_fields})


class ThreadRef(WireModel):
    """Arguments of ``handoff_links`` (the query parameters of ``GET /api/links``)."""

    agent: ShortText = Field(description="Registered agent name (or resource ID) that owns the thread.")
    thread_id: PathSegmentId = Field(
        description="Id of the thread, as in the portal URL .../thread/<threadId>."
    )


class HandoffListArguments(WireModel):
    """Arguments of ``handoff_list`` (the query parameters of ``GET /api/handoffs``)."""

    status: HandoffStatus | None = Field(default=None, description="Only handoffs with this status.")
    source: str | None = Field(default=None, pattern=AGENT_NAME_PATTERN, description="Source agent name.")
    target: str | None = Field(default=None, pattern=AGENT_NAME_PATTERN, description="Target agent name.")
    since: str | None = Field(
        default=None,
        max_length=64,
        description="Created at or after this time: ISO 8601, e.g. 2026-12-02T08:00:00Z (default: the "
        "last 31 days).",
    )
    alert_rule: str | None = Field(default=None, max_length=260, description="The alert rule that opened it.")
    top: int = Field(default=DEFAULT_TOP, ge=1, le=MAX_TOP, description="Page size.")
    continuation_token: str | None = Field(
        default=None, max_length=512, description="The continuationToken of the previous page."
    )

    def query(self) -> ListQuery:
        """The listing's query, validated as the REST query string is."""
        params = {
            "status": self.status,
            "source": self.source,
            "target": self.target,
            "since": self.since,
            "alertRule": self.alert_rule,
            "top": str(self.top),
            "continuationToken": self.continuation_token,
        }
        return parse_list_query({name: value for name, value in params.items() if value is not None})


class NoArguments(WireModel):
    """Arguments of a tool that takes none."""


class AgentSummary(WireModel):
    """One registered agent, as ``handoff_list_agents`` shows it."""

    name: str
    display_name: str | None = None
    description: str | None = None
    resource_id: str | None = None
    delivery: str


class AgentList(WireModel):
    """Result of ``handoff_list_agents``."""

    agents: list[AgentSummary]


# ---------------------------------------------------------------- tools


@dataclass(frozen=True)
class ToolSpec:
    """One tool: how an agent sees it and what it runs."""

    name: str
    title: str
    description: str
    arguments: type[WireModel]
    run: Callable[[Handoffs, Caller, Any], BaseModel]
    read_only: bool
    # Names of contract schemas: the REST body the arguments carry, and what a successful call returns.
    contract: str | None = None
    output: str | None = None
    # The model of what a successful call returns, for tools whose result is no contract document.
    output_model: type[BaseModel] | None = None

    def input_schema(self) -> dict[str, Any]:
        """JSON schema of the arguments (camelCase, as the REST API): the contract's schema of the body,
        with the tool's own extra arguments added; the model's schema for tools outside the contract."""
        model_schema = self.arguments.model_json_schema(by_alias=True)
        if self.contract is None:
            return model_schema
        schema = bundled_schema(self.contract)
        extra = {
            name: value
            for name, value in model_schema["properties"].items()
            if name not in schema["properties"]
        }
        schema["properties"].update(extra)
        required = [name for name in model_schema.get("required", []) if name in extra]
        if required:
            schema["required"] = [*schema.get("required", []), *required]
        return schema

    def output_schema(self) -> dict[str, Any] | None:
        """JSON schema of a successful call's structured content: a contract document's, or the
        ``output_model``'s (as it is sent)."""
        if self.output_model is not None:
            return self.output_model.model_json_schema(by_alias=True, mode="serialization")
        return bundled_schema(self.output) if self.output else None


def _create(handoffs: Handoffs, caller: Caller, args: HandoffCreateArguments) -> BaseModel:
    view, created = handoffs.intake.accept_request(args.request(), caller, args.idempotency_key)
    accepted(current_span(), view, created, "mcp")
    return view


def _get(handoffs: Handoffs, caller: Caller, args: HandoffRef) -> BaseModel:
    return handoffs.queries.get(args.handoff_id, caller)


def _hand_back(handoffs: Handoffs, caller: Caller, args: HandbackArguments) -> BaseModel:
    record = handoffs.queries.readable_record(args.handoff_id, caller, "hand back on")
    view, _created = handoffs.handbacks.hand_back_request(record, args.request(), caller)
    return view


def _links(handoffs: Handoffs, caller: Caller, args: ThreadRef) -> BaseModel:
    return handoffs.queries.thread_links(args.agent, args.thread_id, caller)


def _agents(handoffs: Handoffs, _caller: Caller, _args: NoArguments) -> BaseModel:
    return AgentList(
        agents=[
            AgentSummary(
                name=agent.name,
                display_name=agent.display_name,
                description=agent.description,
                resource_id=agent.resource_id,
                delivery=agent.delivery.mode,
            )
            for agent in handoffs.context.registry.agents
        ]
    )


def _history(handoffs: Handoffs, caller: Caller, args: HistoryQuery) -> BaseModel:
    return handoffs.queries.search_history(args, caller)


def _list(handoffs: Handoffs, caller: Caller, args: HandoffListArguments) -> BaseModel:
    return handoffs.listing.list(args.query(), caller)


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        name="handoff_create",
        title="Hand off an investigation to another agent",
        description=(
            "Hand the current investigation to another team's SRE agent, with structured context "
            "(summary, severity, affected Azure resources, evidence, hypotheses, actions taken). The broker "
            "opens a thread on the target agent, posts a link to it in your thread, and later posts the "
            "target's findings back into your thread. Use when the problem lies in a service another agent "
            "owns; call handoff_list_agents first to choose the target. Set source.threadId to your current "
            "thread so the answer can come back, and parentHandoffId when you continue a handoff you "
            "received. Returns the handoff id and status (poll with handoff_get)."
        ),
        arguments=HandoffCreateArguments,
        run=_create,
        read_only=False,
        contract="handoff-request",
        output="handoff-status",
    ),
    ToolSpec(
        name="handoff_get",
        title="Read a handoff",
        description=(
            "Read one handoff by id: status (accepted, delivered, handedBack, failed), the target agent's "
            "thread with a portal link, hand-backs received, delivery errors, and its chain (parent and "
            "child handoffs). Use to check whether a handoff you made was delivered or answered."
        ),
        arguments=HandoffRef,
        run=_get,
        read_only=True,
        output="handoff-status",
    ),
    ToolSpec(
        name="handoff_hand_back",
        title="Hand findings back to the requesting agent",
        description=(
            "Return your findings for an investigation another agent handed to you (you must be the "
            "handoff's target): outcome, summary, root cause, recommended actions and evidence are posted "
            "into the requesting agent's thread. Use when you have finished, or decline, a handed-off "
            "investigation; the handoff id is in the first message of your thread."
        ),
        arguments=HandbackArguments,
        run=_hand_back,
        read_only=False,
        contract="handback-request",
        output="handoff-status",
    ),
    ToolSpec(
        name="handoff_links",
        title="Find threads linked by handoffs",
        description=(
            "List the threads linked to a thread by handoffs, following chains in both directions "
            "(handed off to, received from), with portal links. Use to find the related investigations "
            "of a thread, for example where a handed-off investigation continued."
        ),
        arguments=ThreadRef,
        run=_links,
        read_only=True,
    ),
    ToolSpec(
        name="handoff_list_agents",
        title="List agents to hand off to",
        description=(
            "List the SRE agents registered with the handoff broker, each with a one-line description of "
            "what it is good at. Call before handoff_create to choose the target agent."
        ),
        arguments=NoArguments,
        run=_agents,
        read_only=True,
    ),
    ToolSpec(
        name="handoff_history",
        title="Search earlier investigations",
        description=(
            "Search investigations that were handed off and answered before, newest first: by resource ID "
            "(or a resource-group or subscription prefix), alert rule, agent, outcome, time range or free "
            "text over title, summary and root cause. Use it before investigating from scratch: a past "
            "root cause and its recommended actions may apply again."
        ),
        arguments=HistoryQuery,
        run=_history,
        read_only=True,
    ),
    ToolSpec(
        name="handoff_list",
        title="List handoffs",
        description=(
            "List handoffs you handed off or received (all of them for an operator), newest first: by "
            "status (accepted, delivered, handedBack, failed, ...), source or target agent, alert rule and "
            "creation time (since, default the last 31 days). Use to find open or failed handoffs, or the "
            "id of one to read with handoff_get. Pass continuationToken from the answer for the next page."
        ),
        arguments=HandoffListArguments,
        run=_list,
        read_only=True,
        output_model=HandoffList,
    ),
)


@dataclass(frozen=True)
class ToolOutcome:
    """What a tool call answers: JSON data, the same as text, and whether it is an error."""

    ok: bool
    data: dict[str, Any]
    text: str


def call_tool(
    spec: ToolSpec,
    arguments: Mapping[str, Any],
    caller: Callable[[], Caller],
    handoffs: Callable[[], Handoffs],
    instance: str,
    to_problem: Callable[[Exception, str], Problem],
    trace_parent: Mapping[str, str] | None = None,
) -> ToolOutcome:
    """Run a tool the way the REST API runs a request: identify the caller (a refusal, such as an unknown
    key or the rate limit, is the tool's error), parse the arguments with the REST parser (same size
    limit and field errors), call the use case, and turn any failure into its problem. The call is one
    span, a child of the W3C trace context in ``trace_parent`` (the request's headers)."""
    parent = from_caller(trace_parent)
    with span(f"mcp.tool {spec.name}", {"mcp.tool.name": spec.name}, parent=parent) as current:
        try:
            who = caller()
            args = parse_body(json.dumps(dict(arguments)).encode(), spec.arguments)
            result = spec.run(handoffs(), who, args)
        except Exception as exc:
            problem = to_problem(exc, instance)
            current.set({"mcp.tool.status": problem.status})
            return ToolOutcome(False, problem.to_json(instance), problem_text(problem))
        if isinstance(result, HandoffView):
            current.set(view_attributes(result))
    data = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    return ToolOutcome(True, data, json.dumps(data, ensure_ascii=False))


def problem_text(problem: Problem) -> str:
    """A problem as a tool error text: title, status, detail and one line per wrong field."""
    lines = [f"{problem.title} ({problem.status}): {problem.detail}"]
    lines += [
        f"- {error.field}: {error.message}" for error in problem.errors if isinstance(error, FieldError)
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- allowed hosts


def allowed_hosts(settings: Settings) -> tuple[list[str], list[str]]:
    """Host and Origin values the MCP endpoint accepts (DNS-rebinding protection).

    Loopback with any port (local runs), the function app's own name (``WEBSITE_HOSTNAME``), the host of
    ``HANDOFF_PUBLIC_URL`` (a custom domain or gateway), and ``HANDOFF_MCP_ALLOWED_HOSTS`` (comma
    separated). A ``host:*`` entry allows any port. Origins are the same hosts over https (and http for
    loopback); requests without an Origin (every non-browser client) are not checked for it.
    """
    hosts: list[str] = []
    origins: list[str] = []

    def add(host: str, schemes: tuple[Literal["http", "https"], ...] = ("https",)) -> None:
        host = host.strip().lower().rstrip("/")
        if not host:
            return
        bare = _without_port(host)
        for value in (host, f"{bare}:*", bare):
            if value not in hosts:
                hosts.append(value)
        for scheme in schemes:
            for value in (f"{scheme}://{host}", f"{scheme}://{bare}", f"{scheme}://{bare}:*"):
                if value not in origins:
                    origins.append(value)

    for host in LOOPBACK_HOSTS:
        add(host, ("http", "https"))
    if settings.website_hostname:
        add(settings.website_hostname)
    if settings.public_base_url:
        parts = urlsplit(settings.public_base_url)
        if parts.netloc:
            add(parts.netloc, ("http", "https") if parts.scheme == "http" else ("https",))
    for extra in (settings.mcp_allowed_hosts or "").split(","):
        add(extra)
    return hosts, origins


def _without_port(host: str) -> str:
    if host.startswith("["):  # an IPv6 literal: [::1] or [::1]:7071
        return host.split("]", 1)[0] + "]"
    return host.split(":", 1)[0]
