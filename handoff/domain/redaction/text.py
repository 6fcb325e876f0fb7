"""The engine: each rule of :data:`~handoff.domain.redaction.patterns.RULES` applied to a text, tried only
where the literals it needs occur."""

from __future__ import annotations

import re
from collections import Counter

from handoff.domain.redaction.patterns import MARK, RULES, Rule, SecretMatch, marker


# The key/value rule captures its value in one of four groups; name them all "secret" for the rest.
class _KvMatch:
    """A view of a key/value match whose ``secret`` group is whichever value group matched."""

    def __init__(self, match: re.Match[str]) -> None:
        self.match = match
        self.name = next(
            (name for name in ("secret", "secret2", "secret3", "uq") if match.group(name) is not None),
            "secret",
        )

    @property
    def string(self) -> str:
        return self.match.string

    def group(self, name: str) -> str | None:
        return self.match.group(self.name if name == "secret" else name)

    def start(self, name: str | int = 0) -> int:
        return self.match.start(self.name if name == "secret" else name)

    def end(self, name: str | int = 0) -> int:
        return self.match.end(self.name if name == "secret" else name)


class _Positions:
    """Where needles occur in the current text (computed once per needle until the text changes)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._lowered: str | None = None
        self._found: dict[tuple[str, bool], list[int]] = {}

    @property
    def lowered(self) -> str:
        if self._lowered is None:
            self._lowered = self.text.lower()
        return self._lowered

    def of(self, rule: Rule) -> list[int] | None:
        """Sorted start positions of ``rule``'s needles, or None when they cannot be used."""
        haystack = self.text if rule.cased else self.lowered
        if len(haystack) != len(self.text):  # lowercasing changed lengths (rare Unicode)
            return None
        found: set[int] = set()
        for needle in rule.needles:
            key = (needle, rule.cased)
            if key not in self._found:
                positions, at = [], haystack.find(needle)
                while at != -1:
                    positions.append(at)
                    at = haystack.find(needle, at + 1)
                self._found[key] = positions
            found.update(self._found[key])
        return sorted(found)


def _apply(rule: Rule, text: str, positions: _Positions, counts: Counter[str]) -> str:
    has_value_groups = "uq" in rule.pattern.groupindex
    has_secret = "secret" in rule.pattern.groupindex

    def replace(raw: re.Match[str]) -> str:
        match: SecretMatch = _KvMatch(raw) if has_value_groups else raw
        if has_secret:
            secret = match.group("secret")
            if not secret or MARK in secret:
                return raw.group(0)
        if rule.check is not None and not rule.check(match):
            return raw.group(0)
        kind = rule.kind_of(match)
        counts[kind] += 1
        if not has_secret:
            return marker(kind)
        start, end = match.start("secret"), match.end("secret")
        if has_value_groups and raw.group("uq") is not None and end - start > 1 and text[end - 1] == ".":
            end -= 1  # the full stop ending a sentence is not part of the value
        base = raw.start()
        return raw.group(0)[: start - base] + marker(kind) + raw.group(0)[end - base :]

    starts = None if rule.scan else positions.of(rule)
    if starts is None:
        return rule.pattern.sub(replace, text)
    pieces: list[str] = []
    last = 0
    for at in starts:
        for start in range(max(last, at - rule.back), at + 1):
            match = rule.pattern.match(text, start)
            if match is not None:
                pieces += [text[last : match.start()], replace(match)]
                last = match.end()
                break
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


# Every secret contains one of these (lowercase); a short text with none is returned at once.
_TRIGGERS = tuple(sorted({needle.lower() for rule in RULES for needle in rule.needles}))
_SHORT = 512


def redact_text(text: str) -> tuple[str, dict[str, int]]:
    """``text`` with every recognised secret replaced by ``[redacted:<kind>]``, and the count per kind."""
    counts: Counter[str] = Counter()
    if not text:
        return text, {}
    if len(text) <= _SHORT:
        lowered = text.lower()
        if not any(needle in lowered for needle in _TRIGGERS):
            return text, {}
    positions = _Positions(text)
    for rule in RULES:
        redacted = _apply(rule, text, positions, counts)
        if redacted != text:
            text, positions = redacted, _Positions(redacted)
    return text, dict(counts)


def redact(text: str) -> str:
    """:func:`redact_text` without the counts."""
    return redact_text(text)[0]
