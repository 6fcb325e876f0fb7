"""The fake ARM endpoint for Microsoft.App/agents resources."""

from __future__ import annotations

from .conftest import ARM_SCOPE

API = {"api-version": "2025-05-01-preview"}


def test_lookup_returns_agent_endpoint(stack, http, auth):
    agent = stack.agents["checkout"]
    response = http.get(f"{stack.arm_url}{agent.resource_id}", params=API, headers=auth(ARM_SCOPE))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == agent.resource_id
    assert body["name"] == "checkout-agent"
    assert body["type"] == "Microsoft.App/agents"
    assert body["properties"]["agentEndpoint"] == agent.endpoint
    assert body["properties"]["provisioningState"] == "Succeeded"
    assert stack.arm.request_count == 1


def test_resource_ids_match_case_insensitively(stack, http, auth):
    agent = stack.agents["ops"]
    upper = agent.resource_id.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/")
    response = http.get(f"{stack.arm_url}{upper}", params=API, headers=auth(ARM_SCOPE))
    assert response.status_code == 200
    assert response.json()["properties"]["agentEndpoint"] == agent.endpoint
    mixed = agent.resource_id.replace("resourceGroups", "resourcegroups").replace(
        "Microsoft.App", "microsoft.app"
    )
    assert http.get(f"{stack.arm_url}{mixed}", params=API, headers=auth(ARM_SCOPE)).status_code == 200


def test_arm_needs_an_arm_token(stack, http, auth):
    url = f"{stack.arm_url}{stack.agents['ops'].resource_id}"
    missing = http.get(url, params=API)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "AuthenticationFailed"
    wrong = http.get(url, params=API, headers=auth())  # an azuresre.dev token
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"
    assert stack.arm.request_count == 2


def test_api_version_is_required(stack, http, auth):
    url = f"{stack.arm_url}{stack.agents['ops'].resource_id}"
    missing = http.get(url, headers=auth(ARM_SCOPE))
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "MissingApiVersionParameter"
    unsupported = http.get(url, params={"api-version": "1999-01-01"}, headers=auth(ARM_SCOPE))
    assert unsupported.status_code == 400
    assert unsupported.json()["error"]["code"] == "NoRegisteredProviderFound"


def test_unknown_agent_is_404(stack, http, auth):
    url = (
        f"{stack.arm_url}/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-local"
        "/providers/Microsoft.App/agents/ghost"
    )
    response = http.get(url, params=API, headers=auth(ARM_SCOPE))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "ResourceNotFound"
    other = http.get(f"{stack.arm_url}/subscriptions/x/resourceGroups/y", params=API, headers=auth(ARM_SCOPE))
    assert other.status_code == 404


def test_register_and_faults(stack, http, auth):
    resource_id = "/subscriptions/s/resourceGroups/r/providers/Microsoft.App/agents/extra"
    created = http.post(
        f"{stack.arm_url}/_fake/resources",
        json={"resourceId": resource_id, "agentEndpoint": "https://x.azuresre.ai"},
    )
    assert created.status_code == 201
    stack.arm.inject("GET", "/subscriptions/**", 503)
    assert http.get(f"{stack.arm_url}{resource_id}", params=API, headers=auth(ARM_SCOPE)).status_code == 503
    found = http.get(f"{stack.arm_url}{resource_id}", params=API, headers=auth(ARM_SCOPE))
    assert found.json()["properties"]["agentEndpoint"] == "https://x.azuresre.ai"
    stack.arm.unregister(resource_id)
    assert http.get(f"{stack.arm_url}{resource_id}", params=API, headers=auth(ARM_SCOPE)).status_code == 404
