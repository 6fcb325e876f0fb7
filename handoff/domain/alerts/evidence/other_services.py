"""Evidence of the other monitoring services with a mapping: managed Prometheus rules, Application
Insights smart detection, and cost budgets."""

from __future__ import annotations

from typing import Any

from handoff.domain.alerts.evidence.items import facts, note
from handoff.domain.alerts.reading import as_text, lookup


def prometheus_evidence(ctx: Any) -> list[dict[str, Any]]:
    """The rule (expression, value, timing), its labels and annotations."""
    labels = lookup(ctx, "labels")
    annotations = lookup(ctx, "annotations")
    return [
        note(
            "Prometheus rule",
            facts(
                [
                    ("expression", lookup(ctx, "expression")),
                    ("value", lookup(ctx, "expressionValue")),
                    ("for", lookup(ctx, "for")),
                    ("interval", lookup(ctx, "interval")),
                    ("rule group", lookup(ctx, "ruleGroup")),
                ]
            ),
        ),
        note("Labels", facts(sorted(labels.items())) if isinstance(labels, dict) else None),
        note("Annotations", facts(sorted(annotations.items())) if isinstance(annotations, dict) else None),
    ]


def smart_detection_evidence(ctx: Any) -> list[dict[str, Any]]:
    """The detection summary and the detector's values."""
    return [
        note("Detection", as_text(lookup(ctx, "DetectionSummary"))),
        note(
            "Smart detection",
            facts(
                [
                    ("detector", lookup(ctx, "SmartDetectorName") or lookup(ctx, "SmartDetectorId")),
                    ("detected value", lookup(ctx, "DetectedValue")),
                    ("normal value", lookup(ctx, "NormalValue")),
                    ("occurred", lookup(ctx, "FormattedOccurrenceTime")),
                    ("analysed", lookup(ctx, "AnalysisTimestamp")),
                ]
            ),
        ),
    ]


def budget_evidence(ctx: Any) -> list[dict[str, Any]]:
    """The budget, its amounts spent and forecast, and its scope."""
    data = lookup(ctx, "AlertData")
    return [
        note(
            "Budget",
            facts(
                [
                    ("budget", lookup(data, "BudgetName")),
                    ("type", lookup(data, "BudgetType")),
                    ("threshold type", lookup(data, "ThresholdType")),
                    ("budget amount", lookup(data, "BudgetThreshold")),
                    ("notification threshold", lookup(data, "NotificationThresholdAmount")),
                    ("spent", lookup(data, "SpentAmount")),
                    ("forecast for the period", lookup(data, "ForecastedTotalForPeriod")),
                    ("unit", lookup(data, "Unit")),
                    ("scope", lookup(data, "Scope")),
                    ("start", lookup(data, "BudgetStartDate")),
                    ("category", lookup(ctx, "AlertCategory")),
                ]
            ),
        )
    ]
