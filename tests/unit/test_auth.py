import base64
import json

import pytest

from handoff.auth import Caller, authorize_as_agent, caller_from_headers
from handoff.errors import Forbidden, Unauthorized
from handoff.registry import Registry

RID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.App/agents/{}"
REGISTRY = Registry.from_data(
    {
        "agents": [
            {
                "name": "ops",
                "resourceId": RID.format("ops"),
                "callers": ["11111111-aaaa-4aaa-8aaa-000000000001"],
            },
            {"name": "checkout", "resourceId": RID.format("checkout")},
        ]
    }
)


def principal_header(**claims):
    data = {"auth_typ": "aad", "claims": [{"typ": k, "val": v} for k, v in claims.items()]}
    return base64.b64encode(json.dumps(data).encode()).decode()


def test_local_and_function_key_callers_are_trusted():
    assert caller_from_headers({}, in_azure=False) == Caller("local")
    assert caller_from_headers({}, in_azure=True) == Caller("functionKey")
    for caller in (Caller("local"), Caller("functionKey")):
        authorize_as_agent(caller, REGISTRY.by_name("checkout"))


def test_easy_auth_principal_may_act_only_as_agents_that_list_it():
    headers = {
        "X-MS-CLIENT-PRINCIPAL": principal_header(appid="11111111-AAAA-4aaa-8aaa-000000000001", oid="o-1"),
        "X-MS-CLIENT-PRINCIPAL-ID": "o-1",
    }
    caller = caller_from_headers(headers, in_azure=True, keys_enforced=False)
    assert caller.kind == "principal" and caller.principal_id == "o-1"
    authorize_as_agent(caller, REGISTRY.by_name("ops"))  # listed by app id, case-insensitively
    with pytest.raises(Forbidden, match="checkout"):
        authorize_as_agent(caller, REGISTRY.by_name("checkout"))


def test_anonymous_functions_in_azure_require_a_principal():
    with pytest.raises(Unauthorized):
        caller_from_headers({}, in_azure=True, keys_enforced=False)


def test_garbled_principal_header_grants_nothing():
    caller = caller_from_headers({"x-ms-client-principal": "%%%not-base64"}, in_azure=True)
    assert caller.kind == "principal" and caller.principal_id is None
    with pytest.raises(Forbidden):
        authorize_as_agent(caller, REGISTRY.by_name("ops"))
