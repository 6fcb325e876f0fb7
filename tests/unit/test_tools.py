"""The MCP tools' domain side: allowed hosts from the settings, schemas from the REST models and the
handoff contract, error text."""

from __future__ import annotations

from handoff.domain.errors import Conflict, FieldError
from handoff.domain.listing import HandoffList
from handoff.domain.models import HandbackRequest, HandoffRequest
from handoff.entrypoints.contract_schemas import bundled_schema
from handoff.entrypoints.mcp_tools import TOOLS, HandbackArguments, HandoffRef, allowed_hosts, problem_text
from handoff.settings import Settings


def test_loopback_only_by_default():
    hosts, origins = allowed_hosts(Settings())

    assert {"127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"} <= set(hosts)
    assert not any("azurewebsites" in host for host in hosts)
    assert "http://localhost:*" in origins


def test_azure_name_public_url_and_extra_hosts():
    settings = Settings.from_env(
        {
            "WEBSITE_HOSTNAME": "func-api-abc.azurewebsites.net",
            "HANDOFF_PUBLIC_URL": "https://handoff.contoso.com:8443/base",
            "HANDOFF_MCP_ALLOWED_HOSTS": " gw.contoso.com , ,apim.example.net:443",
        }
    )

    hosts, origins = allowed_hosts(settings)

    for host in (
        "func-api-abc.azurewebsites.net",
        "func-api-abc.azurewebsites.net:*",
        "handoff.contoso.com:8443",
        "handoff.contoso.com",
        "gw.contoso.com",
        "apim.example.net:443",
    ):
        assert host in hosts
    assert "" not in hosts
    assert "https://func-api-abc.azurewebsites.net" in origins
    assert "http://func-api-abc.azurewebsites.net" not in origins


def test_tool_schemas_are_the_rest_models():
    by_name = {tool.name: tool for tool in TOOLS}

    create = by_name["handoff_create"].input_schema()["properties"]
    rest = HandoffRequest.model_json_schema(by_alias=True)["properties"]
    assert {name: create[name] for name in rest} == rest
    assert set(create) == set(rest) | {"idempotencyKey"}
    hand_back = by_name["handoff_hand_back"].input_schema()["properties"]
    assert set(hand_back) == set(HandbackRequest.model_json_schema(by_alias=True)["properties"]) | {
        "handoffId"
    }
    args = HandbackArguments.model_validate(
        {"handoffId": "h1", "agent": "checkout", "outcome": "mitigated", "summary": "Rolled back"}
    )
    assert args.request() == HandbackRequest(agent="checkout", outcome="mitigated", summary="Rolled back")


def test_contract_tools_publish_the_contract_schemas():
    by_name = {tool.name: tool for tool in TOOLS}

    create = by_name["handoff_create"].input_schema()
    idempotency_key = create["properties"].pop("idempotencyKey")
    assert create == bundled_schema("handoff-request")
    assert idempotency_key["anyOf"][0] == {"type": "string", "minLength": 1, "maxLength": 200}
    hand_back = by_name["handoff_hand_back"].input_schema()
    handoff_id = hand_back["properties"].pop("handoffId")
    assert hand_back["required"].pop() == "handoffId"
    assert hand_back == bundled_schema("handback-request")
    assert handoff_id["type"] == "string"
    outputs = {tool.name: tool.output_schema() for tool in TOOLS}
    status = bundled_schema("handoff-status")
    assert outputs == {
        "handoff_create": status,
        "handoff_get": status,
        "handoff_hand_back": status,
        "handoff_links": None,
        "handoff_list_agents": None,
        "handoff_history": None,
        "handoff_list": HandoffList.model_json_schema(by_alias=True, mode="serialization"),
    }
    # Other tools keep their models' schemas.
    assert by_name["handoff_get"].input_schema() == HandoffRef.model_json_schema(by_alias=True)


def test_problem_text_names_title_status_detail_and_fields():
    problem = Conflict(
        "chain r1 is too deep", errors=[FieldError(field="/parentHandoffId", message="limit 5")]
    )

    assert problem_text(problem) == "Conflict (409): chain r1 is too deep\n- /parentHandoffId: limit 5"
