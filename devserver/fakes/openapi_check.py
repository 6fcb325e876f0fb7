"""Check requests (and responses) against a vendor's published OpenAPI 3.0 operations.

The fakes for GitHub, PagerDuty and Jira load the cut-down vendor documents in
``devserver/fakes/vendor_openapi/`` (the vendors' published documents) and check every request against
the operation it calls: path, method, path/query/header parameters and the JSON body. OpenAPI 3.0
tells validators to ignore ``Accept``, ``Content-Type`` and ``Authorization`` header parameters; the
checks here do not skip them, and each fake adds the vendor's own rules the documents leave out.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator, FormatChecker

REFERENCE_DIR = Path(
    os.environ.get("HANDOFF_REFERENCE_OPENAPI", Path(__file__).resolve().parent / "vendor_openapi")
)


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable: true`` as JSON Schema (``type: [t, "null"]``)."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _nullable(value) for key, value in node.items()}
    if out.pop("nullable", False) is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        else:
            return {"anyOf": [out, {"type": "null"}]}
    return out


@lru_cache(maxsize=8)
def load_document(name: str) -> dict[str, Any]:
    """A reference document by file name, with ``nullable`` converted."""
    return _nullable(json.loads((REFERENCE_DIR / name).read_text(encoding="utf-8")))


class Operation:
    """One method + path template of a document."""

    def __init__(
        self, spec: OpenApiSpec, method: str, template: str, op: dict[str, Any], item: dict[str, Any]
    ) -> None:
        self.spec = spec
        self.method = method.upper()
        self.template = template
        self.op = op
        self.operation_id = op.get("operationId", f"{method} {template}")
        pattern = re.sub(r"\\\{([A-Za-z0-9_]+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        self.regex = re.compile(f"^{pattern}/?$")
        self.parameters = [spec.resolve(p) for p in [*item.get("parameters", []), *op.get("parameters", [])]]


class OpenApiSpec:
    """Operations of one vendor document and the checks against them."""

    def __init__(self, file_name: str, prefix: str = "") -> None:
        self.doc = load_document(file_name)
        self.prefix = prefix
        self.operations: list[Operation] = []
        for template, item in self.doc["paths"].items():
            for method, op in item.items():
                if method in ("get", "post", "put", "patch", "delete") and isinstance(op, dict):
                    self.operations.append(Operation(self, method, prefix + template, op, item))

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        """Follow a local ``$ref`` (``#/components/...``)."""
        while "$ref" in node:
            target: Any = self.doc
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            node = target
        return node

    def validator(self, schema: dict[str, Any], *, formats: bool = True) -> Draft4Validator:
        """A draft-04 validator for ``schema`` whose ``#/components/...`` references resolve."""
        root = {"components": self.doc.get("components", {}), "allOf": [schema]}
        return Draft4Validator(root, format_checker=FormatChecker() if formats else None)

    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The operation for a request, with its path parameters."""
        for op in self.operations:
            found = op.regex.match(path)
            if found and op.method == method.upper():
                return op, found.groupdict()
        return None

    def check_request(
        self,
        op: Operation,
        path_params: Mapping[str, str],
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: Any,
        has_body: bool,
    ) -> list[str]:
        """Problems with a request for ``op`` (empty when it conforms). Header names compare
        case-insensitively, and ``Accept``/``Content-Type``/``Authorization`` are checked too."""
        errors: list[str] = []
        lowered = {k.lower(): v for k, v in headers.items()}
        for param in op.parameters:
            name, where = param["name"], param["in"]
            source = {"path": path_params, "query": query, "header": lowered}.get(where, {})
            key = name.lower() if where == "header" else name
            if key not in source:
                if param.get("required"):
                    errors.append(f"{where} parameter {name!r} is required")
                continue
            errors += [f"{where} parameter {name!r}: {e}" for e in self._check_value(param, source[key])]
        body_spec = op.op.get("requestBody")
        if body_spec:
            body_spec = self.resolve(body_spec)
            if not has_body:
                if body_spec.get("required"):
                    errors.append("a request body is required")
            else:
                media = body_spec.get("content", {}).get("application/json", {})
                schema = media.get("schema")
                if schema is not None:
                    errors += [
                        f"body{_where(e.absolute_path)}: {e.message}"
                        for e in self.validator(schema).iter_errors(body)
                    ]
        elif has_body and op.method in ("GET", "DELETE"):
            errors.append("this operation takes no request body")
        return errors

    def _check_value(self, param: dict[str, Any], raw: str) -> list[str]:
        schema = param.get("schema", {})
        value: Any = raw
        kind = schema.get("type")
        kind = kind[0] if isinstance(kind, list) else kind
        try:
            if kind == "integer":
                value = int(raw)
            elif kind == "number":
                value = float(raw)
            elif kind == "boolean":
                if raw not in ("true", "false"):
                    return [f"{raw!r} is not a boolean"]
                value = raw == "true"
            elif kind == "array":
                value = raw.split(",")
        except ValueError:
            return [f"{raw!r} is not of type {kind}"]
        return [e.message for e in self.validator(schema).iter_errors(value)]

    def check_response(self, op: Operation, status: int, body: Any) -> list[str]:
        """Problems with a response body for ``op`` and ``status`` (format checks off: vendors' own
        timestamps, such as Jira's ``+0000``, fail strict date-time checks)."""
        response = op.op.get("responses", {}).get(str(status))
        if response is None:
            return [f"status {status} is not documented for {op.operation_id}"]
        response = self.resolve(response)
        media = response.get("content", {}).get("application/json")
        if not media or "schema" not in media:
            return []
        validator = self.validator(copy.deepcopy(media["schema"]), formats=False)
        return [f"response{_where(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]


def _where(path: Any) -> str:
    parts = list(path)
    return "".join(f"/{p}" for p in parts) if parts else ""


@lru_cache(maxsize=1)
def adf_validator() -> Draft4Validator:
    """The Atlassian Document Format schema (draft-04, root ``#/definitions/doc_node``)."""
    return Draft4Validator(load_document("jira-adf-v1-full.schema.json"))


def adf_errors(document: Any) -> list[str]:
    """Problems of an ADF document (empty when valid)."""
    return [f"{_where(e.absolute_path) or '/'}: {e.message}" for e in adf_validator().iter_errors(document)]
