"""Evidence of metric alerts (static and dynamic thresholds, availability tests)."""

from __future__ import annotations

from typing import Any

from handoff.domain.alerts.evidence.items import (
    condition_window,
    dimensions,
    facts,
    failing_periods,
    note,
)
from handoff.domain.alerts.reading import as_text, lookup


def metric_evidence(ctx: Any) -> list[dict[str, Any]]:
    """The condition, one note per criterion, and the rule's properties."""
    condition_type = as_text(lookup(ctx, "conditionType"))
    items = [note("Condition", facts([("type", condition_type), ("window", condition_window(ctx))]))]
    for criterion in lookup(ctx, "condition", "allOf") or []:
        if not isinstance(criterion, dict):
            continue
        name = as_text(lookup(criterion, "metricName")) or "metric"
        items.append(
            note(
                f"Metric {name}",
                facts(
                    [
                        ("metric", name),
                        ("namespace", lookup(criterion, "metricNamespace")),
                        ("aggregation", lookup(criterion, "timeAggregation")),
                        ("operator", lookup(criterion, "operator")),
                        ("threshold", lookup(criterion, "threshold")),
                        ("observed value", lookup(criterion, "metricValue")),
                        ("dimensions", dimensions(lookup(criterion, "dimensions"))),
                        ("sensitivity", lookup(criterion, "alertSensitivity")),
                        ("failing periods", failing_periods(criterion)),
                        ("ignore data before", lookup(criterion, "ignoreDataBefore")),
                        ("availability test", lookup(criterion, "webTestName")),
                    ]
                ),
            )
        )
    properties = lookup(ctx, "properties")
    if isinstance(properties, dict) and properties:
        items.append(note("Rule properties", facts([(str(k), v) for k, v in properties.items()])))
    return items
