"""The deployment templates pass every static check (see checks.py for what each one means)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from handoff import settings
from tests.infra import checks

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"


def settings_kwargs() -> dict[str, list[str]]:
    """The app-setting names of the settings model, read at test time."""
    model = settings.Settings
    return {
        "required": model.env_names(deploy=True),
        "known": model.env_names(),
        "platform": model.env_names(platform=True),
        "connection_strings": ["AzureWebJobsStorage", settings.STORAGE_CONNECTION],
    }


@pytest.mark.parametrize(
    "check",
    [
        checks.check_syntax,
        checks.check_module_paths,
        checks.check_no_secrets,
        checks.check_role_guids,
        checks.check_role_assignments,
        checks.check_resource_types,
        checks.check_main,
        checks.check_hardening,
        checks.check_parameters_file,
        checks.check_private_network,
        checks.check_storage_redundancy,
        checks.check_checkov_skips,
    ],
    ids=lambda f: f.__name__,
)
def test_infra_check(check: Callable[[Path], list[str]]) -> None:
    assert check(INFRA) == []


def test_every_template_is_parsed() -> None:
    names = {f.path.relative_to(INFRA).as_posix() for f in checks.bicep_files(INFRA)}
    assert {
        "main.bicep",
        "app/api.bicep",
        "app/rbac.bicep",
        "app/storage.bicep",
        "app/vnet.bicep",
        "app/storage-private-endpoint.bicep",
    } <= names


def test_app_settings_match_the_settings_model() -> None:
    assert checks.check_app_settings(INFRA, **settings_kwargs()) == []


def test_app_settings_cover_every_deploy_setting() -> None:
    found, problems = checks.app_settings(INFRA)
    assert problems == []
    assert set(settings.Settings.env_names(deploy=True)) <= set(found)


def test_queues_and_tables_match_the_app() -> None:
    problems = checks.check_storage_names(
        INFRA, queues=settings.STORAGE_QUEUES, tables=settings.STORAGE_TABLES
    )
    assert problems == []


def test_azure_yaml_names_an_existing_service() -> None:
    assert checks.check_azure_yaml(REPO) == []


def test_role_allow_list_names_are_documented() -> None:
    assert all(checks.GUID.match(guid) for guid in checks.ROLE_DEFINITIONS)
    found = {r.type for r in checks.resources(checks.bicep_files(INFRA))}
    assert "Microsoft.Authorization/roleAssignments" in found
    text = "\n".join(f.text for f in checks.bicep_files(INFRA))
    for guid, name in checks.ROLE_DEFINITIONS.items():
        if name != "SRE Agent Standard User":  # documented alternative, not assigned by default
            assert guid in text, f"{name} is never assigned"


def test_deploy_guide_documents_every_azd_setting() -> None:
    params = (INFRA / "main.parameters.json").read_text()
    guide = (REPO / "docs" / "deploy.md").read_text()
    names = set(re.findall(r"\$\{([A-Z0-9_]+)", params)) - {
        "AZURE_ENV_NAME",
        "AZURE_LOCATION",
        "AZURE_PRINCIPAL_TYPE",
    }
    assert names
    assert sorted(n for n in names if n not in guide) == []
