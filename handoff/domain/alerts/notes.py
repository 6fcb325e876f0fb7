"""The notes posted into the target agent's thread about an alert handoff: fired again, resolved, and
the storm updates. Each ends with the marker a retry looks for before posting again.

Every value here came in an alert that anyone holding the alert webhook's key could have written, so
each is rendered as data (:mod:`handoff.domain.markdown`): a name as escaped text, times and ids as code
spans. (Their secrets were redacted when the alert was parsed.)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handoff.domain.alerts.parsing import alert_key, portal_url
from handoff.domain.markdown import code, inline
from handoff.domain.messages import marker


def refire_note(
    handoff_id: str, label: str, alert_id: str, times: int, last_fired: str | None, seq: int
) -> str:
    """ "Fired again (N times)": posted at most once per interval while the handoff is open."""
    plural = "time" if times == 1 else "times"
    return "\n".join(
        [
            f"[Handoff {handoff_id}] Alert {inline(label)} fired again ({times} {plural})",
            "",
            f"Azure Monitor sent this alert again: {times} more {plural} since this handoff started"
            f"{f', most recently at {code(last_fired)}' if last_fired else ''}. No new thread was opened.",
            f"Alert: {portal_url(alert_id)}",
            "",
            marker(handoff_id, f"alert-note:{seq}"),
        ]
    )


def resolved_note(handoff_id: str, label: str, alert_id: str, resolved_at: str | None, seq: int) -> str:
    """Posted once when the alert resolves; the investigation stays open until handed back."""
    when = code(resolved_at) if resolved_at else "an unknown time"
    return "\n".join(
        [
            f"[Handoff {handoff_id}] Alert {inline(label)} resolved at {when}",
            "",
            "Azure Monitor reports the alert condition cleared. The investigation stays open until you "
            "hand back your findings.",
            f"Alert: {portal_url(alert_id)}",
            "",
            marker(handoff_id, f"alert-resolved:{alert_key(alert_id)[:12]}:{seq}"),
        ]
    )


def alert_line(facts: Mapping[str, Any]) -> str:
    """One alert of a storm, for a list, from what its ``alertJoinedStorm`` event records: severity,
    name, first resource, when it fired and its id."""
    label = facts.get("label") or facts.get("alertRule") or facts.get("monitoringService") or "alert"
    severity = f"{code(facts['severity'])} " if facts.get("severity") else ""
    where = f" on {code(facts['target'])}" if facts.get("target") else ""
    fired = code(facts["firedDateTime"]) if facts.get("firedDateTime") else "at an unknown time"
    return f"{severity}**{inline(label)}**{where} (fired {fired}; alert {code(facts.get('alertId') or '')})"


def storm_update_note(
    handoff_id: str, new_alerts: list[Mapping[str, Any]], repeats: int, total: int, seq: int
) -> str:
    """ "N more related alerts": the distinct alerts that joined the storm since the last update."""
    listed = new_alerts[:50]
    lines = [f"[Handoff {handoff_id}] {len(new_alerts)} more related alerts ({total} in this storm)", ""]
    lines += [f"- {alert_line(facts)}" for facts in listed]
    if len(new_alerts) > len(listed):
        lines.append(f"- … and {len(new_alerts) - len(listed)} more (see the handoff's audit)")
    if repeats:
        lines.append(f"Alerts already in the storm fired again {repeats} times.")
    lines += ["", marker(handoff_id, f"alert-note:{seq}")]
    return "\n".join(lines)
