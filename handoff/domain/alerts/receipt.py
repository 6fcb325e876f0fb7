"""The answer to ``POST /api/alerts``: where the alert went."""

from __future__ import annotations

from typing import Literal

from handoff.domain.models import WireModel

RoutedStatus = Literal["created", "updated", "stormStarted", "stormJoined", "resolved", "alreadyResolved"]


class AlertRouted(WireModel):
    """Where one alert went."""

    route: str
    target: str
    handoff_id: str
    status: RoutedStatus
    fired_count: int
    links: dict[str, str]


class AlertReceipt(WireModel):
    """Body of the answer to ``POST /api/alerts``."""

    alert_id: str
    monitor_condition: Literal["Fired", "Resolved"]
    routed: list[AlertRouted]
    detail: str | None = None
