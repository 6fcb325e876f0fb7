"""Blocks of caller data inside a message: evidence, the exact ``json`` block, one-line quotes.

Inside the json block every string stays on its line and no reader reorders it (:func:`json_text`);
evidence is quoted or escaped like any caller text (:mod:`handoff.domain.markdown`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from handoff.domain.markdown import HIDDEN_CHARACTERS, cell, fence_for, inline, link, quote, quote_code

# JSON escapes for what json.dumps leaves raw (DEL and C1 controls, LS/PS, and the hidden characters of
# domain.markdown).
_JSON_RAW = re.compile(f"[\x7f-\x9f\u2028\u2029{HIDDEN_CHARACTERS}]")


def json_text(value: object, indent: int | None = None) -> str:
    """JSON for a fenced block: exact (``json.loads`` gives ``value`` back), one string per line."""
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    return _JSON_RAW.sub(lambda m: _json_escape(m.group()), text)


def _json_escape(char: str) -> str:
    """``char`` as JSON \\u escapes (a surrogate pair beyond the Basic Multilingual Plane)."""
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_block(value: object) -> list[str]:
    """Lines of a fenced ``json`` block holding ``value`` exactly (a fence longer than any inside)."""
    body = json_text(value, indent=1)
    fence = fence_for(body)
    return [f"{fence}json", body, fence]


def quote_line(value: object) -> str:
    """A single-line value as a one-line block quote."""
    text = inline(value)
    return f"> {text}" if text else ">"


def _kql_table(columns: list[str], rows: list[list[Any]]) -> list[str]:
    if not columns:
        return []
    lines = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def evidence_lines(evidence: list[dict[str, Any]], full_url: str) -> list[str]:
    """Lines of an evidence section (wire-shaped items); a cut table points to ``full_url``."""
    lines: list[str] = []
    for item in evidence:
        kind = item["kind"]
        title = item.get("title")
        if kind == "kql":
            lines.append(f"### KQL: {inline(title)}")
            lines += quote_code(item["query"], "kusto")
            table = _kql_table(item.get("columns", []), item.get("rows", []))
            lines += ["", *table] if table else []
            if item.get("truncatedRows"):
                lines += [
                    "",
                    f"_{item['truncatedRows']} more rows cut to fit this message; all rows: {full_url}_",
                ]
        elif kind == "link":
            lines.append(f"- {link(title, item['url'])}")
        elif kind == "note":
            lines.append(f"**Note: {inline(title)}**" if title and inline(title) else "**Note:**")
            lines += quote(item["content"])
        else:
            data = json_text(item.get("data", {}), indent=2)
            lines += [f"### Data: {inline(title)}", *quote_code(data, "json")]
        lines.append("")
    return lines
