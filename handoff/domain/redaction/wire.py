"""Wire models: the caller-written text fields of a request redacted, and the model still valid."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from handoff.domain.redaction.values import merge_counts, redact_json

ModelT = TypeVar("ModelT", bound=BaseModel)

# The caller-written text of the two requests (wire names); ids, agent names and enums are validated
# elsewhere and left as they are.
HANDOFF_TEXT_FIELDS = ("context", "correlationId")
HANDBACK_TEXT_FIELDS = ("summary", "rootCause", "recommendedActions", "evidence")


def redact_model(model: ModelT, fields: Iterable[str]) -> tuple[ModelT, dict[str, int]]:
    """``model`` with the JSON of ``fields`` (wire names) redacted, validated again, and the counts.

    The same object comes back when there is nothing to redact. A marker longer than what it replaced
    can push a string past its field's ``max_length``; such a string is shortened to the limit (the
    secret is already gone), so the result always validates, now and when it is read back from storage.
    """
    data = model.model_dump(mode="json", by_alias=True)
    counts: Counter[str] = Counter()
    for name in fields:
        if data.get(name) is not None:
            data[name], found = redact_json(data[name])
            counts.update(found)
    if not counts:
        return model, {}
    for _ in range(1000):
        try:
            return type(model).model_validate(data), merge_counts(counts)
        except ValidationError as exc:
            if not _repair(data, exc):
                raise
    raise ValueError("could not fit the redacted request into its schema")  # pragma: no cover


def _repair(data: Any, exc: ValidationError) -> bool:
    """Make a redacted document valid again: a string pushed past its ``max_length`` by a marker is
    shortened (the secret is already gone); an item of a list that no longer has its shape (a resource ID
    a secret was cut out of) is dropped. False when an error is of neither kind."""
    repaired = False
    drops: list[tuple[list[Any], int]] = []
    for error in exc.errors(include_url=False):
        limit = (error.get("ctx") or {}).get("max_length")
        parent, key = _locate(data, error["loc"])
        if parent is None:
            return False
        if error["type"] == "string_too_long" and isinstance(limit, int) and isinstance(parent[key], str):
            parent[key] = parent[key][: max(limit - 1, 0)] + "…"
            repaired = True
        elif isinstance(parent, list) and isinstance(key, int) and isinstance(parent[key], str):
            drops.append((parent, key))
        else:
            return False
    for parent, key in sorted(drops, key=lambda drop: -drop[1]):
        del parent[key]
        repaired = True
    return repaired


def _locate(data: Any, loc: tuple[int | str, ...]) -> tuple[Any, int | str]:
    """The container and key a pydantic error location points at (union tags skipped)."""
    parent: Any = None
    key: int | str = ""
    current = data
    for part in loc:
        if isinstance(current, dict):
            if part not in current:
                continue  # a discriminated union's tag: not a level of the JSON
            parent, key, current = current, part, current[part]
        elif isinstance(current, list) and isinstance(part, int) and part < len(current):
            parent, key, current = current, part, current[part]
        else:
            return None, ""
    return parent, key
