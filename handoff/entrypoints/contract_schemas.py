"""The checked-in contract schemas (``spec/handoff-context/v1/``), read on first use.

One source for everything that publishes them: ``GET /api/schemas/handoff-context/v1/{name}.json`` serves
the files byte for byte, and the MCP tools take their argument and result schemas from them (bundled,
see :func:`handoff.domain.contract.bundled`). Nothing is read at import time, so the files cost the cold
start nothing; each is read once per process.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from handoff.domain.contract import SCHEMA_NAMES, bundled
from handoff.domain.errors import NotFound
from handoff.settings import APP_ROOT

SCHEMA_DIR: Path = APP_ROOT / "spec" / "handoff-context" / "v1"
SCHEMAS_ROUTE = "schemas/handoff-context/v1"
"""Where the schemas are served, under the Functions route prefix (``/api``)."""


def schema_file(name: str) -> bytes:
    """The checked-in schema ``name`` (without ``.json``) as its file holds it; 404 for any other name.

    The name is looked up in the contract's set before any path is made from it, so no request can
    reach another file."""
    if name not in SCHEMA_NAMES:
        raise NotFound(f"no schema '{name}' in handoff-context v1; known: {', '.join(sorted(SCHEMA_NAMES))}")
    return _read(name)


@lru_cache(maxsize=len(SCHEMA_NAMES))
def _read(name: str) -> bytes:
    return (SCHEMA_DIR / f"{name}.json").read_bytes()


@lru_cache(maxsize=1)
def contract_schemas() -> dict[str, dict[str, Any]]:
    """Every checked-in schema of the contract, parsed, by name."""
    return {name: json.loads(_read(name)) for name in sorted(SCHEMA_NAMES)}


@lru_cache(maxsize=len(SCHEMA_NAMES))
def _bundled_text(name: str) -> str:
    return json.dumps(bundled(name, contract_schemas()))


def bundled_schema(name: str) -> dict[str, Any]:
    """Schema ``name`` with the ones it refers to inlined: self-contained, for MCP clients (a new copy on
    every call, so a caller may change it)."""
    result: dict[str, Any] = json.loads(_bundled_text(name))
    return result
