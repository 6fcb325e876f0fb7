"""Static checks of the deployment templates (azure.yaml, infra/*.bicep, infra/main.parameters.json).

The Bicep compiler cannot run here, so these checks parse every template with tree-sitter-bicep and
inspect the parse tree. Every check takes a directory and returns a list of problems (empty when the
templates are fine), so the tests can run it both on the real templates and on a planted-bad copy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import tree_sitter
import tree_sitter_bicep

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# Built-in Azure role definitions the templates may assign (reviewed; least privilege for each job).
ROLE_DEFINITIONS: dict[str, str] = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "acdd72a7-3385-48ef-bd42-f606fba81ae7": "Reader",
    "e79298df-d852-4c6d-84f9-5d13249d1e55": "SRE Agent Administrator",
    "2d84a65a-63b2-4343-bbb6-31105d857bc1": "SRE Agent Standard User",
}

# GUIDs that are not role definitions but may appear in the templates.
OTHER_KNOWN_GUIDS: dict[str, str] = {
    "461e8683-5575-4561-ac7f-899cc907d62a": "Azure Monitor Action Groups application (secure webhook caller)",
}

# Reviewed resource types and API versions. Adding one means checking it against the ARM reference.
ALLOWED_RESOURCE_TYPES: dict[str, str] = {
    "Microsoft.Resources/resourceGroups": "2021-04-01",
    "Microsoft.ManagedIdentity/userAssignedIdentities": "2023-01-31",
    "Microsoft.Storage/storageAccounts": "2023-05-01",
    "Microsoft.Storage/storageAccounts/blobServices": "2023-05-01",
    "Microsoft.Storage/storageAccounts/blobServices/containers": "2023-05-01",
    "Microsoft.Storage/storageAccounts/queueServices": "2023-05-01",
    "Microsoft.Storage/storageAccounts/queueServices/queues": "2023-05-01",
    "Microsoft.Storage/storageAccounts/tableServices": "2023-05-01",
    "Microsoft.Storage/storageAccounts/tableServices/tables": "2023-05-01",
    "Microsoft.OperationalInsights/workspaces": "2023-09-01",
    "Microsoft.Insights/components": "2020-02-02",
    "Microsoft.Insights/actionGroups": "2023-01-01",
    # The operations workbook and its log alert rules (app/operations.bicep).
    "Microsoft.Insights/workbooks": "2023-06-01",
    "Microsoft.Insights/scheduledQueryRules": "2023-12-01",
    "Microsoft.Web/serverfarms": "2024-04-01",
    "Microsoft.Web/sites": "2024-04-01",
    "Microsoft.Web/sites/config": "2024-04-01",
    "Microsoft.Web/sites/basicPublishingCredentialsPolicies": "2024-04-01",
    "Microsoft.Authorization/roleAssignments": "2022-04-01",
    "Microsoft.App/agents": "2025-05-01-preview",
    # Virtual network, private endpoints and private DNS of the vnetEnabled option.
    "Microsoft.Network/virtualNetworks": "2024-05-01",
    "Microsoft.Network/networkSecurityGroups": "2024-05-01",
    "Microsoft.Network/privateEndpoints": "2024-05-01",
    "Microsoft.Network/privateEndpoints/privateDnsZoneGroups": "2024-05-01",
    "Microsoft.Network/privateDnsZones": "2024-06-01",
    "Microsoft.Network/privateDnsZones/virtualNetworkLinks": "2024-06-01",
}

# App settings read by the Functions host and Application Insights rather than by the broker's code.
RUNTIME_SETTINGS: frozenset[str] = frozenset(
    {
        "AzureWebJobsStorage__credential",
        "AzureWebJobsStorage__clientId",
        "AzureWebJobsStorage__blobServiceUri",
        "AzureWebJobsStorage__queueServiceUri",
        "AzureWebJobsStorage__tableServiceUri",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    }
)

# Outputs azd and the docs rely on.
REQUIRED_OUTPUTS: frozenset[str] = frozenset(
    {
        "AZURE_LOCATION",
        "AZURE_TENANT_ID",
        "RESOURCE_GROUP",
        "SERVICE_API_NAME",
        "AZURE_FUNCTION_NAME",
        "BROKER_BASE_URL",
        "BROKER_PRINCIPAL_ID",
        "BROKER_ALERTS_URL",
    }
)

SECRET_TEXT = re.compile(r"AccountKey|DefaultEndpointsProtocol|SharedAccessSignature", re.IGNORECASE)
SECRET_OUTPUT_NAME = re.compile(r"key|secret|password|connectionstring|sas|token", re.IGNORECASE)


@cache
def _parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))


@dataclass(frozen=True)
class BicepFile:
    """One parsed template."""

    path: Path
    tree: tree_sitter.Tree

    @property
    def root(self) -> tree_sitter.Node:
        """Root node of the parse tree."""
        return self.tree.root_node

    @property
    def text(self) -> str:
        """Source text."""
        return _text(self.root)


@dataclass(frozen=True)
class Resource:
    """A resource declaration with its full type (child types resolved against their parent)."""

    file: BicepFile
    node: tree_sitter.Node
    symbol: str
    type: str
    api_version: str

    @property
    def body(self) -> tree_sitter.Node | None:
        """The object literal of the declaration (the loop body for a `for` loop)."""
        return _declaration_body(self.node)


def _text(node: tree_sitter.Node) -> str:
    return (node.text or b"").decode()


def _source(node: tree_sitter.Node | None) -> str:
    """Source text of ``node``; empty for None."""
    return _text(node) if node is not None else ""


def _walk(node: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
    yield node
    for child in node.children:
        yield from _walk(child)


def _string_value(node: tree_sitter.Node | None) -> str | None:
    """The value of a plain string literal, or None for anything else (interpolations included)."""
    if node is None or node.type != "string":
        return None
    parts = []
    for child in node.children:
        if child.type == "interpolation":
            return None
        if child.type in ("string_content", "escape_sequence"):
            parts.append(_text(child))
    return "".join(parts)


def _first_child(node: tree_sitter.Node, *types: str) -> tree_sitter.Node | None:
    return next((c for c in node.children if c.type in types), None)


def _declaration_name(node: tree_sitter.Node) -> str:
    ident = _first_child(node, "identifier")
    return _text(ident) if ident is not None else ""


def _declaration_body(node: tree_sitter.Node) -> tree_sitter.Node | None:
    """Object literal of a resource/module declaration, looking through `if (...)` and `for` forms."""
    for child in node.children:
        if child.type == "object":
            return child
        if child.type in ("for_statement", "if_statement"):
            found = _declaration_body(child)
            if found is not None:
                return found
    return None


def _properties(obj: tree_sitter.Node | None) -> dict[str, tree_sitter.Node]:
    """Key -> value node of an object literal (keys may be identifiers or strings)."""
    result: dict[str, tree_sitter.Node] = {}
    if obj is None or obj.type != "object":
        return result
    for prop in obj.children:
        if prop.type != "object_property":
            continue
        named = [c for c in prop.children if c.type not in (":",)]
        if len(named) < 2:
            continue
        key_node, value = named[0], named[-1]
        key = _string_value(key_node) if key_node.type == "string" else _text(key_node)
        if key is not None:
            result[key] = value
    return result


def bicep_files(infra_dir: Path) -> list[BicepFile]:
    """Parse every ``.bicep`` file under ``infra_dir``."""
    return [
        BicepFile(path=path, tree=_parser().parse(path.read_bytes()))
        for path in sorted(infra_dir.rglob("*.bicep"))
    ]


def _declarations(file: BicepFile, kind: str) -> Iterator[tree_sitter.Node]:
    return (n for n in _walk(file.root) if n.type == kind)


def _variable(file: BicepFile, name: str) -> tree_sitter.Node | None:
    """Value node of ``var <name> = ...`` in ``file``."""
    for decl in _declarations(file, "variable_declaration"):
        if _declaration_name(decl) == name:
            return decl.children[-1]
    return None


def _parameter_names(file: BicepFile) -> set[str]:
    return {_declaration_name(d) for d in _declarations(file, "parameter_declaration")}


def resources(files: Iterable[BicepFile]) -> list[Resource]:
    """Every resource declaration (``existing`` ones included), with nested child types resolved."""
    found: list[Resource] = []

    def visit(file: BicepFile, node: tree_sitter.Node, parent: Resource | None) -> None:
        for child in node.children:
            if child.type == "resource_declaration":
                type_text = _string_value(_first_child(child, "string")) or ""
                if "@" in type_text:
                    rtype, version = type_text.split("@", 1)
                elif parent is not None:
                    rtype, version = f"{parent.type}/{type_text}", parent.api_version
                else:
                    rtype, version = type_text, ""
                res = Resource(file, child, _declaration_name(child), rtype, version)
                found.append(res)
                visit(file, child, res)
            else:
                visit(file, child, parent)

    for file in files:
        visit(file, file.root, None)
    return found


# --- checks -----------------------------------------------------------------------------------------------


def check_syntax(infra_dir: Path) -> list[str]:
    """Every ``.bicep`` file parses without error or missing nodes."""
    problems = []
    files = bicep_files(infra_dir)
    if not files:
        problems.append(f"no .bicep files under {infra_dir}")
    for file in files:
        for node in _walk(file.root):
            if node.type == "ERROR" or node.is_missing:
                line, col = node.start_point
                problems.append(
                    f"{file.path.name}:{line + 1}:{col + 1}: syntax error near {_text(node)[:40]!r}"
                )
                break
    return problems


def check_module_paths(infra_dir: Path) -> list[str]:
    """Every local module a template references exists."""
    problems = []
    for file in bicep_files(infra_dir):
        for decl in _declarations(file, "module_declaration"):
            target = _string_value(_first_child(decl, "string")) or ""
            if ":" in target:
                problems.append(f"{file.path.name}: registry module {target!r} cannot be checked here")
            elif not (file.path.parent / target).is_file():
                problems.append(f"{file.path.name}: module {target!r} not found")
    return problems


def check_no_secrets(infra_dir: Path) -> list[str]:
    """No ``list*()`` key functions, account keys, SAS, storage connection strings or secret outputs."""
    problems = []
    files = bicep_files(infra_dir)
    insights_symbols = {r.symbol for r in resources(files) if r.type == "Microsoft.Insights/components"}
    json_files = sorted(infra_dir.rglob("*.json"))
    for path, text in [(f.path, f.text) for f in files] + [(p, p.read_text()) for p in json_files]:
        if re.search(r"\blist\w*\(", text, re.IGNORECASE):
            problems.append(f"{path.name}: calls a list*() function (listKeys and friends are not allowed)")
        for found in sorted({m.group(0) for m in SECRET_TEXT.finditer(text)}):
            problems.append(f"{path.name}: contains {found!r}")
    for file in files:
        for node in _walk(file.root):
            if node.type == "call_expression":
                function = node.child_by_field_name("function")
                name = _text(function).rsplit(".", 1)[-1] if function is not None else ""
                if name.lower().startswith("list"):
                    problems.append(f"{file.path.name}: call to {name}()")
            elif node.type == "member_expression":
                prop = node.child_by_field_name("property")
                if prop is None or _text(prop).lower() != "connectionstring":
                    continue
                root = node
                while root.type == "member_expression" and root.child_by_field_name("object") is not None:
                    root = root.child_by_field_name("object")  # type: ignore[assignment]
                if _text(root) not in insights_symbols:
                    problems.append(f"{file.path.name}: connection string read from {_text(node)!r}")
            elif node.type == "object_property":
                key = node.children[0]
                key_text = _string_value(key) if key.type == "string" else _text(key)
                if key_text and key_text.lower() == "connectionstring":
                    problems.append(f"{file.path.name}: sets a connectionString property")
        for decl in _declarations(file, "output_declaration"):
            name = _declaration_name(decl)
            if SECRET_OUTPUT_NAME.search(name):
                problems.append(f"{file.path.name}: output {name} looks like a secret")
    return problems


def check_role_guids(infra_dir: Path) -> list[str]:
    """Every GUID in the templates is a documented built-in role (or another reviewed well-known id)."""
    problems = []
    known = {**ROLE_DEFINITIONS, **OTHER_KNOWN_GUIDS}
    for file in bicep_files(infra_dir):
        for node in _walk(file.root):
            value = _string_value(node) if node.type == "string" else None
            if value and GUID.match(value) and value.lower() not in known:
                problems.append(f"{file.path.name}: unknown GUID {value} (not a reviewed built-in role)")
    params = infra_dir / "main.parameters.json"
    if params.is_file():
        for guid in re.findall(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", params.read_text()):
            if guid.lower() not in known:
                problems.append(f"main.parameters.json: unknown GUID {guid}")
    return problems


def check_role_assignments(infra_dir: Path) -> list[str]:
    """Role assignments are named ``guid(scope, principal, role)`` and use a built-in role definition id."""
    problems = []
    for res in resources(bicep_files(infra_dir)):
        if res.type != "Microsoft.Authorization/roleAssignments":
            continue
        where = f"{res.file.path.name}: role assignment {res.symbol}"
        props = _properties(res.body)
        name = props.get("name")
        function = name.child_by_field_name("function") if name is not None else None
        if name is None or name.type != "call_expression" or function is None or _text(function) != "guid":
            problems.append(f"{where}: name is not guid(...)")
        else:
            args = name.child_by_field_name("arguments")
            arg_count = len([c for c in args.children if c.type not in ("(", ")", ",")]) if args else 0
            if arg_count != 3:
                problems.append(
                    f"{where}: name is guid() of {arg_count} values, not (scope, principal, role)"
                )
        inner = _properties(props.get("properties"))
        role = inner.get("roleDefinitionId")
        if role is None or not _text(role).startswith(
            "subscriptionResourceId('Microsoft.Authorization/roleDefinitions'"
        ):
            problems.append(f"{where}: roleDefinitionId is not subscriptionResourceId(...roleDefinitions...)")
        if "principalType" not in inner:
            problems.append(f"{where}: principalType missing")
    return problems


def check_resource_types(infra_dir: Path) -> list[str]:
    """Every resource type@apiVersion is in the reviewed allow-list."""
    problems = []
    for res in resources(bicep_files(infra_dir)):
        allowed = ALLOWED_RESOURCE_TYPES.get(res.type)
        if allowed is None:
            problems.append(f"{res.file.path.name}: resource type {res.type} is not in the reviewed list")
        elif res.api_version != allowed:
            problems.append(
                f"{res.file.path.name}: {res.type}@{res.api_version} (reviewed version is {allowed})"
            )
    return problems


def _object_keys(file: BicepFile, node: tree_sitter.Node, problems: list[str]) -> dict[str, tree_sitter.Node]:
    """Keys of an object built from literals, variables and ``union(...)``."""
    if node.type == "object":
        return _properties(node)
    if node.type == "identifier":
        value = _variable(file, _text(node))
        if value is None:
            problems.append(f"{file.path.name}: app settings use {_text(node)!r}, which is not a var")
            return {}
        return _object_keys(file, value, problems)
    if node.type == "call_expression" and _text(node.child_by_field_name("function") or node) == "union":
        merged: dict[str, tree_sitter.Node] = {}
        args = node.child_by_field_name("arguments")
        for arg in args.children if args else []:
            if arg.type not in ("(", ")", ","):
                merged.update(_object_keys(file, arg, problems))
        return merged
    problems.append(
        f"{file.path.name}: app settings must be unconditional literals, found {_text(node)[:60]!r}"
    )
    return {}


def app_settings(infra_dir: Path) -> tuple[dict[str, str], list[str]]:
    """App settings set by the templates (name -> value source text) and problems found reading them."""
    problems: list[str] = []
    settings: dict[str, str] = {}
    found = False
    for res in resources(bicep_files(infra_dir)):
        if res.type != "Microsoft.Web/sites/config":
            continue
        props = _properties(res.body)
        if _string_value(props.get("name")) != "appsettings":
            continue
        found = True
        value = props.get("properties")
        if value is None:
            problems.append(f"{res.file.path.name}: appsettings without properties")
            continue
        settings.update({k: _text(v) for k, v in _object_keys(res.file, value, problems).items()})
    if not found:
        problems.append("no Microsoft.Web/sites/config 'appsettings' resource found")
    return settings, problems


def check_app_settings(
    infra_dir: Path,
    *,
    required: Iterable[str],
    known: Iterable[str],
    platform: Iterable[str],
    connection_strings: Iterable[str],
) -> list[str]:
    """App settings match the code both ways.

    ``required``: names the templates must set. ``known``: every name the code reads. ``platform``: names
    the platform sets (the templates must not). ``connection_strings``: plain connection-string names that
    must not be set (identity-based ``__`` settings are used instead).
    """
    settings, problems = app_settings(infra_dir)
    known_set = set(known) | RUNTIME_SETTINGS
    problems += [
        f"app setting {n} is read by the code but not set" for n in sorted(set(required) - set(settings))
    ]
    problems += [f"app setting {n} is set but nothing reads it" for n in sorted(set(settings) - known_set)]
    problems += [
        f"app setting {n} is set by the platform, not the templates"
        for n in sorted(set(platform) & set(settings))
    ]
    problems += [
        f"app setting {n} would be a connection string"
        for n in sorted(set(connection_strings) & set(settings))
    ]
    for name, value in settings.items():
        if name.endswith("__credential") and value != "'managedidentity'":
            problems.append(f"app setting {name} must be 'managedidentity', is {value}")
        if (
            re.search(r"connection_?string$", name, re.IGNORECASE)
            and name != "APPLICATIONINSIGHTS_CONNECTION_STRING"
        ):
            problems.append(f"app setting {name} looks like a connection string")
    return problems


def _string_array(node: tree_sitter.Node | None) -> list[str] | None:
    if node is None or node.type != "array":
        return None
    values = [_string_value(c) for c in node.children if c.type not in ("[", "]", ",")]
    return None if any(v is None for v in values) else [v for v in values if v is not None]


def check_storage_names(infra_dir: Path, *, queues: Iterable[str], tables: Iterable[str]) -> list[str]:
    """main.bicep's ``queueNames``/``tableNames`` are exactly the app's and reach the storage module."""
    problems = []
    main = _main(infra_dir)
    if main is None:
        return ["infra/main.bicep not found"]
    for var, expected in (("queueNames", list(queues)), ("tableNames", list(tables))):
        values = _string_array(_variable(main, var))
        if values is None:
            problems.append(f"main.bicep: var {var} must be an array of string literals")
            continue
        if sorted(values) != sorted(expected) or len(set(values)) != len(values):
            problems.append(f"main.bicep: {var} is {sorted(values)}, the app uses {sorted(expected)}")
    storage_module = next(
        (
            decl
            for decl in _declarations(main, "module_declaration")
            if (_string_value(_first_child(decl, "string")) or "").endswith("storage.bicep")
        ),
        None,
    )
    params = (
        _properties(_properties(_declaration_body(storage_module)).get("params")) if storage_module else {}
    )
    for var in ("queueNames", "tableNames"):
        if var not in params or _text(params[var]) != var:
            problems.append(f"main.bicep: the storage module does not get {var}: {var}")
    created = {r.type for r in resources(bicep_files(infra_dir)) if r.node.children and _loops(r.node)}
    for child in ("queueServices/queues", "tableServices/tables"):
        if f"Microsoft.Storage/storageAccounts/{child}" not in created:
            problems.append(f"no looped Microsoft.Storage/storageAccounts/{child} resource creates the names")
    return problems


def _loops(node: tree_sitter.Node) -> bool:
    return any(c.type == "for_statement" for c in node.children)


def _main(infra_dir: Path) -> BicepFile | None:
    path = infra_dir / "main.bicep"
    return next((f for f in bicep_files(infra_dir) if f.path == path), None)


def check_main(infra_dir: Path) -> list[str]:
    """main.bicep targets the subscription and has the outputs azd and the docs need."""
    main = _main(infra_dir)
    if main is None:
        return ["infra/main.bicep not found"]
    problems = []
    scope = next(_declarations(main, "target_scope_assignment"), None)
    if scope is None or _string_value(scope.children[-1]) != "subscription":
        problems.append("main.bicep: targetScope must be 'subscription'")
    outputs = {_declaration_name(d) for d in _declarations(main, "output_declaration")}
    problems += [f"main.bicep: output {n} missing" for n in sorted(REQUIRED_OUTPUTS - outputs)]
    return problems


def check_hardening(infra_dir: Path) -> list[str]:
    """The settings that make the deployment keyless and encrypted in transit, wherever they appear.

    No shared keys, no local auth, no anonymous blobs, HTTPS only with TLS 1.2, no FTP, Flex FC1.
    """
    expected = {
        "allowSharedKeyAccess": "false",
        "DisableLocalAuth": "true",
        "allowBlobPublicAccess": "false",
        "allowCrossTenantReplication": "false",
        "httpsOnly": "true",
        "supportsHttpsTrafficOnly": "true",
        "minimumTlsVersion": "'TLS1_2'",
        "minTlsVersion": "'1.2'",
        "ftpsState": "'Disabled'",
    }
    seen: dict[str, set[str]] = {}
    for file in bicep_files(infra_dir):
        for node in _walk(file.root):
            if node.type == "object":
                for key, value in _properties(node).items():
                    seen.setdefault(key, set()).add(_text(value))
    problems = [
        f"{key} must be {value} (found {sorted(seen.get(key, set())) or 'nothing'})"
        for key, value in expected.items()
        if seen.get(key) != {value}
    ]
    if "'FC1'" not in seen.get("name", set()):
        problems.append("no Flex Consumption (FC1) plan")
    if "'UserAssignedIdentity'" not in seen.get("type", set()):
        problems.append("deployment storage is not authenticated with the user-assigned identity")
    return problems


def _is_existing(node: tree_sitter.Node) -> bool:
    return any(c.type == "existing" for c in node.children)


def _parameter(file: BicepFile, name: str) -> tree_sitter.Node | None:
    return next(
        (d for d in _declarations(file, "parameter_declaration") if _declaration_name(d) == name), None
    )


def _parameter_default(file: BicepFile, name: str) -> str | None:
    """Source text of the default value of ``param <name>``, or None (no such parameter, or no default)."""
    decl = _parameter(file, name)
    if decl is None or not any(c.type == "=" for c in decl.children):
        return None
    return _text(decl.children[-1])


def _allowed_values(file: BicepFile, name: str) -> list[str] | None:
    """The ``@allowed([...])`` string values of ``param <name>`` (None when it has no such decorator)."""
    decl = _parameter(file, name)
    decorators = decl.prev_named_sibling if decl is not None else None
    if decorators is None or decorators.type != "decorators":
        return None
    for decorator in decorators.children:
        call = _first_child(decorator, "call_expression")
        function = call.child_by_field_name("function") if call is not None else None
        if function is None or _text(function) != "allowed":
            continue
        args = call.child_by_field_name("arguments")  # type: ignore[union-attr]
        return _string_array(_first_child(args, "array")) if args is not None else None
    return None


def _ternary(node: tree_sitter.Node | None) -> tuple[str, str | None, str | None] | None:
    """(condition text, value if true, value if false) of ``cond ? 'a' : 'b'``; None for anything else."""
    if node is None or node.type != "ternary_expression":
        return None
    operands = [c for c in node.children if c.type not in ("?", ":")]
    if len(operands) != 3:
        return None
    condition, when_true, when_false = operands
    return _text(condition), _string_value(when_true), _string_value(when_false)


def _module(file: BicepFile, target_suffix: str) -> tree_sitter.Node | None:
    """The module declaration of ``file`` whose path ends with ``target_suffix``."""
    return next(
        (
            decl
            for decl in _declarations(file, "module_declaration")
            if (_string_value(_first_child(decl, "string")) or "").endswith(target_suffix)
        ),
        None,
    )


def _module_params(module: tree_sitter.Node | None) -> dict[str, tree_sitter.Node]:
    return _properties(_properties(_declaration_body(module)).get("params")) if module is not None else {}


def _own_resources(infra_dir: Path, rtype: str) -> list[Resource]:
    """Resources of type ``rtype`` that the templates create (``existing`` references left out)."""
    return [r for r in resources(bicep_files(infra_dir)) if r.type == rtype and not _is_existing(r.node)]


#: The storage services the broker uses; each needs a private endpoint when the virtual network is on.
STORAGE_PRIVATE_ENDPOINT_SERVICES: frozenset[str] = frozenset({"blob", "queue", "table"})


def check_private_network(infra_dir: Path) -> list[str]:
    """The vnetEnabled option: on by default, and when on, storage is reachable only privately.

    main.bicep: ``param vnetEnabled bool = true`` (``${VNET_ENABLED=true}`` in main.parameters.json),
    passed to the storage module; a private endpoint module for each of blob, queue and table; the app
    gets ``virtualNetworkSubnetId``. Storage: ``publicNetworkAccess: vnetEnabled ? 'Disabled' : ...`` and
    ``defaultAction: vnetEnabled ? 'Deny' : ...``. The app subnet is delegated to Microsoft.App/environments.
    The private endpoint module links a ``privatelink.<service>`` DNS zone to the virtual network.
    """
    main = _main(infra_dir)
    if main is None:
        return ["infra/main.bicep not found"]
    problems = []
    decl = _parameter(main, "vnetEnabled")
    type_node = _first_child(decl, "type") if decl is not None else None
    if decl is None or type_node is None or _text(type_node) != "bool":
        problems.append("main.bicep: param vnetEnabled bool is not declared")
    elif _parameter_default(main, "vnetEnabled") != "true":
        problems.append("main.bicep: vnetEnabled must default to true")
    params_file = infra_dir / "main.parameters.json"
    try:
        mapped = json.loads(params_file.read_text())["parameters"]["vnetEnabled"]["value"]
    except (OSError, ValueError, KeyError, TypeError):
        mapped = None
    if mapped != "${VNET_ENABLED=true}":
        problems.append("main.parameters.json: vnetEnabled must be ${VNET_ENABLED=true}")

    if _source(_module_params(_module(main, "/storage.bicep")).get("vnetEnabled")) != "vnetEnabled":
        problems.append("main.bicep: the storage module does not get vnetEnabled: vnetEnabled")
    accounts = _own_resources(infra_dir, "Microsoft.Storage/storageAccounts")
    if not accounts:
        problems.append("no storage account found")
    for account in accounts:
        where = f"{account.file.path.name}: storage account {account.symbol}"
        props = _properties(_properties(account.body).get("properties"))
        rules = {
            "publicNetworkAccess": (props.get("publicNetworkAccess"), "Disabled"),
            "networkAcls.defaultAction": (
                _properties(props.get("networkAcls")).get("defaultAction"),
                "Deny",
            ),
        }
        for key, (node, closed) in rules.items():
            ternary = _ternary(node)
            if ternary is None or ternary[0] != "vnetEnabled" or ternary[1] != closed:
                found = _text(node) if node is not None else "nothing"
                problems.append(f"{where}: {key} must be vnetEnabled ? '{closed}' : ..., is {found}")

    services = _string_array(_variable(main, "storagePrivateEndpointServices"))
    if services is None or set(services) != STORAGE_PRIVATE_ENDPOINT_SERVICES or len(services) != 3:
        problems.append(
            "main.bicep: var storagePrivateEndpointServices must be "
            f"{sorted(STORAGE_PRIVATE_ENDPOINT_SERVICES)}, is {services}"
        )
    endpoint_module = _module(main, "/storage-private-endpoint.bicep")
    loop = _first_child(endpoint_module, "for_statement") if endpoint_module is not None else None
    iterable = [c for c in loop.children if c.type == "identifier"] if loop is not None else []
    if len(iterable) < 2 or _text(iterable[1]) != "storagePrivateEndpointServices":
        problems.append("main.bicep: no storage-private-endpoint.bicep module loops over the services")
    elif _source(_module_params(endpoint_module).get("service")) != _text(iterable[0]):
        problems.append("main.bicep: the private endpoint module does not get service: <loop variable>")
    endpoint_file = next(
        (f for f in bicep_files(infra_dir) if f.path.name == "storage-private-endpoint.bicep"), None
    )
    if endpoint_file is None:
        problems.append("app/storage-private-endpoint.bicep not found")
    else:
        found = {r.type: r for r in resources([endpoint_file]) if not _is_existing(r.node)}
        for needed in (
            "Microsoft.Network/privateEndpoints",
            "Microsoft.Network/privateEndpoints/privateDnsZoneGroups",
            "Microsoft.Network/privateDnsZones",
            "Microsoft.Network/privateDnsZones/virtualNetworkLinks",
        ):
            if needed not in found:
                problems.append(f"storage-private-endpoint.bicep: no {needed} resource")
        zone = found.get("Microsoft.Network/privateDnsZones")
        if zone is not None and not _source(_properties(zone.body).get("name")).startswith(
            "'privatelink.${service}."
        ):
            problems.append(
                "storage-private-endpoint.bicep: the DNS zone is not privatelink.<service>.<suffix>"
            )
        endpoint = found.get("Microsoft.Network/privateEndpoints")
        group_ids = [
            [_text(c) for c in value.children if c.type not in ("[", "]", ",")]
            for node in (_walk(endpoint.node) if endpoint is not None else ())
            if node.type == "object"
            for key, value in _properties(node).items()
            if key == "groupIds" and value.type == "array"
        ]
        if endpoint is not None and group_ids != [["service"]]:
            problems.append("storage-private-endpoint.bicep: the endpoint's groupIds are not [service]")

    sites = _own_resources(infra_dir, "Microsoft.Web/sites")
    for site in sites:
        if "virtualNetworkSubnetId" not in _properties(_properties(site.body).get("properties")):
            problems.append(f"{site.file.path.name}: {site.symbol} has no virtualNetworkSubnetId")
    api_params = _module_params(_module(main, "/api.bicep"))
    if "vnetEnabled" not in _source(api_params.get("virtualNetworkSubnetId")):
        problems.append("main.bicep: the api module does not get virtualNetworkSubnetId (when vnetEnabled)")

    delegations = {
        _string_value(value)
        for file in bicep_files(infra_dir)
        for node in _walk(file.root)
        if node.type == "object"
        for key, value in _properties(node).items()
        if key == "serviceName"
    }
    if "Microsoft.App/environments" not in delegations:
        problems.append("no subnet is delegated to Microsoft.App/environments (Flex Consumption integration)")
    return problems


#: Storage SKUs that keep more than one zone's or region's copy (every allowed SKU but LRS).
REPLICATED_STORAGE_SKUS: frozenset[str] = frozenset(
    {"Standard_ZRS", "Standard_GRS", "Standard_GZRS", "Standard_RAGRS", "Standard_RAGZRS"}
)


def check_storage_redundancy(infra_dir: Path) -> list[str]:
    """Storage redundancy is a parameter: replicated by default, only standard SKUs allowed.

    The storage account's ``sku.name`` is the storage module's ``skuName`` parameter, whose default is
    a replicated SKU (Standard_ZRS); main.bicep's ``storageSkuName`` (empty: ZRS where offered, else GRS)
    is passed to it and mapped from STORAGE_SKU_NAME.
    """
    problems = []
    allowed_skus = REPLICATED_STORAGE_SKUS | {"Standard_LRS"}
    for account in _own_resources(infra_dir, "Microsoft.Storage/storageAccounts"):
        where = f"{account.file.path.name}: storage account {account.symbol}"
        sku = _properties(_properties(account.body).get("sku")).get("name")
        if sku is None or sku.type != "identifier" or _parameter(account.file, _text(sku)) is None:
            problems.append(f"{where}: sku.name must be a parameter, is {_text(sku) if sku else 'nothing'}")
            continue
        name = _text(sku)
        default = _parameter_default(account.file, name)
        if default is None or default.strip("'") not in REPLICATED_STORAGE_SKUS:
            problems.append(f"{where}: param {name} must default to a replicated SKU, is {default}")
        allowed = _allowed_values(account.file, name)
        if allowed is None or not set(allowed) <= allowed_skus:
            problems.append(f"{where}: param {name} must be @allowed({sorted(allowed_skus)}), is {allowed}")
    main = _main(infra_dir)
    if main is None:
        return [*problems, "infra/main.bicep not found"]
    if _parameter_default(main, "storageSkuName") != "''":
        problems.append("main.bicep: param storageSkuName (empty: chosen by region) is missing")
    if "skuName" not in _module_params(_module(main, "/storage.bicep")):
        problems.append("main.bicep: the storage module does not get skuName")
    sku_choice = _variable(main, "storageSku")
    if sku_choice is None or "'Standard_ZRS'" not in _text(sku_choice):
        problems.append("main.bicep: var storageSku does not choose Standard_ZRS by default")
    return problems


CHECKOV_SKIP = re.compile(r"^//\s*checkov:skip=(CKV2?_[A-Z0-9]+_\d+):(.*)$")
MIN_SKIP_REASON = 30


def check_checkov_skips(infra_dir: Path) -> list[str]:
    """Every checkov suppression is a ``// checkov:skip=CKV_...:reason`` line inside a resource.

    One check id per line, a reason of at least MIN_SKIP_REASON characters, and a ``//`` comment (Bicep has
    no ``#`` comments). Checkov reads suppressions only between a resource's first and last line.
    """
    problems = []
    for file in bicep_files(infra_dir):
        for number, line in enumerate(file.text.splitlines(), start=1):
            stripped = line.strip()
            if "checkov:" in stripped and not stripped.startswith("//"):
                problems.append(f"{file.path.name}:{number}: checkov suppression outside a // comment")
        for node in _walk(file.root):
            if node.type != "comment" or "checkov:skip" not in _text(node):
                continue
            line = node.start_point[0] + 1
            match = CHECKOV_SKIP.match(_text(node).strip())
            if match is None:
                problems.append(f"{file.path.name}:{line}: not '// checkov:skip=CKV_<...>_<n>:<reason>'")
                continue
            if len(match.group(2).strip()) < MIN_SKIP_REASON:
                problems.append(f"{file.path.name}:{line}: {match.group(1)} is skipped without a reason")
            parent = node.parent
            while parent is not None and parent.type != "resource_declaration":
                parent = parent.parent
            if parent is None:
                problems.append(f"{file.path.name}:{line}: {match.group(1)} skip is outside a resource")
    return problems


def check_parameters_file(infra_dir: Path) -> list[str]:
    """main.parameters.json is valid JSON naming only (and all required) parameters main.bicep declares."""
    path = infra_dir / "main.parameters.json"
    main = _main(infra_dir)
    if main is None or not path.is_file():
        return ["infra/main.bicep or infra/main.parameters.json missing"]
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        return [f"main.parameters.json is not valid JSON: {exc}"]
    params = data.get("parameters") if isinstance(data, dict) else None
    if not isinstance(params, dict):
        return ["main.parameters.json has no parameters object"]
    declared = _parameter_names(main)
    problems = [
        f"main.parameters.json names undeclared parameter {n}" for n in sorted(set(params) - declared)
    ]
    problems += [f"main.parameters.json: {n} has no value" for n, v in params.items() if "value" not in v]
    without_default = {
        _declaration_name(d)
        for d in _declarations(main, "parameter_declaration")
        if not any(c.type == "=" for c in d.children)
    }
    problems += [
        f"required parameter {n} is not in main.parameters.json"
        for n in sorted(without_default - set(params))
    ]
    return problems


def _azure_yaml_services(text: str) -> dict[str, dict[str, str]]:
    """The ``services`` map of azure.yaml (a small reader for the flat layout azd uses)."""
    services: dict[str, dict[str, str]] = {}
    in_services = False
    current: str | None = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            in_services = line.strip() == "services:"
            current = None
        elif in_services and indent == 2 and line.strip().endswith(":"):
            current = line.strip()[:-1]
            services[current] = {}
        elif in_services and current and indent == 4 and ":" in line:
            key, value = line.strip().split(":", 1)
            services[current][key.strip()] = value.strip().strip("'\"")
    return services


def check_azure_yaml(repo_dir: Path) -> list[str]:
    """azure.yaml names a Python function service whose project directory exists and is tagged in Bicep."""
    path = repo_dir / "azure.yaml"
    if not path.is_file():
        return ["azure.yaml missing"]
    services = _azure_yaml_services(path.read_text())
    if not services:
        return ["azure.yaml defines no services"]
    problems = []
    api_bicep = repo_dir / "infra" / "app" / "api.bicep"
    api_text = api_bicep.read_text() if api_bicep.is_file() else ""
    for name, svc in services.items():
        project = repo_dir / svc.get("project", "")
        if "project" not in svc or not project.is_dir():
            problems.append(f"azure.yaml service {name}: project directory {svc.get('project')!r} not found")
        elif not (project / "host.json").is_file():
            problems.append(f"azure.yaml service {name}: {svc['project']} has no host.json")
        if svc.get("host") != "function" or svc.get("language") != "python":
            problems.append(f"azure.yaml service {name}: must be host: function, language: python")
        if f"param serviceName string = '{name}'" not in api_text or "'azd-service-name'" not in api_text:
            problems.append(f"azure.yaml service {name}: no function app tagged azd-service-name={name}")
    return problems
