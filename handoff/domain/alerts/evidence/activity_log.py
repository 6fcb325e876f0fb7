"""Evidence of activity log alerts: the event itself, and what its category (policy, autoscale,
security, any other) adds from the event's ``properties``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from handoff.domain.alerts.evidence.items import facts, note
from handoff.domain.alerts.reading import as_text, embedded_json, lookup, name_key


def activity_log_evidence(ctx: Any) -> list[dict[str, Any]]:
    """The event, its category's details, and the event description."""
    properties = lookup(ctx, "properties")
    properties = properties if isinstance(properties, dict) else {}
    category = _CATEGORIES.get(name_key(as_text(lookup(ctx, "eventSource"))), _other_event)
    return [
        _event(ctx),
        *category(properties),
        note("Description", as_text(lookup(ctx, "Activity Log Event Description"))),
    ]


def _event(ctx: Any) -> dict[str, Any]:
    return note(
        "Activity log event",
        facts(
            [
                ("category", lookup(ctx, "eventSource")),
                ("operation", lookup(ctx, "operationName")),
                ("caller", lookup(ctx, "caller")),
                ("status", lookup(ctx, "status")),
                ("sub-status", lookup(ctx, "subStatus")),
                ("level", lookup(ctx, "level")),
                ("correlation id", lookup(ctx, "correlationId")),
                ("event time", lookup(ctx, "eventTimestamp")),
                ("scope", lookup(ctx, "authorization", "scope")),
            ]
        ),
    )


def _policy(properties: dict[str, Any]) -> list[dict[str, Any]]:
    policies = embedded_json(lookup(properties, "policies"))
    lines = []
    for policy in policies if isinstance(policies, list) else []:
        lines.append(
            facts(
                [
                    ("assignment", lookup(policy, "policyAssignmentName")),
                    ("definition", lookup(policy, "policyDefinitionName")),
                    ("effect", lookup(policy, "policyDefinitionEffect")),
                    ("scope", lookup(policy, "policyAssignmentScope")),
                ]
            )
            or ""
        )
    return [
        note("Policies", "; ".join(line for line in lines if line)),
        note(
            "Policy",
            facts(
                [
                    ("compliance check", lookup(properties, "isComplianceCheck")),
                    ("location", lookup(properties, "resourceLocation")),
                ]
            ),
        ),
    ]


def _autoscale(properties: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        note(
            "Autoscale",
            facts(
                [
                    ("description", lookup(properties, "description")),
                    ("resource", lookup(properties, "resourceName")),
                    ("instances before", lookup(properties, "oldInstancesCount")),
                    ("instances after", lookup(properties, "newInstancesCount")),
                    ("last scale action", lookup(properties, "lastScaleActionTime")),
                ]
            ),
        )
    ]


def _security(properties: dict[str, Any]) -> list[dict[str, Any]]:
    steps = embedded_json(lookup(properties, "remediationSteps"))
    return [
        note(
            "Security alert",
            facts(
                [
                    ("threat status", lookup(properties, "threatStatus")),
                    ("category", lookup(properties, "category")),
                    ("compromised entity", lookup(properties, "compromisedEntity")),
                    ("action taken", lookup(properties, "actionTaken")),
                    ("file", lookup(properties, "filePath")),
                    ("protection", lookup(properties, "protectionType")),
                    ("severity", lookup(properties, "severity")),
                    ("remediation", steps),
                ]
            ),
        )
    ]


def _other_event(properties: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        note(
            "Event",
            facts([("message", lookup(properties, "message")), ("entity", lookup(properties, "entity"))]),
        )
    ]


_CATEGORIES: dict[str, Callable[[dict[str, Any]], list[dict[str, Any]]]] = {
    "policy": _policy,
    "autoscale": _autoscale,
    "security": _security,
}
