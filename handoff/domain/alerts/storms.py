"""Alert storms: per target agent, up to ``threshold`` new alert handoffs within ``windowSeconds``; the
next distinct alert starts one storm handoff that every further distinct alert joins.

The decision for one alert id is remembered for a while in the target's storm state, so every receiver
of that id that finds it not yet placed can decide again and gets the same placement: concurrent
duplicates never wait for the first receiver.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel

from handoff.domain.alerts.parsing import MAX_RESOURCES, Alert
from handoff.domain.registry import AlertStorm

StormDecision = Literal["own", "stormStart", "stormJoin"]

# How long, and for how many alert ids, a placement is remembered. Only a receiver that stopped between
# deciding and recording the placement on the alert's row needs it for longer; the row keeps the answer.
PLACEMENT_MEMORY = timedelta(seconds=30)
PLACEMENTS_KEPT = 200


class Placement(BaseModel):
    """Where one alert id goes: its own handoff, or the storm handoff it starts or joins."""

    handoff_id: str
    decision: StormDecision
    at: datetime


class StormState(BaseModel):
    """Per target agent: when recent alert handoffs were created, the storm handoff if one is open, and
    the placements decided lately (by alert key)."""

    recent: list[datetime] = []
    storm_id: str | None = None
    storm_last_at: datetime | None = None
    first_alert: dict[str, Any] | None = None
    placed: dict[str, Placement] = {}


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
        return state, "stormJoin", state.storm_id
    if len(state.recent) < threshold:
        state.recent.append(now)
        state.storm_id = None
        return state, "own", None
    state.storm_id = new_storm_id
    state.storm_last_at = now
    state.first_alert = {
        "alertId": first.alert_id,
        "rule": first.label,
        "severity": first.severity,
        "firedAt": first.fired_at,
        "targets": list(first.target_ids[:MAX_RESOURCES]),
    }
    return state, "stormStart", new_storm_id


def place_alert(
    state: StormState | None,
    alert: Alert,
    now: datetime,
    limits: AlertStorm,
    new_ids: tuple[str, str],
) -> tuple[StormState | None, Placement]:
    """The placement of ``alert``: the one decided lately for its alert id, else a new decision (with
    ``new_ids``: the id of its own handoff, the id of a storm it starts).

    Returns the state to store (None when nothing changes) and the placement. Pure, so a storage update
    may run it again on a conflict.
    """
    known = state.placed.get(alert.key) if state else None
    if known is not None and now - known.at < PLACEMENT_MEMORY:
        return None, known
    own_id, storm_id = new_ids
    new_state, decision, joined = decide_storm(
        state, now, limits.threshold, limits.window_seconds, storm_id, alert
    )
    placement = Placement(handoff_id=joined or own_id, decision=decision, at=now)
    placed = {key: p for key, p in new_state.placed.items() if now - p.at < PLACEMENT_MEMORY}
    placed.pop(alert.key, None)
    placed[alert.key] = placement
    new_state.placed = dict(list(placed.items())[-PLACEMENTS_KEPT:])
    return new_state, placement
