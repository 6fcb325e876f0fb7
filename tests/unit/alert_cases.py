"""Alert notifications and the registry the alert use-case tests run with."""

from __future__ import annotations

import copy
from typing import Any

from handoff.domain.alerts.parsing import alert_key
from handoff.domain.alerts.records import ALERT_ROW, AlertRecord, alert_partition
from handoff.domain.registry import Registry
from tests.e2e.alert_payloads import envelope, unique_alert_id
from tests.unit.memory.alerts import AlertWorld

SUB = "00000000-0000-0000-0000-000000000000"
AGENTS = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.App/agents"
ALERT_EVENTS = ("alertFired", "alertRefired", "alertJoinedStorm")


def registry(**storm: Any) -> Registry:
    """Agents checkout and ops; alert routes by the ``testRoute`` custom property (storms: ops, 3)."""
    return Registry.from_data(
        {
            "agents": [
                {
                    "name": "checkout",
                    "resourceId": f"{AGENTS}/checkout-agent",
                },
                {
                    "name": "ops",
                    "resourceId": f"{AGENTS}/ops-agent",
                },
            ],
            "alertRoutes": [
                {
                    "name": "alert-samples",
                    "target": "CHECKOUT",
                    "match": {"customProperties": {"testRoute": "samples"}},
                    "alertStorm": {"threshold": 1000},
                },
                {
                    "name": "alert-storm",
                    "target": "ops",
                    "intent": "mitigate",
                    "match": {"customProperties": {"testRoute": "storm"}},
                    "alertStorm": {"threshold": 3, "windowSeconds": 600},
                },
            ],
        }
    )


def fired(alert_id: str | None = None, route: str = "samples", **essentials: Any) -> dict[str, Any]:
    """A metric alert firing, for the alert route ``route`` (a new alert id unless given)."""
    body = envelope("metric-static-fired", route, alert_id or unique_alert_id())
    body["data"]["essentials"].update(essentials)
    return body


def resolved(body: dict[str, Any], **essentials: Any) -> dict[str, Any]:
    """The same alert, resolved."""
    again = copy.deepcopy(body)
    again["data"]["essentials"].update(monitorCondition="Resolved", **essentials)
    return again


def routed_of(receipt: dict[str, Any]) -> dict[str, Any]:
    """The one place a receipt says the alert went."""
    [routed] = receipt["routed"]
    return routed


def row(world: AlertWorld, body: dict[str, Any]) -> AlertRecord:
    """The stored row of the alert in ``body``."""
    key = alert_key(body["data"]["essentials"]["alertId"])
    record = world.store.doc(alert_partition(key), ALERT_ROW, AlertRecord)
    assert record is not None
    return record
