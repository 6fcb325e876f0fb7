"""Alert routing rules, payload parsing, context mapping and storm decisions (pure functions)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from handoff.domain.alerts.context import alert_context
from handoff.domain.alerts.evidence.kinds import RAW_CONTEXT_CAP
from handoff.domain.alerts.parsing import parse_alert
from handoff.domain.alerts.routing import resource_type, select_route
from handoff.domain.alerts.storms import decide_storm
from handoff.domain.errors import BadRequest
from handoff.domain.registry import ConfigError, Registry
from tests.e2e.alert_payloads import envelope

SUB = "00000000-0000-0000-0000-000000000000"
AGENT = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.App/agents/checkout-agent"
SITE = f"/subscriptions/{SUB}/resourceGroups/shop/providers/Microsoft.Web/sites/checkout-api"


def registry(routes: list[dict], **extra) -> Registry:
    return Registry.from_data(
        {"agents": [{"name": "checkout", "resourceId": AGENT}], "alertRoutes": routes, **extra}
    )


def alert(**essentials):
    body = envelope("metric-static-fired", "unit")
    body["data"]["essentials"].update(essentials)
    return parse_alert(json.dumps(body).encode())


def route_for(match: dict, **essentials) -> str | None:
    reg = registry([{"name": "r", "target": "checkout", "match": match}])
    found = select_route(reg.alert_routes, alert(**essentials))
    return found.name if found else None


@pytest.mark.parametrize(
    ("match", "targets", "expected"),
    [
        ({"resourceIdPrefix": f"/subscriptions/{SUB}/resourceGroups/shop"}, [SITE], "r"),
        ({"resourceIdPrefix": f"/SUBSCRIPTIONS/{SUB}/resourcegroups/SHOP/"}, [SITE], "r"),
        (
            {"resourceIdPrefix": f"/subscriptions/{SUB}/resourceGroups/shop"},
            [SITE.replace("shop", "shopping")],
            None,
        ),
        ({"resourceIdPrefix": f"/subscriptions/{SUB}/resourceGroups/shop"}, ["/subscriptions/x", SITE], "r"),
        ({"resourceType": "Microsoft.Web/sites"}, [SITE.lower()], "r"),
        ({"resourceType": "Microsoft.Web/sites/slots"}, [SITE + "/slots/staging"], "r"),
        ({"resourceType": "Microsoft.Web/sites"}, [SITE + "/slots/staging"], None),
        ({"resourceType": "Microsoft.Web/sites"}, [f"/subscriptions/{SUB}"], None),
    ],
)
def test_resource_conditions(match, targets, expected):
    assert route_for(match, alertTargetIDs=targets) == expected


def test_resource_type_of_ids():
    assert resource_type(SITE) == "microsoft.web/sites"
    assert resource_type(SITE + "/slots/a") == "microsoft.web/sites/slots"
    assert resource_type(f"/subscriptions/{SUB}") is None


@pytest.mark.parametrize(
    ("match", "essentials", "expected"),
    [
        ({"alertRule": "checkout-*"}, {"alertRule": "Checkout-5xx"}, "r"),
        ({"alertRule": "checkout-*"}, {"alertRule": "payments-5xx"}, None),
        ({"alertRule": "checkout-*"}, {"alertRule": None}, None),
        ({"severity": ["Sev0", "Sev1"]}, {"severity": "Sev1"}, "r"),
        ({"severity": ["Sev0", "Sev1"]}, {"severity": "Sev4"}, None),
        ({"signalType": "Activity Log"}, {"signalType": "ActivityLog"}, "r"),
        ({"monitoringService": "Log Alerts V2"}, {"monitoringService": "log alerts v2"}, "r"),
        ({"monitoringService": "Platform"}, {"monitoringService": "SmartDetector"}, None),
        ({}, {}, "r"),
    ],
)
def test_essentials_conditions(match, essentials, expected):
    assert route_for(match, **essentials) == expected


def test_custom_properties_and_all_keys_must_hold():
    assert route_for({"customProperties": {"testRoute": "unit"}}) == "r"
    assert route_for({"customProperties": {"testRoute": "other"}}) is None
    assert route_for({"customProperties": {"testRoute": "unit"}, "severity": ["Sev0"]}) is None


def test_first_matching_route_wins_and_empty_match_is_a_default():
    reg = registry(
        [
            {"name": "sev0", "target": "checkout", "match": {"severity": ["Sev0"]}},
            {"name": "default", "target": "checkout", "match": {}},
            {"name": "never", "target": "checkout"},
        ]
    )
    assert select_route(reg.alert_routes, alert(severity="Sev0")).name == "sev0"
    assert select_route(reg.alert_routes, alert(severity="Sev3")).name == "default"


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (
            {"name": "shop", "target": "nobody"},
            "alertRoutes[0] (rule 'shop').target: 'nobody' is not a registered",
        ),
        (
            {"name": "shop", "target": "checkout", "match": {"severity": ["Sev7"]}},
            "(rule 'shop').match.severity",
        ),
        (
            {"name": "shop", "target": "checkout", "match": {"resourceIdPrefix": "shop"}},
            "(rule 'shop').match",
        ),
        ({"name": "shop", "target": "checkout", "match": {"resourceType": "sites"}}, "(rule 'shop').match"),
        ({"name": "shop", "target": "checkout", "match": {"colour": "red"}}, "(rule 'shop').match.colour"),
        ({"name": "shop", "target": "checkout", "alertStorm": {"threshold": 0}}, "(rule 'shop').alertStorm"),
    ],
)
def test_invalid_rules_fail_naming_the_rule(route, message):
    with pytest.raises(ConfigError, match=None) as raised:
        registry([route])
    assert message in str(raised.value)


def test_route_storm_override_and_shared_memory_are_kept():
    reg = registry(
        [
            {
                "name": "a",
                "target": "checkout",
                "alertStorm": {"windowSeconds": 10},
                "sharedMemory": ["ops-notes"],
            }
        ],
        alertStorm={"threshold": 3, "windowSeconds": 60},
        sharedMemory={
            "backends": [
                {
                    "name": "ops-notes",
                    "type": "github",
                    "baseUrl": "https://api.github.com",
                    "repo": "contoso/ops",
                    "secretSetting": "GITHUB_TOKEN",
                }
            ]
        },
    )
    [route] = reg.alert_routes
    limits = route.storm(reg.alert_storm)
    assert (limits.threshold, limits.window_seconds) == (3, 10)
    assert route.shared_memory == ("ops-notes",)


def test_a_route_naming_an_unknown_backend_fails_start_up():
    with pytest.raises(
        ConfigError, match=r"alertRoutes\[0\] \(rule 'a'\)\.sharedMemory names unknown backend"
    ):
        registry([{"name": "a", "target": "checkout", "sharedMemory": ["nowhere"]}])


def test_an_agent_may_not_take_the_alert_source_name():
    with pytest.raises(ConfigError, match="reserved"):
        Registry.from_data({"agents": [{"name": "azure-monitor", "resourceId": AGENT}]})


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (b"not json", "/"),
        (b"[]", "/"),
        (json.dumps({"status": "Activated", "context": {}}).encode(), "/schemaId"),
        (json.dumps({"schemaId": "Microsoft.Insights/activityLogs", "data": {}}).encode(), "/schemaId"),
        (json.dumps({"schemaId": "azureMonitorCommonAlertSchema", "data": {}}).encode(), "/data/essentials"),
    ],
)
def test_not_common_schema_is_a_400_saying_how_to_enable_it(body, pointer):
    with pytest.raises(BadRequest) as raised:
        parse_alert(body)
    assert "enable the common alert schema" in raised.value.detail
    assert raised.value.errors[0].field == pointer


def test_missing_alert_id_or_condition_names_the_field():
    body = envelope("metric-static-fired", "unit")
    body["data"]["essentials"]["monitorCondition"] = "Activated"
    with pytest.raises(BadRequest) as raised:
        parse_alert(json.dumps(body).encode())
    assert raised.value.errors[0].field == "/data/essentials/monitorCondition"


def test_bad_target_ids_are_reported_not_refused():
    parsed = alert(alertTargetIDs=["not-an-id", SITE.lower(), "", 42])
    context = alert_context(parsed, "r")
    assert context.resources == [SITE.lower()]
    notes = [e.content for e in context.evidence if e.kind == "note"]
    assert any("not-an-id" in note for note in notes)


@pytest.mark.parametrize("ctx", [None, "text", 12, [1, 2], {"condition": {"allOf": "oops"}}])
def test_odd_alert_contexts_still_make_a_handoff(ctx):
    body = envelope("metric-static-fired", "unit")
    body["data"]["alertContext"] = ctx
    body["data"]["essentials"]["severity"] = "Sev9"
    context = alert_context(parse_alert(json.dumps(body).encode()), "r")
    assert context.severity == "Sev4"
    assert context.title


def test_unknown_service_attaches_the_raw_context_capped():
    body = envelope("metric-static-fired", "unit")
    body["data"]["essentials"]["monitoringService"] = "Something New"
    body["data"]["alertContext"] = {"blob": "x" * (RAW_CONTEXT_CAP * 2)}
    context = alert_context(parse_alert(json.dumps(body).encode()), "r")
    [data] = [e for e in context.evidence if e.kind == "data"]
    assert data.data["truncated"] is True
    assert len(json.dumps(data.data)) < RAW_CONTEXT_CAP + 1000


def test_storm_decisions_follow_threshold_and_window():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    first = alert()
    state, decisions = None, []
    for n in range(8):
        state, decision, storm_id = decide_storm(state, now + timedelta(seconds=n), 5, 60, "storm-1", first)
        decisions.append((decision, storm_id))
    assert [d for d, _ in decisions] == ["own"] * 5 + ["stormStart", "stormJoin", "stormJoin"]
    assert {s for _, s in decisions[5:]} == {"storm-1"}
    # after a quiet window the storm is over and alerts get their own handoffs again
    state, decision, _ = decide_storm(state, now + timedelta(seconds=200), 5, 60, "storm-2", first)
    assert decision == "own"
