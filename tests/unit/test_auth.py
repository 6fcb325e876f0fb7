import base64
import json

import pytest

from handoff.domain.auth import (
    AGENT_KEY_HEADER,
    SYSTEM,
    Authorizer,
    Caller,
    Identity,
    KeyRing,
    RateLimiter,
    caller_from_headers,
)
from handoff.domain.errors import Forbidden, TooManyRequests, Unauthorized
from handoff.domain.registry import ConfigError, Registry

RID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.App/agents/{}"
OPS_APP = "11111111-aaaa-4aaa-8aaa-000000000001"
OPERATOR = "99999999-aaaa-4aaa-8aaa-000000000009"
OPS_KEY = "ops-key-0123456789abcdef"
OPERATOR_KEY = "operator-key-0123456789abcdef"
CONFIG = {
    "agents": [
        {
            "name": "ops",
            "resourceId": RID.format("ops"),
            "callers": [OPS_APP],
            "keySetting": "KEY_OPS",
            "mayHandOffTo": ["check*", "payments"],
        },
        {"name": "checkout", "resourceId": RID.format("checkout")},
        {"name": "payments", "resourceId": RID.format("payments")},
        {"name": "inventory", "resourceId": RID.format("inventory")},
    ],
    "operators": {"callers": [OPERATOR], "keySetting": "KEY_OPERATORS"},
}
REGISTRY = Registry.from_data(CONFIG)
OPEN_REGISTRY = Registry.from_data(
    {"agents": [{"name": n, "resourceId": RID.format(n)} for n in ("ops", "checkout")]}
)
KEYS = KeyRing(REGISTRY, {"KEY_OPS": OPS_KEY, "KEY_OPERATORS": OPERATOR_KEY})


def principal_header(**claims):
    data = {"auth_typ": "aad", "claims": [{"typ": k, "val": v} for k, v in claims.items()]}
    return base64.b64encode(json.dumps(data).encode()).decode()


def principal(appid: str, oid: str = "o-1") -> Caller:
    headers = {
        "X-MS-CLIENT-PRINCIPAL": principal_header(appid=appid, oid=oid),
        "X-MS-CLIENT-PRINCIPAL-ID": oid,
    }
    return caller_from_headers(headers, in_azure=True, keys_enforced=False, easy_auth=True)


# ---------------------------------------------------------------- who is calling


def test_local_and_function_key_callers():
    assert caller_from_headers({}, in_azure=False) == Caller("local")
    assert caller_from_headers({}, in_azure=True) == Caller("functionKey")


def test_anonymous_functions_in_azure_require_a_principal():
    with pytest.raises(Unauthorized):
        caller_from_headers({}, in_azure=True, keys_enforced=False)


def test_principal_headers_count_only_behind_app_service_authentication():
    headers = {"X-MS-CLIENT-PRINCIPAL-ID": OPERATOR}
    # In Azure without App Service Authentication anyone holding a function key could forge these.
    assert caller_from_headers(headers, in_azure=True, easy_auth=False) == Caller("functionKey")
    assert caller_from_headers(headers, in_azure=True, easy_auth=True).kind == "principal"
    # Locally they are how a principal is played (as App Service would set them).
    assert caller_from_headers(headers, in_azure=False).kind == "principal"


def test_agent_key_names_its_owner_and_an_unknown_key_is_refused():
    assert caller_from_headers({AGENT_KEY_HEADER: OPS_KEY}, in_azure=True, keys=KEYS) == Caller(
        "agentKey", name="ops"
    )
    assert caller_from_headers({"x-handoff-agent-key": OPERATOR_KEY}, in_azure=False, keys=KEYS) == Caller(
        "operatorKey"
    )
    with pytest.raises(Unauthorized):
        caller_from_headers({AGENT_KEY_HEADER: OPS_KEY + "x"}, in_azure=True, keys=KEYS)


def test_an_agent_named_like_the_operators_gets_no_operator_rights():
    config = json.loads(json.dumps(CONFIG))
    config["agents"][1].update(name="operators", keySetting="KEY_NAMED_OPERATORS")
    registry = Registry.from_data(config)
    ring = KeyRing(registry, {"KEY_NAMED_OPERATORS": "named-operators-0123456789"})
    caller = caller_from_headers({AGENT_KEY_HEADER: "named-operators-0123456789"}, in_azure=True, keys=ring)
    assert caller == Caller("agentKey", name="operators")
    assert Authorizer(registry).identity(caller) == Identity(frozenset({"operators"}), False)


def test_malformed_principal_claims_grant_nothing_and_do_not_crash():
    for data in ({"claims": 5}, None, {"claims": [5, {"typ": "oid"}]}, [1, 2]):
        encoded = base64.b64encode(json.dumps(data).encode()).decode()
        caller = caller_from_headers({"X-MS-CLIENT-PRINCIPAL": encoded}, in_azure=False)
        assert caller.kind == "principal" and Authorizer(REGISTRY).identity(caller) == Identity(
            frozenset(), False
        )


def test_short_or_missing_keys_are_unusable():
    ring = KeyRing(REGISTRY, {"KEY_OPS": "short"})
    assert ring.missing == ["KEY_OPS", "KEY_OPERATORS"]
    assert ring.owner_of("short") is None
    assert ring.owner_of("") is None


def test_a_caller_never_carries_its_key():
    caller = caller_from_headers({AGENT_KEY_HEADER: OPS_KEY}, in_azure=True, keys=KEYS)
    assert OPS_KEY not in repr(caller) and OPS_KEY not in caller.describe()


def test_garbled_principal_header_grants_nothing():
    caller = caller_from_headers({"x-ms-client-principal": "%%%not-base64"}, in_azure=False)
    assert caller.kind == "principal" and caller.principal_id is None
    assert Authorizer(REGISTRY).identity(caller) == Identity(frozenset(), False)


# ---------------------------------------------------------------- what a caller is


def test_open_registry_lets_platform_callers_do_everything_but_not_principals():
    authorizer = Authorizer(OPEN_REGISTRY)
    assert authorizer.open
    for caller in (Caller("local"), Caller("functionKey"), SYSTEM):
        assert authorizer.identity(caller) == Identity(None, True)
    assert authorizer.identity(principal(OPS_APP)) == Identity(frozenset(), False)


def test_once_the_registry_names_callers_a_function_key_alone_is_nobody():
    authorizer = Authorizer(REGISTRY)
    assert not authorizer.open
    for caller in (Caller("local"), Caller("functionKey")):
        assert authorizer.identity(caller) == Identity(frozenset(), False)
    assert authorizer.identity(SYSTEM) == Identity(None, True)


def test_principals_and_keys_map_to_agents_or_operators():
    authorizer = Authorizer(REGISTRY)
    assert authorizer.identity(principal(OPS_APP.upper())) == Identity(frozenset({"ops"}), False)
    assert authorizer.identity(principal("someone-else", oid=OPERATOR)) == Identity(frozenset(), True)
    assert authorizer.identity(Caller("agentKey", name="ops")) == Identity(frozenset({"ops"}), False)
    assert authorizer.identity(Caller("operatorKey")) == Identity(frozenset(), True)


# ---------------------------------------------------------------- rules


def test_hand_off_only_as_itself_and_only_where_may_hand_off_to_allows(caplog):
    authorizer = Authorizer(REGISTRY)
    ops, checkout, payments, inventory = (
        REGISTRY.by_name(n) for n in ("ops", "checkout", "payments", "inventory")
    )
    caller = principal(OPS_APP)
    authorizer.hand_off(caller, ops, checkout)  # glob check*
    authorizer.hand_off(caller, ops, payments)  # by name
    with pytest.raises(Forbidden, match="may not hand off to 'inventory'"):
        authorizer.hand_off(caller, ops, inventory)
    with pytest.raises(Forbidden, match="may not hand off as agent 'checkout'"):
        authorizer.hand_off(caller, checkout, ops)
    # An operator reads everything but acts as nobody.
    with pytest.raises(Forbidden):
        authorizer.hand_off(Caller("operatorKey"), ops, checkout)
    refusals = [r for r in caplog.records if r.name == "handoff.security"]
    assert len(refusals) == 3 and all("refused" in r.getMessage() for r in refusals)


def test_reading_and_steering():
    authorizer = Authorizer(REGISTRY)
    ops = principal(OPS_APP)
    assert authorizer.may_read(ops, {"ops", "checkout"})
    assert not authorizer.may_read(ops, {"checkout", "payments"})
    assert authorizer.may_read(Caller("operatorKey"), {"checkout"})
    with pytest.raises(Forbidden, match="only an operator"):
        authorizer.require_operator(ops, "replay shared-memory writes", "h")
    authorizer.require_operator(Caller("operatorKey"), "replay shared-memory writes", "h")


def test_may_hand_off_to_must_name_registered_agents_or_globs():
    bad = json.loads(json.dumps(CONFIG))
    bad["agents"][0]["mayHandOffTo"] = ["chekout"]
    with pytest.raises(ConfigError, match="mayHandOffTo: 'chekout'"):
        Registry.from_data(bad)


def test_every_key_setting_is_its_own():
    bad = json.loads(json.dumps(CONFIG))
    bad["agents"][1]["keySetting"] = "KEY_OPS"
    with pytest.raises(ConfigError, match="its own key setting"):
        Registry.from_data(bad)


# ---------------------------------------------------------------- rate limit


def test_rate_limit_is_per_caller_and_says_when_to_retry():
    limiter = RateLimiter(per_minute=60, burst=3)
    a, b = Caller("agentKey", name="ops"), Caller("agentKey", name="checkout")
    for _ in range(3):
        limiter.check(a, now=100.0)
    with pytest.raises(TooManyRequests) as refused:
        limiter.check(a, now=100.0)
    assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "1"
    limiter.check(b, now=100.0)  # another caller has its own bucket
    limiter.check(a, now=101.1)  # one token a second comes back


def test_rate_limit_zero_disables_it():
    limiter = RateLimiter(per_minute=0, burst=1)
    for _ in range(100):
        limiter.check(Caller("local"))
