"""The context of an alert's handoff (title, summary, severity, resources, evidence, incident), and the
storm handoff's. Nothing in an alert's ``alertContext`` can make the mapping fail: when a kind-specific
mapping cannot make sense of it, the alert becomes a generic handoff with the raw context attached."""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter, ValidationError

from handoff.domain.alerts.evidence.items import MAX_URL, cap, link, note
from handoff.domain.alerts.evidence.kinds import alert_kind, kind_evidence, raw_context
from handoff.domain.alerts.parsing import MAX_RESOURCES, Alert, portal_url, short_resource
from handoff.domain.alerts.reading import as_text, lookup
from handoff.domain.models import ArmResourceId, HandoffContext

SEVERITIES = ("Sev0", "Sev1", "Sev2", "Sev3", "Sev4")
DEFAULT_SEVERITY = "Sev4"
_ARM_ADAPTER: TypeAdapter[str] = TypeAdapter(ArmResourceId)


def alert_context(alert: Alert, route_name: str) -> HandoffContext:
    """The handoff context for an alert: evidence by kind, or a generic handoff with the raw context."""
    try:
        evidence = kind_evidence(alert)
        return _context(alert, route_name, evidence)
    except (ValidationError, ValueError, TypeError, KeyError, AttributeError, IndexError):
        # A variation the kind mapping does not understand: never an error, a generic handoff instead.
        return _context(
            alert, route_name, [raw_context(alert, "the alert context did not have the expected shape")]
        )


def _context(alert: Alert, route_name: str, evidence: list[dict[str, Any]]) -> HandoffContext:
    severity = alert.severity if alert.severity in SEVERITIES else DEFAULT_SEVERITY
    resources, dropped = _resources(alert)
    evidence = [*evidence, *_common_evidence(alert, dropped)]
    title = alert.label
    if alert.description and alert.description != title:
        title = f"{title}: {alert.description}"
    kind = alert.monitoring_service or "unknown service"
    summary_lines = [
        f"Azure Monitor alert **{alert.label}** fired at {alert.fired_at or 'an unknown time'} "
        f"({kind}, signal {alert.signal_type or 'not given'}, severity "
        f"{alert.severity or f'not given, shown as {DEFAULT_SEVERITY}'}).",
    ]
    if alert.description:
        summary_lines.append(f"Rule description: {alert.description}")
    if alert.target_ids:
        summary_lines.append(f"Affected: {', '.join(short_resource(t) for t in alert.target_ids[:10])}.")
    summary_lines.append(f"Routed by alert route '{route_name}'. Alert id: {alert.alert_id}")
    # An id too long for the incident reference is named by its last segment (or, if that is blank, its
    # key); a portal link longer than a link may be is left out.
    incident_id = alert.alert_id
    if len(incident_id) > 512:
        incident_id = (as_text(short_resource(incident_id)) or alert.key)[:512]
    incident = {"id": incident_id, "platform": "azure-monitor"}
    if len(alert.portal_url) <= MAX_URL:
        incident["url"] = alert.portal_url
    return HandoffContext.model_validate(
        {
            "title": cap(title, 300),
            "summary": cap("\n".join(summary_lines), 60_000),
            "severity": severity,
            "resources": resources,
            "evidence": evidence[:100],
            "incident": incident,
        }
    )


def storm_context(
    first: dict[str, Any], target: str, route_name: str, threshold: int, window: int
) -> HandoffContext:
    """The storm handoff's context, built from the stored first alert so every creator builds the same."""
    severity = first.get("severity") if first.get("severity") in SEVERITIES else DEFAULT_SEVERITY
    resources = [t for t in first.get("targets", []) if _valid_arm(t)][:MAX_RESOURCES]
    first_link = link("First alert in the Azure portal", portal_url(str(first.get("alertId"))))
    return HandoffContext.model_validate(
        {
            "title": cap(f"Alert storm: more than {threshold} alerts for {target} within {window} s", 300),
            "summary": (
                f"More than {threshold} Azure Monitor alerts were routed to {target} within {window} seconds "
                f"(alert route '{route_name}'). Instead of one thread per alert, further distinct alerts "
                "join this handoff; this thread gets updates listing them. The first alert of the storm was "
                f"**{first.get('rule')}** ({first.get('severity') or 'no severity'}), fired "
                f"{first.get('firedAt') or 'at an unknown time'}, alert id {first.get('alertId')}."
            ),
            "severity": severity,
            "resources": resources,
            "evidence": [item for item in [first_link] if item],
            "hypotheses": [
                "Many alerts at once often share one cause (a deployment, a dependency, a region)."
            ],
        }
    )


def _valid_arm(value: str) -> bool:
    try:
        _ARM_ADAPTER.validate_python(value)
    except ValidationError:
        return False
    return True


def _resources(alert: Alert) -> tuple[list[str], list[str]]:
    """Valid ARM IDs among the targets (plus a budget's scope); the rest are reported, not refused."""
    candidates = list(alert.target_ids)
    if not candidates and alert_kind(alert) == "budget":
        scope = as_text(lookup(alert.context, "AlertData", "Scope"))
        candidates = [scope] if scope else []
    kept: list[str] = []
    dropped: list[str] = []
    for target in candidates:
        (kept if _valid_arm(target) and target not in kept else dropped).append(target)
    return kept[:MAX_RESOURCES], dropped + kept[MAX_RESOURCES:]


def _common_evidence(alert: Alert, dropped: list[str]) -> list[dict[str, Any]]:
    items = [link("Alert in the Azure portal", alert.portal_url)]
    if dropped:
        items.append(note("Targets that are not Azure resource IDs", ", ".join(dropped)))
    if alert.custom_properties:
        props = ", ".join(f"{k}={as_text(v) or json.dumps(v)}" for k, v in alert.custom_properties.items())
        items.append(note("Custom properties", props))
    if alert.configuration_items:
        items.append(note("Configuration items", ", ".join(alert.configuration_items)))
    return [item for item in items if item]
