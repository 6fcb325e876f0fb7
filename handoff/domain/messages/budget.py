"""Cutting a handoff's context until its start message fits the size budget.

First the largest KQL table is halved, again and again; when no rows are left to cut, long strings are
capped, each cap shorter than the last. Cuts are said where they happen (``truncatedRows``, ``… [N
characters cut]``), so the message tells a reader what is missing.
"""

from __future__ import annotations

import json
from typing import Any

STRING_CAPS = (4096, 1024, 256)


def cut_rows(context: dict[str, Any]) -> bool:
    """Halve the largest KQL table; False when there is nothing left to cut."""
    tables = [e for e in context.get("evidence", []) if e["kind"] == "kql" and e.get("rows")]
    if not tables:
        return False
    largest = max(tables, key=lambda e: len(json.dumps(e["rows"], ensure_ascii=False)))
    keep = len(largest["rows"]) // 2
    largest["truncatedRows"] = largest.get("truncatedRows", 0) + len(largest["rows"]) - keep
    largest["rows"] = largest["rows"][:keep]
    return True


def cut_strings(value: Any, cap: int) -> tuple[Any, bool]:
    """``value`` with every string longer than ``cap`` cut in place (lists and dicts are walked), and
    whether anything was cut."""
    if isinstance(value, str) and len(value) > cap:
        return value[:cap] + f" … [{len(value) - cap} characters cut]", True
    if isinstance(value, list):
        changed = False
        for index, item in enumerate(value):
            value[index], cut = cut_strings(item, cap)
            changed |= cut
        return value, changed
    if isinstance(value, dict):
        changed = False
        for key in value:
            value[key], cut = cut_strings(value[key], cap)
            changed |= cut
        return value, changed
    return value, False
