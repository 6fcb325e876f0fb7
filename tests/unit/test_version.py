"""The release number, and what the MCP server tells a client about itself."""

from __future__ import annotations

import tomllib

import handoff
from handoff.settings import APP_ROOT


def test_the_package_version_is_pyprojects():
    project = tomllib.loads((APP_ROOT / "pyproject.toml").read_text())["project"]
    assert handoff.__version__ == project["version"] != ""


def test_the_mcp_server_states_its_version_and_names_every_tool():
    from handoff.entrypoints.mcp_server import INSTRUCTIONS, build_server
    from handoff.entrypoints.mcp_tools import TOOLS

    server = build_server()
    assert server.version == handoff.__version__
    assert [spec.name for spec in TOOLS if spec.name not in INSTRUCTIONS] == []


def test_every_post_operation_documents_the_415():
    from handoff.entrypoints.openapi import openapi_document

    posts = {path: item["post"] for path, item in openapi_document()["paths"].items() if "post" in item}
    assert len(posts) >= 8
    assert [path for path, operation in posts.items() if "415" not in operation["responses"]] == []
