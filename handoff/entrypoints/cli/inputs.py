"""The body of ``handoff send``: a JSON or YAML file (the body of ``POST /api/handoffs``), or flags."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

import click

SEVERITIES = ("Sev0", "Sev1", "Sev2", "Sev3", "Sev4")
INTENTS = ("investigate", "rootCause", "mitigate", "consult")
TITLE_MAX = 300  # the API's limit on context.title


def read_body(path: str) -> dict[str, Any]:
    """The JSON or YAML document in ``path`` (``-``: standard input). ``.yaml``/``.yml`` files are YAML,
    anything else JSON (or YAML, when it is not JSON)."""
    try:
        raw = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="FILE") from exc
    yaml_file = path.lower().endswith((".yaml", ".yml"))
    if not yaml_file:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            if path.lower().endswith(".json"):
                raise click.BadParameter(f"{path} is not JSON: {exc}", param_hint="FILE") from exc
            data = _yaml(raw, path)
    else:
        data = _yaml(raw, path)
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path} must hold one object (the handoff request)", param_hint="FILE")
    return data


def _yaml(raw: str, path: str) -> Any:
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - PyYAML is in requirements-dev.txt
        raise click.UsageError("YAML files need PyYAML: pip install PyYAML") from exc
    try:
        return _plain(yaml.safe_load(raw))  # plain data only, never Python objects
    except yaml.YAMLError as exc:
        raise click.BadParameter(f"{path} is not YAML: {exc}", param_hint="FILE") from exc


def _plain(value: Any) -> Any:
    """YAML's data as JSON's: an unquoted date or timestamp becomes its ISO text."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, date):  # datetime is a date too
        return value.isoformat()
    return value


def body_from_flags(flags: dict[str, Any], body: dict[str, Any] | None) -> dict[str, Any]:
    """The request: ``body`` (from a file) with the flags that were given laid over it, or one made
    from the flags alone (then ``--source-agent``, ``--target-agent`` and ``--summary`` are needed)."""
    request: dict[str, Any] = json.loads(json.dumps(body)) if body else {}
    if body is None:
        missing = [
            f"--{name.replace('_', '-')}"
            for name in ("source_agent", "target_agent", "summary")
            if not flags[name]
        ]
        if missing:
            raise click.UsageError(f"give a FILE, or {', '.join(missing)}")
    source = request.setdefault("source", {})
    target = request.setdefault("target", {})
    context = request.setdefault("context", {})
    _set(source, "agent", flags["source_agent"])
    _set(source, "threadId", flags["source_thread"])
    _set(target, "agent", flags["target_agent"])
    _set(request, "intent", flags["intent"])
    _set(request, "parentHandoffId", flags["parent"])
    _set(request, "correlationId", flags["correlation_id"])
    _set(context, "summary", flags["summary"])
    _set(context, "title", flags["title"])
    _set(context, "severity", flags["severity"])
    if flags["resource"]:
        context["resources"] = list(flags["resource"])
    if flags["hypothesis"]:
        context["hypotheses"] = list(flags["hypothesis"])
    if body is None:
        request.setdefault("intent", "investigate")
        context.setdefault("severity", "Sev3")
        first_line = (
            str(context["summary"]).strip().splitlines()[0] if str(context["summary"]).strip() else ""
        )
        context.setdefault("title", first_line[:TITLE_MAX] or "Handoff")
    return request


def _set(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        target[key] = value
