"""The handoffs the broker starts for alerts: one alert's own, and a target's storm handoff; and the
facts the audit records about each notification."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from handoff.domain.alerts.context import alert_context, storm_context
from handoff.domain.alerts.parsing import Alert, short_resource
from handoff.domain.models import HandoffRequest, SourceRef, TargetRef
from handoff.domain.redaction import redact
from handoff.domain.registry import AlertRoute, AlertStorm

ALERT_SOURCE = "azure-monitor"  # the source agent of every alert handoff (a system source)
MAX_CORRELATION_ID = 512


def alert_handoff(alert: Alert, route: AlertRoute) -> tuple[HandoffRequest, dict[str, Any]]:
    """The request of an alert's own handoff and the details its ``accepted`` event records."""
    request = HandoffRequest(
        source=SourceRef(agent=ALERT_SOURCE),
        target=TargetRef(agent=route.target),
        intent=route.intent,
        context=alert_context(alert, route.name),
        correlation_id=alert.alert_id if len(alert.alert_id) <= MAX_CORRELATION_ID else None,
    )
    details = {
        "alertId": alert.alert_id,
        "alertRule": alert.rule,
        "route": route.name,
        "sharedMemory": list(route.shared_memory),
    }
    return request, details


def storm_handoff(
    first_alert: dict[str, Any], route: AlertRoute, target: str, limits: AlertStorm
) -> tuple[HandoffRequest, dict[str, Any]]:
    """The request of a target's storm handoff (built from the storm's stored first alert, so every
    creator builds the same) and the details its ``accepted`` event records."""
    request = HandoffRequest(
        source=SourceRef(agent=ALERT_SOURCE),
        target=TargetRef(agent=target),
        intent=route.intent,
        context=storm_context(first_alert, target, route.name, limits.threshold, limits.window_seconds),
    )
    details = {"storm": True, "route": route.name, "sharedMemory": list(route.shared_memory)}
    return request, details


def storm_facts(alert: Alert) -> dict[str, Any]:
    """What a storm update lists of an alert beyond :func:`notification_facts`: its name and the last
    segment of its first resource."""
    target = short_resource(alert.target_ids[0]) if alert.target_ids else None
    return {"label": alert.label, "target": redact(target) if target else None}


def notification_facts(alert: Alert, received_at: datetime) -> dict[str, Any]:
    """What the audit records about one notification (no payload bodies, no secrets)."""
    return {
        "alertId": alert.alert_id,
        "monitorCondition": alert.condition,
        "alertRule": alert.rule,
        "severity": alert.severity,
        "monitoringService": alert.monitoring_service,
        "firedDateTime": alert.fired_at,
        "receivedAt": received_at.isoformat(),
    }
