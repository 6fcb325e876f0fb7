"""The documented alert samples, wrapped and given unique ids, and what each start message must show."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "azure-monitor-alerts"
SUB = "00000000-0000-0000-0000-000000000000"

# Essentials for fragments (which carry only alertContext): the monitoringService the docs name for each.
FRAGMENT_ESSENTIALS: dict[str, tuple[str, str]] = {
    "metric-static": ("Platform", "Metric"),
    "metric-dynamic": ("Platform", "Metric"),
    "metric-availability-test": ("Platform", "Metric"),
    "log-search-v1-log-analytics": ("Log Analytics", "Log"),
    "log-search-v1-application-insights": ("Application Insights", "Log"),
    "log-search-v2": ("Log Alerts V2", "Log"),
    "log-search-simple-log-alert": ("Simple Log Alert", "Log"),
    "activity-log-administrative": ("Activity Log - Administrative", "Activity Log"),
    "activity-log-policy": ("Activity Log - Policy", "Activity Log"),
    "activity-log-autoscale": ("Activity Log - Autoscale", "Activity Log"),
    "activity-log-security": ("Activity Log - Security", "Activity Log"),
    "activity-log-service-health": ("ServiceHealth", "Activity Log"),
    "activity-log-service-health-named-enums": ("ServiceHealth", "Activity Log"),
    "activity-log-resource-health": ("Resource Health", "Activity Log"),
    "prometheus": ("Prometheus", "Metric"),
}

# Text each kind's start message must contain (the evidence for its kind).
EXPECTED: dict[str, list[str]] = {
    "metric-static-fired": [
        "metric: Transactions",
        "operator: GreaterThan",
        "threshold: 0",
        "observed value: 100",
        "dimensions: ApiName=GetBlob",
        "window size PT5M",
    ],
    "metric-dynamic-fired": ["sensitivity: Low", "failing periods: 3 of 3 periods", "observed value: 78.09"],
    "metric-availability-test-fired": [
        "metric: FailedLocation",
        "availability test: test-availabilityTest-test-applicationInsights",
    ],
    "log-search-v1-metric-measurement-fired": [
        "Heartbeat | summarize AggregatedValue=count() by bin(TimeGenerated, 5m)",
        "| TimeGenerated | AggregatedValue |",
        "| 2025-04-15T17:57:27.967Z | 11 |",
        "[Search results](https://",
    ],
    "log-search-v1-number-of-results-fired": [
        "| TenantId | Computer | TimeGenerated |",
        "test-computer",
        "result count: 1",
        "alert type: Number of results",
    ],
    "log-search-v2-fired": [
        "Heartbeat",
        "dimensions: Computer=test-computer",
        "[Search results](https://",
        "failing periods: 1 of 1 periods",
        "window size PT1H",
    ],
    "activity-log-administrative-fired": [
        "operation: Microsoft.Compute/virtualMachines/restart/action",
        "caller: user@contoso.com",
        "status: Succeeded",
        "correlation id: cccc2222-dd33-4444-55ee-666666ffffff",
    ],
    "activity-log-resource-health-fired": [
        "title: Rebooted by user",
        "current: Unavailable",
        "previous: Available",
        "cause: UserInitiated",
    ],
    "activity-log-service-health-fired": [
        "title: TestActionGroup-TestServiceHealthAlert",
        "type: Incident",
        "Impacted regions",
        "Global",
        "ThisisatestfromServiceHealthAlert",
    ],
    "smart-detection-fired": [
        "A degradation in the dependency duration over the last 24 hours",
        "detected value: 0.45 sec",
        "normal value: 0.27 sec",
    ],
    "budget-sample-fired": ["budget: Test_forcasted_budget", "threshold type: Forecasted"],
    "budget-cost-actual-fired": [
        "budget: Test_actual_cost_budget",
        "spent: $11,111.00",
        "threshold type: Actual",
    ],
    "budget-forecasted-fired": ["forecast for the period: $1111.11", "budget amount: $50.00"],
    "metric-static.alert-context": [
        "metric: Percentage CPU",
        "observed value: 31.1105",
        "dimensions: ResourceId=b1b1b1b1-cccc-dddd-eeee-f2f2f2f2f2f2",
    ],
    "metric-dynamic.alert-context": ["sensitivity: High", "threshold: 47658", "observed value: 50101"],
    "metric-availability-test.alert-context": ["availability test: myAvailabilityTest-myApplication"],
    "log-search-v1-log-analytics.alert-context": [
        "| $table | Computer | TimeGenerated |",
        "| Fabrikam |",
        "workspace: a0a0a0a0-bbbb-cccc-dddd-e1e1e1e1e1e1",
    ],
    "log-search-v1-application-insights.alert-context": [
        "| $table | Id | Timestamp |",
        "Contoso",
        "operator: Less Than",
        "dimensions: IP=1.1.1.1",
    ],
    "log-search-v2.alert-context": [
        "operator: LowerThan",
        "dimensions: Computer=TestComputer",
        "measure column: CounterValue",
    ],
    "log-search-simple-log-alert.alert-context": [
        "| timestamp | operation_Name | problemId | type | outerMessage |",
        "GET /api/orders",
    ],
    "activity-log-administrative.alert-context": [
        "caller: 22223333-cccc-4444-dddd-5555eeee6666",
        "operation: Microsoft.Compute/virtualMachines/restart/action",
    ],
    "activity-log-policy.alert-context": [
        "assignment: SecurityCenterBuiltIn",
        "effect: AuditIfNotExists",
        "operation: Microsoft.Authorization/policies/audit/action",
    ],
    "activity-log-autoscale.alert-context": [
        "instances before: 9",
        "instances after: 10",
        "operation: Microsoft.Insights/AutoscaleSettings/Scaleup/Action",
    ],
    "activity-log-security.alert-context": [
        "threat status: Quarantined",
        "compromised entity: testVM",
        "action taken: Blocked",
    ],
    "activity-log-service-health.alert-context": [
        "title: Azure Synapse Analytics Scheduled Maintenance Pending",
        "type: Maintenance",
        "Impacted regions",
        "East US",
        "Impacted services",
    ],
    "activity-log-service-health-named-enums.alert-context": ["stage: Planned", "East US"],
    "activity-log-resource-health.alert-context": ["current: Unavailable", "type: Downtime"],
    "prometheus.alert-context": [
        "expression: sql_up > 0",
        "cluster: myCluster1",
        "summary: alert on SQL availability",
        "for: PT2M",
    ],
}


def sample_names() -> list[str]:
    """Every sample file's stem."""
    return sorted(path.name.removesuffix(".json") for path in SAMPLES.glob("*.json"))


def load(name: str) -> dict[str, Any]:
    """A sample as parsed JSON."""
    return json.loads((SAMPLES / f"{name}.json").read_text())


def unique_alert_id() -> str:
    """A fresh alert id in Azure Monitor's format."""
    return f"/subscriptions/{SUB}/providers/Microsoft.AlertsManagement/alerts/{uuid.uuid4()}"


def envelope(
    name: str, route: str, alert_id: str | None = None, condition: str | None = None
) -> dict[str, Any]:
    """The sample as a webhook body: fragments wrapped, a unique (or given) ``alertId``, and the
    ``testRoute`` custom property that picks the test's alert route."""
    sample = copy.deepcopy(load(name))
    if "schemaId" not in sample:
        stem = name.removesuffix(".alert-context")
        service, signal = FRAGMENT_ESSENTIALS[stem]
        sample = {
            "schemaId": "azureMonitorCommonAlertSchema",
            "data": {
                "essentials": {
                    "alertId": "",
                    "alertRule": f"rule-{stem}",
                    "severity": "Sev2",
                    "signalType": signal,
                    "monitorCondition": "Fired",
                    "monitoringService": service,
                    "alertTargetIDs": [
                        f"/subscriptions/{SUB}/resourcegroups/shop/providers/microsoft.web/sites/checkout-api"
                    ],
                    "originAlertId": str(uuid.uuid4()),
                    "firedDateTime": "2026-01-05T10:00:00.000Z",
                    "description": f"{stem} test",
                    "essentialsVersion": "1.0",
                    "alertContextVersion": "1.0",
                },
                "alertContext": sample["alertContext"],
            },
        }
    data = sample["data"]
    data["essentials"]["alertId"] = alert_id or unique_alert_id()
    if condition:
        data["essentials"]["monitorCondition"] = condition
        if condition == "Fired":
            data["essentials"].pop("resolvedDateTime", None)
    data["customProperties"] = {**(data.get("customProperties") or {}), "testRoute": route}
    return sample
