"""Azure Monitor alerts (common alert schema): parsing, routing rules, handoff context, storms, notes.

Pure functions: no storage, no SDK. :mod:`handoff.services.alerts` runs them against storage and the
queue. Payloads are read leniently (the documented samples disagree on types, casing and which keys
exist), and nothing in an alert's ``alertContext`` can make the mapping fail: when a kind-specific
mapping cannot make sense of it, the alert becomes a generic handoff with the raw context attached.
"""

from __future__ import annotations

import fnmatch
import hashlib
import html
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, TypeAdapter, ValidationError

from handoff.domain.errors import BadRequest, FieldError, Problem
from handoff.domain.intake import InvalidJson, load_json
from handoff.domain.messages import marker
from handoff.domain.models import ArmResourceId, HandoffContext
from handoff.domain.registry import AlertMatch, AlertRoute

COMMON_SCHEMA_ID = "azureMonitorCommonAlertSchema"
MAX_ALERT_BYTES = 1024 * 1024  # Azure Monitor caps a common-schema alert at 256 KB; leave room
RAW_CONTEXT_CAP = 16 * 1024  # characters of raw alertContext JSON kept as evidence
MAX_RESULT_ROWS = 500
MAX_RESOURCES = 100
MAX_URL = 4096  # the longest link a handoff keeps (models.HttpUrl)
PORTAL_ALERT_URL = (
    "https://portal.azure.com/#view/Microsoft_Azure_Monitoring_Alerts/AlertDetails.ReactView/alertId~/"
)
SEVERITIES = ("Sev0", "Sev1", "Sev2", "Sev3", "Sev4")
DEFAULT_SEVERITY = "Sev4"
ENABLE_SCHEMA_HINT = (
    "enable the common alert schema on the action group's webhook action "
    "(portal: Action group > Actions > Webhook > 'Enable the common alert schema': Yes; "
    "CLI: usecommonalertschema)"
)
_ARM_ADAPTER: TypeAdapter[str] = TypeAdapter(ArmResourceId)

Condition = Literal["Fired", "Resolved"]


# ---------------------------------------------------------------- parsing


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
        return PORTAL_ALERT_URL + quote(self.alert_id, safe="")

    @property
    def label(self) -> str:
        """How the alert is named in messages: its rule, else its service."""
        return (
            self.rule
            or _text(_get(self.context, "AlertData", "BudgetName"))
            or self.monitoring_service
            or "alert"
        )

    def summary_line(self) -> str:
        """One line for lists (storm updates)."""
        where = f" on {short_resource(self.target_ids[0])}" if self.target_ids else ""
        sev = f"{self.severity} " if self.severity else ""
        fired = self.fired_at or "at an unknown time"
        return f"{sev}**{self.label}**{where} (fired {fired}; alert {self.alert_id})"


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
    condition = _text(essentials.get("monitorCondition"))
    normalized = {"fired": "Fired", "resolved": "Resolved"}.get((condition or "").lower())
    if normalized is None:
        raise _bad_field("/data/essentials/monitorCondition", "must be 'Fired' or 'Resolved'")
    custom = payload.get("customProperties") if isinstance(payload, dict) else None
    return Alert(
        alert_id=alert_id.strip(),
        condition=normalized,  # type: ignore[arg-type]
        rule=_text(essentials.get("alertRule")),
        severity=_text(essentials.get("severity")),
        signal_type=_text(essentials.get("signalType")),
        monitoring_service=_text(essentials.get("monitoringService")),
        target_ids=_strings(essentials.get("alertTargetIDs")),
        configuration_items=_strings(essentials.get("configurationItems")),
        description=_text(essentials.get("description")) or "",
        fired_at=_text(essentials.get("firedDateTime")),
        resolved_at=_text(essentials.get("resolvedDateTime")),
        origin_alert_id=_text(essentials.get("originAlertId")),
        custom_properties=dict(custom) if isinstance(custom, dict) else {},
        context=payload.get("alertContext") if isinstance(payload, dict) else None,
        essentials=essentials,
    )


def _not_common(why: str, pointer: str) -> BadRequest:
    return BadRequest(
        f"not a common alert schema payload ({why}): {ENABLE_SCHEMA_HINT}",
        errors=[FieldError(field=pointer, message=f"{why}; {ENABLE_SCHEMA_HINT}")],
    )


def _bad_field(pointer: str, message: str) -> BadRequest:
    return BadRequest(f"{pointer}: {message}", errors=[FieldError(field=pointer, message=message)])


def _text(value: Any) -> str | None:
    """A scalar as trimmed text (numbers included); None for null, empty, lists and objects."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, str | int | float):
        text = str(value).strip()
        return text or None
    return None


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ()
    return tuple(text for text in (_text(item) for item in value) if text)


def _get(value: Any, *path: str) -> Any:
    """``value[path[0]][path[1]]...`` with keys compared case-insensitively; None when absent."""
    for key in path:
        if not isinstance(value, dict):
            return None
        if key in value:
            value = value[key]
            continue
        lowered = key.lower()
        value = next((v for k, v in value.items() if isinstance(k, str) and k.lower() == lowered), None)
    return value


def _json_value(value: Any) -> Any:
    """Fields the samples carry as JSON-encoded strings (claims, policies, impactedServices)."""
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return load_json(value, limit_bytes=MAX_ALERT_BYTES, what="embedded JSON")
        except Problem:
            return value
    return value


# ---------------------------------------------------------------- routing


def _segments(resource_id: str) -> list[str]:
    return [part.lower() for part in resource_id.strip().split("/") if part]


def resource_type(resource_id: str) -> str | None:
    """``namespace/type[/subtype]`` of an ARM ID (after its last ``providers`` segment), lowercase."""
    parts = _segments(resource_id)
    indexes = [i for i, part in enumerate(parts) if part == "providers"]
    if not indexes:
        return None
    after = parts[indexes[-1] + 1 :]
    if len(after) < 2:
        return None
    return "/".join([after[0], *after[1::2]])


def short_resource(resource_id: str) -> str:
    """The last segment of a resource ID (for one-line summaries)."""
    parts = [part for part in resource_id.split("/") if part]
    return parts[-1] if parts else resource_id


def _norm(value: str | None) -> str:
    # "Activity Log" and "ActivityLog" both occur in the samples: compare without spaces or case.
    return re.sub(r"[\s_-]", "", value or "").lower()


def route_matches(match: AlertMatch, alert: Alert) -> bool:
    """Whether every condition of ``match`` holds for ``alert`` (an empty match always holds)."""
    if match.resource_id_prefix is not None:
        prefix = _segments(match.resource_id_prefix)
        if not any(_segments(target)[: len(prefix)] == prefix for target in alert.target_ids):
            return False
    if match.resource_type is not None:
        wanted = match.resource_type.lower().strip("/")
        if not any(resource_type(target) == wanted for target in alert.target_ids):
            return False
    if match.alert_rule is not None and not (
        alert.rule and fnmatch.fnmatchcase(alert.rule.lower(), match.alert_rule.lower())
    ):
        return False
    if match.severity is not None and (alert.severity or "").lower() not in {
        s.lower() for s in match.severity
    }:
        return False
    if match.signal_type is not None and _norm(alert.signal_type) != _norm(match.signal_type):
        return False
    if match.monitoring_service is not None and _norm(alert.monitoring_service) != _norm(
        match.monitoring_service
    ):
        return False
    if match.custom_properties is not None:
        for key, value in match.custom_properties.items():
            have = alert.custom_properties.get(key)
            if have is None or _text(have) != value:
                return False
    return True


def select_route(routes: list[AlertRoute], alert: Alert) -> AlertRoute | None:
    """The first route whose match holds, or None."""
    return next((route for route in routes if route_matches(route.match, alert)), None)


# ---------------------------------------------------------------- storms


class StormState(BaseModel):
    """Per target agent: when recent alert handoffs were created, and the storm handoff if one is open."""

    recent: list[datetime] = []
    storm_id: str | None = None
    storm_started_at: datetime | None = None
    storm_last_at: datetime | None = None
    storm_alerts: int = 0
    first_alert: dict[str, Any] | None = None


StormDecision = Literal["own", "stormStart", "stormJoin"]


def decide_storm(
    state: StormState | None,
    now: datetime,
    threshold: int,
    window_seconds: int,
    new_storm_id: str,
    first: Alert,
) -> tuple[StormState, StormDecision, str | None]:
    """Whether a new distinct alert gets its own handoff or joins (or starts) the target's storm handoff.

    Up to ``threshold`` new handoffs within ``window_seconds`` each get their own; the next starts a
    storm handoff that every further distinct alert joins while alerts keep arriving within the window.
    Returns the new state, the decision and the storm handoff id (None for ``own``).
    """
    state = state.model_copy(deep=True) if state else StormState()
    cutoff = now.timestamp() - window_seconds
    state.recent = [at for at in state.recent if at.timestamp() > cutoff]
    if state.storm_id and state.storm_last_at and state.storm_last_at.timestamp() > cutoff:
        state.storm_last_at = now
        state.storm_alerts += 1
        return state, "stormJoin", state.storm_id
    if len(state.recent) < threshold:
        state.recent.append(now)
        state.storm_id = None
        return state, "own", None
    state.storm_id = new_storm_id
    state.storm_started_at = state.storm_last_at = now
    state.storm_alerts = 1
    state.first_alert = {
        "alertId": first.alert_id,
        "rule": first.label,
        "severity": first.severity,
        "firedAt": first.fired_at,
        "targets": list(first.target_ids[:MAX_RESOURCES]),
    }
    return state, "stormStart", new_storm_id


# ---------------------------------------------------------------- context


def alert_context(alert: Alert, route_name: str) -> HandoffContext:
    """The handoff context for an alert: evidence by kind, or a generic handoff with the raw context."""
    try:
        evidence = _kind_evidence(alert)
        return _context(alert, route_name, evidence)
    except (ValidationError, ValueError, TypeError, KeyError, AttributeError, IndexError):
        # A variation the kind mapping does not understand: never an error, a generic handoff instead.
        return _context(
            alert, route_name, [_raw_context(alert, "the alert context did not have the expected shape")]
        )


def alert_kind(alert: Alert) -> str:
    """What kind of alert this is, from ``monitoringService`` and the shape of ``alertContext``."""
    service = _norm(alert.monitoring_service)
    ctx = alert.context if isinstance(alert.context, dict) else {}
    condition_type = _norm(_text(_get(ctx, "conditionType")))
    source = _norm(_text(_get(ctx, "eventSource")))
    if service == "costalerts" or _get(ctx, "AlertData", "BudgetName") is not None:
        return "budget"
    if service == "smartdetector" or _get(ctx, "SmartDetectorId") is not None:
        return "smartDetection"
    if service == "servicehealth" or source in ("servicehealth", "2"):
        return "serviceHealth"
    if service == "resourcehealth" or source == "resourcehealth":
        return "resourceHealth"
    if _get(ctx, "expression") is not None and _get(ctx, "labels") is not None:
        return "prometheus"
    if condition_type == "logquerycriteria":
        return "logSearchV2"
    if _get(ctx, "SearchQuery") is not None:
        return "logSearchV1"
    if condition_type in (
        "singleresourcemultiplemetriccriteria",
        "multipleresourcemultiplemetriccriteria",
        "dynamicthresholdcriteria",
        "webtestlocationavailabilitycriteria",
    ):
        return "metric"
    if service.startswith("activitylog") or _get(ctx, "operationName") is not None:
        return "activityLog"
    return "unknown"


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
        incident_id = (_text(short_resource(incident_id)) or alert.key)[:512]
    incident = {"id": incident_id, "platform": "azure-monitor"}
    if len(alert.portal_url) <= MAX_URL:
        incident["url"] = alert.portal_url
    return HandoffContext.model_validate(
        {
            "title": _cap(title, 300),
            "summary": _cap("\n".join(summary_lines), 60_000),
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
    first_link = _link(
        "First alert in the Azure portal", PORTAL_ALERT_URL + quote(str(first.get("alertId")), safe="")
    )
    return HandoffContext.model_validate(
        {
            "title": _cap(f"Alert storm: more than {threshold} alerts for {target} within {window} s", 300),
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
        scope = _text(_get(alert.context, "AlertData", "Scope"))
        candidates = [scope] if scope else []
    kept: list[str] = []
    dropped: list[str] = []
    for target in candidates:
        (kept if _valid_arm(target) and target not in kept else dropped).append(target)
    return kept[:MAX_RESOURCES], dropped + kept[MAX_RESOURCES:]


def _common_evidence(alert: Alert, dropped: list[str]) -> list[dict[str, Any]]:
    items = [_link("Alert in the Azure portal", alert.portal_url)]
    if dropped:
        items.append(_note("Targets that are not Azure resource IDs", ", ".join(dropped)))
    if alert.custom_properties:
        props = ", ".join(f"{k}={_text(v) or json.dumps(v)}" for k, v in alert.custom_properties.items())
        items.append(_note("Custom properties", props))
    if alert.configuration_items:
        items.append(_note("Configuration items", ", ".join(alert.configuration_items)))
    return [item for item in items if item]


def _note(title: str, content: str | None) -> dict[str, Any]:
    return (
        {"kind": "note", "title": _cap(title, 500), "content": _cap(content or "", 60_000)} if content else {}
    )


def _link(title: str, url: Any) -> dict[str, Any]:
    text = _text(url)
    if not text or not re.match(r"^https?://[^\s/]+", text) or len(text) > MAX_URL:
        return {}
    return {"kind": "link", "title": title, "url": text}


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _facts(pairs: list[tuple[str, Any]]) -> str | None:
    """``label: value`` pairs joined with `` · `` (pairs without a value are left out)."""
    parts = []
    for label, value in pairs:
        text = _text(value) if not isinstance(value, list | dict) else json.dumps(value, ensure_ascii=False)
        if text:
            parts.append(f"{label}: {text}")
    return " · ".join(parts) or None


def _kind_evidence(alert: Alert) -> list[dict[str, Any]]:
    kind = alert_kind(alert)
    ctx = alert.context
    builder = {
        "metric": _metric,
        "logSearchV1": _log_v1,
        "logSearchV2": _log_v2,
        "activityLog": _activity_log,
        "serviceHealth": _service_health,
        "resourceHealth": _resource_health,
        "prometheus": _prometheus,
        "smartDetection": _smart_detection,
        "budget": _budget,
    }.get(kind)
    if builder is None:
        return [
            _raw_context(alert, f"monitoringService '{alert.monitoring_service}' has no specific mapping")
        ]
    items = [item for item in builder(ctx) if item]
    return items or [_raw_context(alert, "the alert context held none of the expected fields")]


def _raw_context(alert: Alert, why: str) -> dict[str, Any]:
    """The raw alertContext as ``data`` evidence, cut to :data:`RAW_CONTEXT_CAP` characters of JSON."""
    value = alert.context if isinstance(alert.context, dict) else {"alertContext": alert.context}
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > RAW_CONTEXT_CAP:
        value = {"truncated": True, "originalCharacters": len(text), "preview": text[:RAW_CONTEXT_CAP]}
    return {"kind": "data", "title": _cap(f"Alert context ({why})", 500), "data": value}


def _dimensions(value: Any) -> str | None:
    if not isinstance(value, list):
        return None
    pairs = [f"{_text(_get(d, 'name'))}={_text(_get(d, 'value'))}" for d in value if isinstance(d, dict)]
    return ", ".join(pairs) or None


def _window(ctx: Any) -> str | None:
    condition = _get(ctx, "condition")
    start, end = _text(_get(condition, "windowStartTime")), _text(_get(condition, "windowEndTime"))
    size = _text(_get(condition, "windowSize"))
    parts = [f"window size {size}" if size else "", f"{start} to {end}" if start or end else ""]
    return ", ".join(p for p in parts if p) or None


def _metric(ctx: Any) -> list[dict[str, Any]]:
    condition_type = _text(_get(ctx, "conditionType"))
    items = [_note("Condition", _facts([("type", condition_type), ("window", _window(ctx))]))]
    for criterion in _get(ctx, "condition", "allOf") or []:
        if not isinstance(criterion, dict):
            continue
        failing = _get(criterion, "failingPeriods")
        periods = None
        if isinstance(failing, dict):
            periods = (
                f"{_text(_get(failing, 'minFailingPeriodsToAlert'))} of "
                f"{_text(_get(failing, 'numberOfEvaluationPeriods'))} periods"
            )
        name = _text(_get(criterion, "metricName")) or "metric"
        items.append(
            _note(
                f"Metric {name}",
                _facts(
                    [
                        ("metric", name),
                        ("namespace", _get(criterion, "metricNamespace")),
                        ("aggregation", _get(criterion, "timeAggregation")),
                        ("operator", _get(criterion, "operator")),
                        ("threshold", _get(criterion, "threshold")),
                        ("observed value", _get(criterion, "metricValue")),
                        ("dimensions", _dimensions(_get(criterion, "dimensions"))),
                        ("sensitivity", _get(criterion, "alertSensitivity")),
                        ("failing periods", periods),
                        ("ignore data before", _get(criterion, "ignoreDataBefore")),
                        ("availability test", _get(criterion, "webTestName")),
                    ]
                ),
            )
        )
    properties = _get(ctx, "properties")
    if isinstance(properties, dict) and properties:
        items.append(_note("Rule properties", _facts([(str(k), v) for k, v in properties.items()])))
    return items


def _search_tables(results: Any, query: str) -> list[dict[str, Any]]:
    """Included search results as KQL evidence tables (rows cut to :data:`MAX_RESULT_ROWS`)."""
    items = []
    for index, table in enumerate(_get(results, "tables") or []):
        if not isinstance(table, dict):
            continue
        raw_columns = _get(table, "columns") or []
        columns = [
            _cap(_text(_get(c, "name") if isinstance(c, dict) else c) or f"column{n + 1}", 500)
            for n, c in enumerate(raw_columns[:200])
        ]
        rows = [r for r in (_get(table, "rows") or []) if isinstance(r, list)]
        width = len(columns)
        fitted = [(row + [None] * width)[:width] for row in rows[:MAX_RESULT_ROWS]]
        name = _text(_get(table, "name")) or f"table {index + 1}"
        evidence: dict[str, Any] = {
            "kind": "kql",
            "title": f"Search results ({name})",
            "query": query or "(query not included in the alert)",
            "columns": columns,
            "rows": fitted,
        }
        if len(rows) > MAX_RESULT_ROWS:
            evidence["truncatedRows"] = len(rows) - MAX_RESULT_ROWS
        items.append(evidence)
    return items


def _log_v1(ctx: Any) -> list[dict[str, Any]]:
    query = _text(_get(ctx, "SearchQuery")) or ""
    end = _get(ctx, "SearchIntervalEndtimeUtc") or _get(ctx, "SearchIntervalEndTimeUtc")
    items = [
        _note("Log search query", query),
        _note(
            "Log search",
            _facts(
                [
                    ("alert type", _get(ctx, "AlertType")),
                    ("time window", f"{_text(_get(ctx, 'SearchIntervalStartTimeUtc'))} to {_text(end)}"),
                    ("interval (minutes)", _get(ctx, "SearchIntervalInMinutes")),
                    ("result count", _get(ctx, "ResultCount")),
                    ("operator", _get(ctx, "Operator")),
                    ("threshold", _get(ctx, "Threshold")),
                    ("dimensions", _dimensions(_get(ctx, "Dimensions"))),
                    ("workspace", _get(ctx, "WorkspaceId")),
                    ("application", _get(ctx, "ApplicationId")),
                ]
            ),
        ),
        _link("Search results", _get(ctx, "LinkToSearchResults")),
        _link("Filtered search results", _get(ctx, "LinkToFilteredSearchResultsUI")),
    ]
    included = _text(_get(ctx, "IncludedSearchResults"))
    tables = _search_tables(_get(ctx, "SearchResults"), query)
    if tables:
        items.extend(tables)
    elif (included or "").lower() != "true":
        items.append(
            _note("Search results", "not included in the alert (too large or not requested); use the links")
        )
    return items


def _log_v2(ctx: Any) -> list[dict[str, Any]]:
    items = [_note("Condition", _facts([("type", _get(ctx, "conditionType")), ("window", _window(ctx))]))]
    for criterion in _get(ctx, "condition", "allOf") or []:
        if not isinstance(criterion, dict):
            continue
        query = _text(_get(criterion, "searchQuery")) or ""
        failing = _get(criterion, "failingPeriods")
        periods = None
        if isinstance(failing, dict):
            periods = (
                f"{_text(_get(failing, 'minFailingPeriodsToAlert'))} of "
                f"{_text(_get(failing, 'numberOfEvaluationPeriods'))} periods"
            )
        items.append(_note("Log search query", query))
        items.append(
            _note(
                "Log search",
                _facts(
                    [
                        ("aggregation", _get(criterion, "timeAggregation")),
                        ("measure column", _get(criterion, "metricMeasureColumn")),
                        ("operator", _get(criterion, "operator")),
                        ("threshold", _get(criterion, "threshold")),
                        ("observed value", _get(criterion, "metricValue")),
                        ("dimensions", _dimensions(_get(criterion, "dimensions"))),
                        ("failing periods", periods),
                        ("resource types", _get(criterion, "targetResourceTypes")),
                    ]
                ),
            )
        )
        items.append(_link("Search results", _get(criterion, "linkToSearchResultsUI")))
        items.append(_link("Filtered search results", _get(criterion, "linkToFilteredSearchResultsUI")))
        events = _get(criterion, "event")
        if isinstance(events, list) and events:
            items.extend(_event_table(events, query))
    return items


def _event_table(events: list[Any], query: str) -> list[dict[str, Any]]:
    """ "Simple log alert" events: each a list of ``{name, value}`` pairs, as one KQL table."""
    columns: list[str] = []
    records = []
    for event in events[:MAX_RESULT_ROWS]:
        pairs = event if isinstance(event, list) else []
        record = {}
        for pair in pairs:
            name = _text(_get(pair, "name"))
            if name:
                record[name] = _get(pair, "value")
                if name not in columns:
                    columns.append(name)
        records.append(record)
    if not columns:
        return []
    columns = columns[:200]
    rows = [[record.get(c) for c in columns] for record in records]
    return [
        {
            "kind": "kql",
            "title": "Search results (events)",
            "query": query or "(query not included)",
            "columns": [_cap(c, 500) for c in columns],
            "rows": rows,
        }
    ]


def _activity_log(ctx: Any) -> list[dict[str, Any]]:
    properties = _get(ctx, "properties")
    properties = properties if isinstance(properties, dict) else {}
    items = [
        _note(
            "Activity log event",
            _facts(
                [
                    ("category", _get(ctx, "eventSource")),
                    ("operation", _get(ctx, "operationName")),
                    ("caller", _get(ctx, "caller")),
                    ("status", _get(ctx, "status")),
                    ("sub-status", _get(ctx, "subStatus")),
                    ("level", _get(ctx, "level")),
                    ("correlation id", _get(ctx, "correlationId")),
                    ("event time", _get(ctx, "eventTimestamp")),
                    ("scope", _get(ctx, "authorization", "scope")),
                ]
            ),
        )
    ]
    source = _norm(_text(_get(ctx, "eventSource")))
    if source == "policy":
        policies = _json_value(_get(properties, "policies"))
        lines = []
        for policy in policies if isinstance(policies, list) else []:
            lines.append(
                _facts(
                    [
                        ("assignment", _get(policy, "policyAssignmentName")),
                        ("definition", _get(policy, "policyDefinitionName")),
                        ("effect", _get(policy, "policyDefinitionEffect")),
                        ("scope", _get(policy, "policyAssignmentScope")),
                    ]
                )
                or ""
            )
        items.append(_note("Policies", "; ".join(line for line in lines if line)))
        items.append(
            _note(
                "Policy",
                _facts(
                    [
                        ("compliance check", _get(properties, "isComplianceCheck")),
                        ("location", _get(properties, "resourceLocation")),
                    ]
                ),
            )
        )
    elif source == "autoscale":
        items.append(
            _note(
                "Autoscale",
                _facts(
                    [
                        ("description", _get(properties, "description")),
                        ("resource", _get(properties, "resourceName")),
                        ("instances before", _get(properties, "oldInstancesCount")),
                        ("instances after", _get(properties, "newInstancesCount")),
                        ("last scale action", _get(properties, "lastScaleActionTime")),
                    ]
                ),
            )
        )
    elif source == "security":
        steps = _json_value(_get(properties, "remediationSteps"))
        items.append(
            _note(
                "Security alert",
                _facts(
                    [
                        ("threat status", _get(properties, "threatStatus")),
                        ("category", _get(properties, "category")),
                        ("compromised entity", _get(properties, "compromisedEntity")),
                        ("action taken", _get(properties, "actionTaken")),
                        ("file", _get(properties, "filePath")),
                        ("protection", _get(properties, "protectionType")),
                        ("severity", _get(properties, "severity")),
                        ("remediation", steps),
                    ]
                ),
            )
        )
    else:
        items.append(
            _note(
                "Event",
                _facts([("message", _get(properties, "message")), ("entity", _get(properties, "entity"))]),
            )
        )
    items.append(_note("Description", _text(_get(ctx, "Activity Log Event Description"))))
    return items


def _plain(text: str | None) -> str | None:
    """HTML communication text as plain text."""
    if not text:
        return None
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split()) or None


def _service_health(ctx: Any) -> list[dict[str, Any]]:
    properties = _get(ctx, "properties")
    properties = properties if isinstance(properties, dict) else {}
    impacted = _json_value(_get(properties, "impactedServices"))
    services, regions = [], []
    for entry in impacted if isinstance(impacted, list) else []:
        name = _text(_get(entry, "ServiceName"))
        if name and name not in services:
            services.append(name)
        for region in _get(entry, "ImpactedRegions") or []:
            region_name = _text(_get(region, "RegionName"))
            if region_name and region_name not in regions:
                regions.append(region_name)
    return [
        _note(
            "Service health",
            _facts(
                [
                    ("title", _get(properties, "title") or _get(properties, "defaultLanguageTitle")),
                    ("type", _get(properties, "incidentType")),
                    ("stage", _get(properties, "stage")),
                    ("tracking id", _get(properties, "trackingId")),
                    ("impact start", _get(properties, "impactStartTime")),
                    ("impact mitigated", _get(properties, "impactMitigationTime")),
                    ("service", _get(properties, "service")),
                    ("region", _get(properties, "region")),
                ]
            ),
        ),
        _note("Impacted services", ", ".join(services)),
        _note("Impacted regions", ", ".join(regions)),
        _note(
            "Communication",
            _plain(
                _text(_get(properties, "communication")) or _text(_get(properties, "defaultLanguageContent"))
            ),
        ),
    ]


def _resource_health(ctx: Any) -> list[dict[str, Any]]:
    properties = _get(ctx, "properties")
    properties = properties if isinstance(properties, dict) else {}
    return [
        _note(
            "Resource health",
            _facts(
                [
                    ("title", _get(properties, "title")),
                    ("current", _get(properties, "currentHealthStatus")),
                    ("previous", _get(properties, "previousHealthStatus")),
                    ("type", _get(properties, "type")),
                    ("cause", _get(properties, "cause")),
                    ("details", _get(properties, "details")),
                    ("status", _get(ctx, "status")),
                    ("event time", _get(ctx, "eventTimestamp")),
                ]
            ),
        ),
        _note("Communication", _plain(_text(_get(properties, "communication")))),
    ]


def _prometheus(ctx: Any) -> list[dict[str, Any]]:
    labels = _get(ctx, "labels")
    annotations = _get(ctx, "annotations")
    return [
        _note(
            "Prometheus rule",
            _facts(
                [
                    ("expression", _get(ctx, "expression")),
                    ("value", _get(ctx, "expressionValue")),
                    ("for", _get(ctx, "for")),
                    ("interval", _get(ctx, "interval")),
                    ("rule group", _get(ctx, "ruleGroup")),
                ]
            ),
        ),
        _note("Labels", _facts(sorted(labels.items())) if isinstance(labels, dict) else None),
        _note("Annotations", _facts(sorted(annotations.items())) if isinstance(annotations, dict) else None),
    ]


def _smart_detection(ctx: Any) -> list[dict[str, Any]]:
    return [
        _note("Detection", _text(_get(ctx, "DetectionSummary"))),
        _note(
            "Smart detection",
            _facts(
                [
                    ("detector", _get(ctx, "SmartDetectorName") or _get(ctx, "SmartDetectorId")),
                    ("detected value", _get(ctx, "DetectedValue")),
                    ("normal value", _get(ctx, "NormalValue")),
                    ("occurred", _get(ctx, "FormattedOccurrenceTime")),
                    ("analysed", _get(ctx, "AnalysisTimestamp")),
                ]
            ),
        ),
    ]


def _budget(ctx: Any) -> list[dict[str, Any]]:
    data = _get(ctx, "AlertData")
    return [
        _note(
            "Budget",
            _facts(
                [
                    ("budget", _get(data, "BudgetName")),
                    ("type", _get(data, "BudgetType")),
                    ("threshold type", _get(data, "ThresholdType")),
                    ("budget amount", _get(data, "BudgetThreshold")),
                    ("notification threshold", _get(data, "NotificationThresholdAmount")),
                    ("spent", _get(data, "SpentAmount")),
                    ("forecast for the period", _get(data, "ForecastedTotalForPeriod")),
                    ("unit", _get(data, "Unit")),
                    ("scope", _get(data, "Scope")),
                    ("start", _get(data, "BudgetStartDate")),
                    ("category", _get(ctx, "AlertCategory")),
                ]
            ),
        )
    ]


# ---------------------------------------------------------------- notes into B's thread


def refire_note(
    handoff_id: str, label: str, alert_id: str, times: int, last_fired: str | None, seq: int
) -> str:
    """ "Fired again (N times)": posted at most once per interval while the handoff is open."""
    plural = "time" if times == 1 else "times"
    return "\n".join(
        [
            f"[Handoff {handoff_id}] Alert {label} fired again ({times} {plural})",
            "",
            f"Azure Monitor sent this alert again: {times} more {plural} since this handoff started"
            f"{f', most recently at {last_fired}' if last_fired else ''}. No new thread was opened.",
            f"Alert: {PORTAL_ALERT_URL + quote(alert_id, safe='')}",
            "",
            marker(handoff_id, f"alert-note:{seq}"),
        ]
    )


def resolved_note(handoff_id: str, label: str, alert_id: str, resolved_at: str, seq: int) -> str:
    """Posted once when the alert resolves; the investigation stays open until handed back."""
    return "\n".join(
        [
            f"[Handoff {handoff_id}] Alert {label} resolved at {resolved_at}",
            "",
            "Azure Monitor reports the alert condition cleared. The investigation stays open until you "
            "hand back your findings.",
            f"Alert: {PORTAL_ALERT_URL + quote(alert_id, safe='')}",
            "",
            marker(handoff_id, f"alert-resolved:{alert_key(alert_id)[:12]}:{seq}"),
        ]
    )


def storm_update_note(handoff_id: str, new_alerts: list[str], repeats: int, total: int, seq: int) -> str:
    """ "N more related alerts": the distinct alerts that joined the storm since the last update."""
    listed = new_alerts[:50]
    lines = [f"[Handoff {handoff_id}] {len(new_alerts)} more related alerts ({total} in this storm)", ""]
    lines += [f"- {line}" for line in listed]
    if len(new_alerts) > len(listed):
        lines.append(f"- … and {len(new_alerts) - len(listed)} more (see the handoff's audit)")
    if repeats:
        lines.append(f"Alerts already in the storm fired again {repeats} times.")
    lines += ["", marker(handoff_id, f"alert-note:{seq}")]
    return "\n".join(lines)
