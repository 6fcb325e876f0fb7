"""Which kind of alert a notification is, and the kind-specific evidence mapping it gets (or the raw
``alertContext`` when no mapping applies)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from handoff.domain.alerts.evidence.activity_log import activity_log_evidence
from handoff.domain.alerts.evidence.health import resource_health_evidence, service_health_evidence
from handoff.domain.alerts.evidence.items import cap
from handoff.domain.alerts.evidence.logs import log_search_v1_evidence, log_search_v2_evidence
from handoff.domain.alerts.evidence.metrics import metric_evidence
from handoff.domain.alerts.evidence.other_services import (
    budget_evidence,
    prometheus_evidence,
    smart_detection_evidence,
)
from handoff.domain.alerts.parsing import Alert
from handoff.domain.alerts.reading import as_text, lookup, name_key

RAW_CONTEXT_CAP = 16 * 1024  # characters of raw alertContext JSON kept as evidence

Mapping = Callable[[Any], list[dict[str, Any]]]
MAPPINGS: dict[str, Mapping] = {
    "metric": metric_evidence,
    "logSearchV1": log_search_v1_evidence,
    "logSearchV2": log_search_v2_evidence,
    "activityLog": activity_log_evidence,
    "serviceHealth": service_health_evidence,
    "resourceHealth": resource_health_evidence,
    "prometheus": prometheus_evidence,
    "smartDetection": smart_detection_evidence,
    "budget": budget_evidence,
}
_METRIC_CONDITIONS = (
    "singleresourcemultiplemetriccriteria",
    "multipleresourcemultiplemetriccriteria",
    "dynamicthresholdcriteria",
    "webtestlocationavailabilitycriteria",
)


def alert_kind(alert: Alert) -> str:
    """What kind of alert this is, from ``monitoringService`` and the shape of ``alertContext``."""
    service = name_key(alert.monitoring_service)
    ctx = alert.context if isinstance(alert.context, dict) else {}
    condition_type = name_key(as_text(lookup(ctx, "conditionType")))
    source = name_key(as_text(lookup(ctx, "eventSource")))
    if service == "costalerts" or lookup(ctx, "AlertData", "BudgetName") is not None:
        return "budget"
    if service == "smartdetector" or lookup(ctx, "SmartDetectorId") is not None:
        return "smartDetection"
    if service == "servicehealth" or source in ("servicehealth", "2"):
        return "serviceHealth"
    if service == "resourcehealth" or source == "resourcehealth":
        return "resourceHealth"
    if lookup(ctx, "expression") is not None and lookup(ctx, "labels") is not None:
        return "prometheus"
    if condition_type == "logquerycriteria":
        return "logSearchV2"
    if lookup(ctx, "SearchQuery") is not None:
        return "logSearchV1"
    if condition_type in _METRIC_CONDITIONS:
        return "metric"
    if service.startswith("activitylog") or lookup(ctx, "operationName") is not None:
        return "activityLog"
    return "unknown"


def kind_evidence(alert: Alert) -> list[dict[str, Any]]:
    """The evidence the alert's kind maps, or its raw context when the kind has no mapping or the
    mapping found none of its fields."""
    mapping = MAPPINGS.get(alert_kind(alert))
    if mapping is None:
        return [raw_context(alert, f"monitoringService '{alert.monitoring_service}' has no specific mapping")]
    items = [item for item in mapping(alert.context) if item]
    return items or [raw_context(alert, "the alert context held none of the expected fields")]


def raw_context(alert: Alert, why: str) -> dict[str, Any]:
    """The raw alertContext as ``data`` evidence, cut to :data:`RAW_CONTEXT_CAP` characters of JSON."""
    value = alert.context if isinstance(alert.context, dict) else {"alertContext": alert.context}
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > RAW_CONTEXT_CAP:
        value = {"truncated": True, "originalCharacters": len(text), "preview": text[:RAW_CONTEXT_CAP]}
    return {"kind": "data", "title": cap(f"Alert context ({why})", 500), "data": value}
