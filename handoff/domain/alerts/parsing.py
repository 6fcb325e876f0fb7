"""Parsing of a webhook body in the common alert schema into an :class:`Alert`; anything else is a 400
that says how to enable the schema."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from handoff.domain.alerts.reading import MAX_ALERT_BYTES, as_text, as_texts, lookup
from handoff.domain.errors import BadRequest, FieldError
from handoff.domain.intake import InvalidJson, load_json
from handoff.domain.redaction import redact

COMMON_SCHEMA_ID = "azureMonitorCommonAlertSchema"
MAX_RESOURCES = 100  # the most resources a handoff keeps (models.HandoffContext.resources)
PORTAL_ALERT_URL = (
    "https://portal.azure.com/#view/Microsoft_Azure_Monitoring_Alerts/AlertDetails.ReactView/alertId~/"
)
ENABLE_SCHEMA_HINT = (
    "enable the common alert schema on the action group's webhook action "
    "(portal: Action group > Actions > Webhook > 'Enable the common alert schema': Yes; "
    "CLI: usecommonalertschema)"
)

Condition = Literal["Fired", "Resolved"]
_CONDITIONS: dict[str, Condition] = {"fired": "Fired", "resolved": "Resolved"}


@dataclass(frozen=True)
class Alert:
    """One alert notification in the common alert schema, normalised."""

    alert_id: str
    condition: Condition
    rule: str | None
    severity: str | None
    signal_type: str | None
    monitoring_service: str | None
    target_ids: tuple[str, ...]
    configuration_items: tuple[str, ...]
    description: str
    fired_at: str | None
    resolved_at: str | None
    origin_alert_id: str | None
    custom_properties: dict[str, Any]
    context: Any
    essentials: dict[str, Any] = field(repr=False)

    @property
    def key(self) -> str:
        """Storage key of the alert: alert ids are ARM IDs, so they compare case-insensitively."""
        return alert_key(self.alert_id)

    @property
    def portal_url(self) -> str:
        """The alert in the Azure portal."""
        return portal_url(self.alert_id)

    @property
    def label(self) -> str:
        """How the alert is named in messages: its rule, else its service."""
        return (
            self.rule
            or _said(lookup(self.context, "AlertData", "BudgetName"))
            or self.monitoring_service
            or "alert"
        )


def alert_key(alert_id: str) -> str:
    """A fixed-length, storage-safe key for an alert id (case-insensitive)."""
    return hashlib.sha256(alert_id.strip().lower().encode()).hexdigest()[:40]


def parse_alert(body: bytes) -> Alert:
    """Parse a webhook body: 400 unless it is a common-schema alert, saying how to enable the schema."""
    try:
        data = load_json(body, limit_bytes=MAX_ALERT_BYTES, what="alert body", invalid=BadRequest)
    except InvalidJson:
        raise _not_common("the body is not JSON", "/") from None
    if not isinstance(data, dict):
        raise _not_common("the body is not a JSON object", "/")
    schema_id = data.get("schemaId")
    if schema_id != COMMON_SCHEMA_ID:
        found = f"schemaId is {json.dumps(schema_id)[:100]}" if "schemaId" in data else "schemaId is missing"
        raise _not_common(f"{found}, expected {COMMON_SCHEMA_ID!r}", "/schemaId")
    payload = data.get("data")
    essentials = payload.get("essentials") if isinstance(payload, dict) else None
    if not isinstance(essentials, dict):
        raise _not_common("data.essentials is missing", "/data/essentials")
    alert_id = essentials.get("alertId")
    if not isinstance(alert_id, str) or not alert_id.strip():
        raise _bad_field("/data/essentials/alertId", "must be the alert's id (a non-empty string)")
    condition = as_text(essentials.get("monitorCondition"))
    normalized = _CONDITIONS.get((condition or "").lower())
    if normalized is None:
        raise _bad_field("/data/essentials/monitorCondition", "must be 'Fired' or 'Resolved'")
    custom = payload.get("customProperties") if isinstance(payload, dict) else None
    return Alert(
        alert_id=redact(alert_id.strip()),
        condition=normalized,
        rule=_said(essentials.get("alertRule")),
        severity=_said(essentials.get("severity")),
        signal_type=_said(essentials.get("signalType")),
        monitoring_service=_said(essentials.get("monitoringService")),
        target_ids=as_texts(essentials.get("alertTargetIDs")),
        configuration_items=as_texts(essentials.get("configurationItems")),
        description=as_text(essentials.get("description")) or "",
        fired_at=_said(essentials.get("firedDateTime")),
        resolved_at=_said(essentials.get("resolvedDateTime")),
        origin_alert_id=_said(essentials.get("originAlertId")),
        custom_properties=dict(custom) if isinstance(custom, dict) else {},
        context=payload.get("alertContext") if isinstance(payload, dict) else None,
        essentials=essentials,
    )


def _said(value: Any) -> str | None:
    """A scalar the sender wrote, as text with its secrets redacted: the alert's own fields are stored
    on its row, audited and posted in notes, not only in the handoff (which is redacted at intake)."""
    text = as_text(value)
    return redact(text) if text else None


def _not_common(why: str, pointer: str) -> BadRequest:
    return BadRequest(
        f"not a common alert schema payload ({why}): {ENABLE_SCHEMA_HINT}",
        errors=[FieldError(field=pointer, message=f"{why}; {ENABLE_SCHEMA_HINT}")],
    )


def _bad_field(pointer: str, message: str) -> BadRequest:
    return BadRequest(f"{pointer}: {message}", errors=[FieldError(field=pointer, message=message)])


def portal_url(alert_id: str) -> str:
    """The alert in the Azure portal."""
    return PORTAL_ALERT_URL + quote(alert_id, safe="")


def short_resource(resource_id: str) -> str:
    """The last segment of a resource ID (for one-line summaries)."""
    parts = [part for part in resource_id.split("/") if part]
    return parts[-1] if parts else resource_id
