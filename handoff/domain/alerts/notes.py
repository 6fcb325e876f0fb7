"""The notes posted into the target agent's thread about an alert handoff: fired again, resolved, and
the storm updates. Each ends with the marker a retry looks for before posting again."""

from __future__ import annotations

from handoff.domain.alerts.parsing import alert_key, portal_url
from handoff.domain.messages import marker


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
            f"Alert: {portal_url(alert_id)}",
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
            f"Alert: {portal_url(alert_id)}",
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
