"""Lenient readers of alert payloads: the documented samples disagree on types, casing and which keys
exist, so every field is read without trusting its shape."""

from __future__ import annotations

import re
from typing import Any

from handoff.domain.errors import Problem
from handoff.domain.intake import load_json

MAX_ALERT_BYTES = 1024 * 1024  # Azure Monitor caps a common-schema alert at 256 KB; leave room


def as_text(value: Any) -> str | None:
    """A scalar as trimmed text (numbers included); None for null, empty, lists and objects."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, str | int | float):
        text = str(value).strip()
        return text or None
    return None


def as_texts(value: Any) -> tuple[str, ...]:
    """A string or a list of scalars as non-empty texts (anything else: none)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ()
    return tuple(text for text in (as_text(item) for item in value) if text)


def lookup(value: Any, *path: str) -> Any:
    """``value[path[0]][path[1]]...`` with keys compared case-insensitively; None when absent."""
    for key in path:
        if not isinstance(value, dict):
            return None
        if key in value:
            value = value[key]
            continue
        lowered = key.lower()
        value = next((v for k, v in value.items() if isinstance(k, str) and k.lower() == lowered), None)
    return value


def embedded_json(value: Any) -> Any:
    """Fields the samples carry as JSON-encoded strings (claims, policies, impactedServices)."""
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return load_json(value, limit_bytes=MAX_ALERT_BYTES, what="embedded JSON")
        except Problem:
            return value
    return value


def name_key(value: str | None) -> str:
    """A name as compared across samples: "Activity Log" and "ActivityLog" both occur, so without
    spaces, dashes, underscores or case."""
    return re.sub(r"[\s_-]", "", value or "").lower()
