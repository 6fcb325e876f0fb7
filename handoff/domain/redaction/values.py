"""JSON values: every string redacted as text, and whole values under a field (or KQL column) that
names a credential."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from handoff.domain.redaction.patterns import is_placeholder, marker, secret_name_kind
from handoff.domain.redaction.text import redact_text

JsonT = TypeVar("JsonT")


def _redact_value(value: str, name_kind: str | None, counts: Counter[str]) -> str:
    text, found = redact_text(value)
    counts.update(found)
    if name_kind is not None and not is_placeholder(text):
        counts[name_kind] += 1
        return marker(name_kind)
    return text


def _walk(value: object, counts: Counter[str], name_kind: str | None = None) -> object:
    if isinstance(value, str):
        return _redact_value(value, name_kind, counts)
    if isinstance(value, list):
        if len(value) > 32:
            # A long list (a KQL table's rows) usually holds no secret: one pass over its text says so.
            strings: list[str] = []
            if not _collect(value, strings) and not redact_text("\n".join(strings))[1]:
                return value
        return [_walk(item, counts) for item in value]
    if isinstance(value, dict):
        result: dict[Any, Any] = {}
        for key, item in value.items():
            new_key = key
            if isinstance(key, str):
                new_key, found = redact_text(key)
                counts.update(found)
                suffix = 2
                while new_key in result:  # two keys that redact alike keep both values
                    new_key = f"{new_key.split(' #', 1)[0]} #{suffix}"
                    suffix += 1
            kind = secret_name_kind(key) if isinstance(key, str) else None
            result[new_key] = _walk(item, counts, kind)
        if value.get("kind") == "kql":
            _redact_secret_columns(result, counts)
        return result
    return value


def _redact_secret_columns(table: dict[Any, Any], counts: Counter[str]) -> None:
    """Cells of a KQL table under a column named like a credential (``password``, ``clientSecret``)."""
    columns, rows = table.get("columns"), table.get("rows")
    if not isinstance(columns, list) or not isinstance(rows, list):
        return
    names = {i: secret_name_kind(c) for i, c in enumerate(columns) if isinstance(c, str)}
    kinds = {i: k for i, k in names.items() if k is not None}
    if not kinds:
        return
    new_rows = []
    for row in rows:
        if isinstance(row, list):
            row = list(row)  # rows may be the caller's own lists (see _walk): never change those
            for index, kind in kinds.items():
                if index < len(row) and isinstance(row[index], str) and not is_placeholder(row[index]):
                    row[index] = marker(kind)
                    counts[kind] += 1
        new_rows.append(row)
    table["rows"] = new_rows


def redact_json(value: JsonT) -> tuple[JsonT, dict[str, int]]:
    """A JSON value (dicts, lists, strings, numbers) with secrets redacted, and the count per kind.

    Strings are redacted with :func:`redact_text`, dict keys too (two keys that become equal are kept
    apart with a `` #2`` suffix). A string under a key that names a credential (``password``,
    ``clientSecret``, ``accessToken``, ``apiKey``, ``AccountKey``, ``sig`` ...) is replaced whole unless it
    is a placeholder, and so are the cells of a KQL table (``{"kind": "kql", "columns", "rows"}``) under
    such a column. Numbers, booleans and null are kept: they are not credentials. The value comes back
    with the shape it had (strings stay strings), so its type is the one it came with.
    """
    strings: list[str] = []
    # Most values hold no secret: one pass over all their text together says so (a secret found there,
    # even one spanning two strings, sends the value through the walk below).
    if not _collect(value, strings) and not redact_text("\n".join(strings))[1]:
        return value, {}
    counts: Counter[str] = Counter()
    return cast("JsonT", _walk(value, counts)), dict(counts)


def _collect(value: object, strings: list[str]) -> bool:
    """Gather the strings (keys included) of a JSON value; True when a field or KQL column is named
    like a credential (its value is redacted whatever it looks like)."""
    named = False
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            strings.append(item)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str):
                    strings.append(key)
                    named = named or (isinstance(child, str) and secret_name_kind(key) is not None)
                stack.append(child)
            columns = item.get("columns")
            if item.get("kind") == "kql" and isinstance(columns, list):
                named = named or any(isinstance(c, str) and secret_name_kind(c) for c in columns)
    return named


def merge_counts(*many: Mapping[str, int]) -> dict[str, int]:
    """The sum of several count mappings, sorted by kind."""
    total: Counter[str] = Counter()
    for counts in many:
        total.update(counts)
    return dict(sorted((k, v) for k, v in total.items() if v))
