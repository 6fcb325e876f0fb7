"""Alert routes: the first route whose ``match`` holds for an alert decides where the alert goes."""

from __future__ import annotations

import fnmatch

from handoff.domain.alerts.parsing import Alert
from handoff.domain.alerts.reading import as_text, name_key
from handoff.domain.registry import AlertMatch, AlertRoute


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
    if match.signal_type is not None and name_key(alert.signal_type) != name_key(match.signal_type):
        return False
    if match.monitoring_service is not None and name_key(alert.monitoring_service) != name_key(
        match.monitoring_service
    ):
        return False
    if match.custom_properties is not None:
        for key, value in match.custom_properties.items():
            have = alert.custom_properties.get(key)
            if have is None or as_text(have) != value:
                return False
    return True


def select_route(routes: list[AlertRoute], alert: Alert) -> AlertRoute | None:
    """The first route whose match holds, or None."""
    return next((route for route in routes if route_matches(route.match, alert)), None)
