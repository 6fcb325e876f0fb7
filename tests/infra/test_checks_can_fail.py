"""Each check reports a planted mistake: run on a copy of the templates with one thing broken."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.infra import checks
from tests.infra.test_templates import REPO, settings_kwargs


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the deployment files (azure.yaml, host.json, infra/)."""
    shutil.copytree(REPO / "infra", tmp_path / "infra")
    for name in ("azure.yaml", "host.json"):
        shutil.copy(REPO / name, tmp_path / name)
    return tmp_path


def plant(path: Path, old: str, new: str) -> None:
    """Replace the first ``old`` in ``path`` with ``new`` (``old`` must be there)."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def api(repo: Path) -> Path:
    return repo / "infra" / "app" / "api.bicep"


def storage(repo: Path) -> Path:
    return repo / "infra" / "app" / "storage.bicep"


def main_bicep(repo: Path) -> Path:
    return repo / "infra" / "main.bicep"


def test_copy_is_clean(repo: Path) -> None:
    infra = repo / "infra"
    assert checks.check_no_secrets(infra) == []
    assert checks.check_role_guids(infra) == []
    assert checks.check_app_settings(infra, **settings_kwargs()) == []
    assert checks.check_azure_yaml(repo) == []
    assert checks.check_private_network(infra) == []
    assert checks.check_storage_redundancy(infra) == []
    assert checks.check_checkov_skips(infra) == []


def test_syntax_error_is_reported(repo: Path) -> None:
    plant(api(repo), "resource appServicePlan", "resource appServicePlan = {{")
    assert any("syntax error" in p for p in checks.check_syntax(repo / "infra"))


def test_list_keys_is_reported(repo: Path) -> None:
    plant(
        api(repo),
        "  HANDOFF_CONFIG: handoffConfigPath\n",
        "  HANDOFF_CONFIG: handoffConfigPath\n  STORAGE_KEY: stg.listKeys().keys[0].value\n",
    )
    problems = checks.check_no_secrets(repo / "infra")
    assert any("listKeys" in p for p in problems)


def test_list_keys_function_form_is_reported(repo: Path) -> None:
    main = repo / "infra" / "main.bicep"
    plant(
        main,
        "output AZURE_LOCATION",
        "output X string = listKeys(rg.id, '2023-05-01').keys[0].value\noutput AZURE_LOCATION",
    )
    assert any("listKeys" in p for p in checks.check_no_secrets(repo / "infra"))


def test_account_key_connection_string_is_reported(repo: Path) -> None:
    plant(
        api(repo),
        "  HANDOFF_CONFIG: handoffConfigPath\n",
        "  HANDOFF_CONFIG: handoffConfigPath\n"
        "  HANDOFF_STORAGE: 'DefaultEndpointsProtocol=https;AccountName=x;AccountKey=${stg.id}'\n",
    )
    infra = repo / "infra"
    assert any("AccountKey" in p for p in checks.check_no_secrets(infra))
    assert any(
        "HANDOFF_STORAGE would be a connection string" in p
        for p in checks.check_app_settings(infra, **settings_kwargs())
    )


def test_storage_connection_string_property_is_reported(repo: Path) -> None:
    plant(
        api(repo),
        "  HANDOFF_CONFIG: handoffConfigPath\n",
        "  HANDOFF_CONFIG: stg.properties.connectionString\n",
    )
    assert any("connection string read from" in p for p in checks.check_no_secrets(repo / "infra"))


def test_secret_output_is_reported(repo: Path) -> None:
    plant(
        repo / "infra" / "main.bicep",
        "output AZURE_LOCATION",
        "output STORAGE_KEY string = ''\noutput AZURE_LOCATION",
    )
    assert any("STORAGE_KEY" in p for p in checks.check_no_secrets(repo / "infra"))


def test_wrong_role_guid_is_reported(repo: Path) -> None:
    rbac = repo / "infra" / "app" / "rbac.bicep"
    # Contributor: broad, and not in the reviewed list.
    plant(rbac, "974c5e8b-45b9-4653-ba55-5f855dd0fb88", "b24988ac-6180-42a0-ab88-20f7382dd24c")
    problems = checks.check_role_guids(repo / "infra")
    assert any("b24988ac-6180-42a0-ab88-20f7382dd24c" in p for p in problems)


def test_wrong_role_guid_in_parameters_is_reported(repo: Path) -> None:
    params = repo / "infra" / "main.parameters.json"
    plant(params, "e79298df-d852-4c6d-84f9-5d13249d1e55", "8e3af657-a8ff-443c-a75c-2fe8c4bcb635")
    assert any("8e3af657" in p for p in checks.check_role_guids(repo / "infra"))


def test_role_assignment_name_must_be_guid(repo: Path) -> None:
    plant(
        repo / "infra" / "app" / "sre-agent-access.bicep",
        "name: guid(agent.id, principalId, roleDefinitionId)",
        "name: 'fixed-name'",
    )
    assert any("not guid(" in p for p in checks.check_role_assignments(repo / "infra"))


def test_unreviewed_api_version_is_reported(repo: Path) -> None:
    plant(api(repo), "Microsoft.Web/sites@2024-04-01", "Microsoft.Web/sites@2016-08-01")
    problems = checks.check_resource_types(repo / "infra")
    assert any("Microsoft.Web/sites@2016-08-01" in p for p in problems)


def test_unreviewed_resource_type_is_reported(repo: Path) -> None:
    plant(
        repo / "infra" / "app" / "identity.bicep",
        "output resourceId",
        "resource kv 'Microsoft.KeyVault/vaults@2023-07-01' existing = {\n  name: 'kv'\n}\noutput resourceId",
    )
    assert any("Microsoft.KeyVault/vaults" in p for p in checks.check_resource_types(repo / "infra"))


def test_removed_app_setting_is_reported(repo: Path) -> None:
    plant(api(repo), "  HANDOFF_CONFIG: handoffConfigPath\n", "")
    problems = checks.check_app_settings(repo / "infra", **settings_kwargs())
    assert problems == ["app setting HANDOFF_CONFIG is read by the code but not set"]


def test_removed_storage_setting_is_reported(repo: Path) -> None:
    plant(api(repo), "  HANDOFF_STORAGE__clientId: identityClientId\n", "")
    problems = checks.check_app_settings(repo / "infra", **settings_kwargs())
    assert "app setting HANDOFF_STORAGE__clientId is read by the code but not set" in problems


def test_new_deploy_setting_in_the_code_is_reported(repo: Path) -> None:
    kwargs = settings_kwargs()
    kwargs["required"] = [*kwargs["required"], "HANDOFF_SOMETHING_NEW"]
    kwargs["known"] = [*kwargs["known"], "HANDOFF_SOMETHING_NEW"]
    problems = checks.check_app_settings(repo / "infra", **kwargs)
    assert problems == ["app setting HANDOFF_SOMETHING_NEW is read by the code but not set"]


def test_unread_app_setting_is_reported(repo: Path) -> None:
    plant(
        api(repo),
        "  HANDOFF_CONFIG: handoffConfigPath\n",
        "  HANDOFF_CONFIG: handoffConfigPath\n  HANDOFF_TYPO: 'x'\n",
    )
    problems = checks.check_app_settings(repo / "infra", **settings_kwargs())
    assert problems == ["app setting HANDOFF_TYPO is set but nothing reads it"]


def test_platform_setting_is_reported(repo: Path) -> None:
    plant(
        api(repo),
        "  HANDOFF_CONFIG: handoffConfigPath\n",
        "  HANDOFF_CONFIG: handoffConfigPath\n  WEBSITE_HOSTNAME: 'x'\n",
    )
    problems = checks.check_app_settings(repo / "infra", **settings_kwargs())
    assert problems == ["app setting WEBSITE_HOSTNAME is set by the platform, not the templates"]


def test_key_based_credential_is_reported(repo: Path) -> None:
    plant(api(repo), "HANDOFF_STORAGE__credential: 'managedidentity'", "HANDOFF_STORAGE__credential: 'key'")
    problems = checks.check_app_settings(repo / "infra", **settings_kwargs())
    assert any("HANDOFF_STORAGE__credential must be 'managedidentity'" in p for p in problems)


def test_conditional_app_settings_are_reported(repo: Path) -> None:
    plant(api(repo), "properties: appSettings\n", "properties: easyAuthEnabled ? appSettings : {}\n")
    _, problems = checks.app_settings(repo / "infra")
    assert any("unconditional" in p for p in problems)


def test_missing_queue_is_reported(repo: Path) -> None:
    plant(repo / "infra" / "main.bicep", "  'handoff-deliveries-poison'\n", "")
    problems = checks.check_storage_names(
        repo / "infra",
        queues=["handoff-deliveries", "handoff-deliveries-poison"],
        tables=["handoffs", "handofflinks"],
    )
    assert any("queueNames" in p for p in problems)


def test_new_table_in_the_code_is_reported(repo: Path) -> None:
    problems = checks.check_storage_names(
        repo / "infra",
        queues=["handoff-deliveries", "handoff-deliveries-poison"],
        tables=["handoffs", "handofflinks", "handoffidempotency"],
    )
    assert any("tableNames" in p and "handoffidempotency" in p for p in problems)


def test_shared_key_access_is_reported(repo: Path) -> None:
    plant(
        repo / "infra" / "app" / "storage.bicep", "allowSharedKeyAccess: false", "allowSharedKeyAccess: true"
    )
    assert any("allowSharedKeyAccess" in p for p in checks.check_hardening(repo / "infra"))


def test_missing_output_and_scope_are_reported(repo: Path) -> None:
    main = repo / "infra" / "main.bicep"
    plant(main, "targetScope = 'subscription'", "targetScope = 'resourceGroup'")
    plant(main, "output BROKER_PRINCIPAL_ID", "output BROKER_PRINCIPAL")
    problems = checks.check_main(repo / "infra")
    assert "main.bicep: targetScope must be 'subscription'" in problems
    assert "main.bicep: output BROKER_PRINCIPAL_ID missing" in problems


def test_missing_module_is_reported(repo: Path) -> None:
    (repo / "infra" / "app" / "alerts.bicep").unlink()
    assert any("alerts.bicep" in p for p in checks.check_module_paths(repo / "infra"))


def test_unknown_parameter_is_reported(repo: Path) -> None:
    path = repo / "infra" / "main.parameters.json"
    data = json.loads(path.read_text())
    data["parameters"]["notDeclared"] = {"value": "x"}
    path.write_text(json.dumps(data))
    assert checks.check_parameters_file(repo / "infra") == [
        "main.parameters.json names undeclared parameter notDeclared"
    ]


def test_invalid_parameters_json_is_reported(repo: Path) -> None:
    plant(repo / "infra" / "main.parameters.json", "{", "{,")
    assert any("not valid JSON" in p for p in checks.check_parameters_file(repo / "infra"))


def test_missing_service_project_is_reported(repo: Path) -> None:
    plant(repo / "azure.yaml", "project: .", "project: ./src")
    assert any("project directory" in p for p in checks.check_azure_yaml(repo))


def test_wrong_service_host_is_reported(repo: Path) -> None:
    plant(repo / "azure.yaml", "host: function", "host: appservice")
    assert any("host: function" in p for p in checks.check_azure_yaml(repo))


def test_old_tls_version_is_reported(repo: Path) -> None:
    plant(storage(repo), "minimumTlsVersion: 'TLS1_2'", "minimumTlsVersion: 'TLS1_0'")
    assert any("minimumTlsVersion" in p for p in checks.check_hardening(repo / "infra"))


def test_ftp_is_reported(repo: Path) -> None:
    plant(api(repo), "ftpsState: 'Disabled'", "ftpsState: 'AllAllowed'")
    assert any("ftpsState" in p for p in checks.check_hardening(repo / "infra"))


def test_vnet_off_by_default_is_reported(repo: Path) -> None:
    plant(main_bicep(repo), "param vnetEnabled bool = true", "param vnetEnabled bool = false")
    assert "main.bicep: vnetEnabled must default to true" in checks.check_private_network(repo / "infra")


def test_vnet_default_in_parameters_file_is_reported(repo: Path) -> None:
    plant(repo / "infra" / "main.parameters.json", "${VNET_ENABLED=true}", "${VNET_ENABLED=false}")
    problems = checks.check_private_network(repo / "infra")
    assert "main.parameters.json: vnetEnabled must be ${VNET_ENABLED=true}" in problems


def test_public_storage_with_vnet_is_reported(repo: Path) -> None:
    plant(
        storage(repo),
        "publicNetworkAccess: vnetEnabled ? 'Disabled' : 'Enabled'",
        "publicNetworkAccess: 'Enabled'",
    )
    problems = checks.check_private_network(repo / "infra")
    assert any("publicNetworkAccess must be vnetEnabled ? 'Disabled'" in p for p in problems)


def test_storage_firewall_allowing_with_vnet_is_reported(repo: Path) -> None:
    plant(
        storage(repo),
        "defaultAction: vnetEnabled ? 'Deny' : 'Allow'",
        "defaultAction: vnetEnabled ? 'Allow' : 'Deny'",
    )
    problems = checks.check_private_network(repo / "infra")
    assert any("networkAcls.defaultAction must be vnetEnabled ? 'Deny'" in p for p in problems)


def test_missing_table_private_endpoint_is_reported(repo: Path) -> None:
    plant(main_bicep(repo), "  'queue'\n  'table'\n", "  'queue'\n")
    problems = checks.check_private_network(repo / "infra")
    assert any("storagePrivateEndpointServices" in p for p in problems)


def test_private_endpoint_for_one_fixed_service_is_reported(repo: Path) -> None:
    path = repo / "infra" / "app" / "storage-private-endpoint.bicep"
    plant(path, "groupIds: [\n            service\n", "groupIds: [\n            'blob'\n")
    problems = checks.check_private_network(repo / "infra")
    assert any("groupIds are not [service]" in p for p in problems)


def test_app_outside_the_vnet_is_reported(repo: Path) -> None:
    plant(
        api(repo),
        "    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId\n",
        "",
    )
    problems = checks.check_private_network(repo / "infra")
    assert any("has no virtualNetworkSubnetId" in p for p in problems)


def test_missing_subnet_delegation_is_reported(repo: Path) -> None:
    plant(
        repo / "infra" / "app" / "vnet.bicep", "'Microsoft.App/environments'", "'Microsoft.Web/serverFarms'"
    )
    problems = checks.check_private_network(repo / "infra")
    assert any("Microsoft.App/environments" in p for p in problems)


def test_locally_redundant_default_is_reported(repo: Path) -> None:
    plant(storage(repo), "param skuName string = 'Standard_ZRS'", "param skuName string = 'Standard_LRS'")
    problems = checks.check_storage_redundancy(repo / "infra")
    assert any("must default to a replicated SKU" in p for p in problems)


def test_fixed_storage_sku_is_reported(repo: Path) -> None:
    plant(storage(repo), "    name: skuName\n", "    name: 'Standard_LRS'\n")
    problems = checks.check_storage_redundancy(repo / "infra")
    assert any("sku.name must be a parameter" in p for p in problems)


def test_premium_storage_sku_is_reported(repo: Path) -> None:
    plant(storage(repo), "  'Standard_RAGZRS'\n])", "  'Standard_RAGZRS'\n  'Premium_LRS'\n])")
    problems = checks.check_storage_redundancy(repo / "infra")
    assert any("must be @allowed" in p for p in problems)


def test_checkov_skip_without_reason_is_reported(repo: Path) -> None:
    text = storage(repo).read_text()
    start = text.index("// checkov:skip=CKV_AZURE_206:")
    end = text.index("\n", start)
    storage(repo).write_text(text[:start] + "// checkov:skip=CKV_AZURE_206:ok" + text[end:])
    problems = checks.check_checkov_skips(repo / "infra")
    assert any("CKV_AZURE_206 is skipped without a reason" in p for p in problems)


def test_checkov_skip_outside_a_resource_is_reported(repo: Path) -> None:
    plant(
        main_bicep(repo),
        "targetScope = 'subscription'",
        "targetScope = 'subscription'\n// checkov:skip=CKV_AZURE_35:" + "a long enough reason " * 3,
    )
    problems = checks.check_checkov_skips(repo / "infra")
    assert any("skip is outside a resource" in p for p in problems)


def test_checkov_skip_in_a_hash_comment_is_reported(repo: Path) -> None:
    plant(storage(repo), "  // checkov:skip=CKV_AZURE_206:", "  #checkov:skip=CKV_AZURE_206:")
    problems = checks.check_checkov_skips(repo / "infra")
    assert any("outside a // comment" in p for p in problems)


def test_checkov_skip_of_several_checks_is_reported(repo: Path) -> None:
    plant(storage(repo), "// checkov:skip=CKV_AZURE_206:", "// checkov:skip=CKV_AZURE_206,CKV_AZURE_35:")
    problems = checks.check_checkov_skips(repo / "infra")
    assert any("not '// checkov:skip=CKV_" in p for p in problems)
