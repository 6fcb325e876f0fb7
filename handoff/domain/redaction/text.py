"""The engine: each rule of :data:`~handoff.domain.redaction.patterns.RULES` applied to a text, tried only
where the literals it needs occur; and to the text as its reader will see it, when that differs."""

from __future__ import annotations

import re
from collections import Counter

from handoff.domain.markdown import strip_invisible
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


def _apply(rule: Rule, text: str, positions: _Positions, found: list[tuple[str, str]]) -> str:
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
        if not has_secret:
            found.append((kind, raw.group(0)))
            return marker(kind)
        start, end = match.start("secret"), match.end("secret")
        if has_value_groups and raw.group("uq") is not None and end - start > 1 and text[end - 1] == ".":
            end -= 1  # the full stop ending a sentence is not part of the value
        found.append((kind, text[start:end]))
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
# The shortest secret found only in a text as written that is also cut, wherever it occurs, from the text
# as shown (those are tokens set apart from a word by an invisible character: 16 characters or more).
_CARRIED = 8


def _redact(text: str) -> tuple[str, list[tuple[str, str]]]:
    """``text`` with every rule applied once, and what was replaced (kind, secret) in order."""
    found: list[tuple[str, str]] = []
    if len(text) <= _SHORT:
        lowered = text.lower()
        if not any(needle in lowered for needle in _TRIGGERS):
            return text, found
    positions = _Positions(text)
    for rule in RULES:
        redacted = _apply(rule, text, positions, found)
        if redacted != text:
            text, positions = redacted, _Positions(redacted)
    return text, found


def redact_text(text: str) -> tuple[str, dict[str, int]]:
    """``text`` with every recognised secret replaced by ``[redacted:<kind>]``, and the count per kind.

    Secrets are also looked for in the text a reader will see: ``text`` without the invisible characters
    its rendering removes (:func:`~handoff.domain.markdown.strip_invisible`: zero-width spaces and
    joiners, the soft hyphen, bidi controls, tag characters, NUL ...), which would otherwise show whole a
    secret they split. Where that text shows a secret ``text`` as written hides, what comes back is that
    text, redacted, with what only ``text`` as written showed (a token set apart from a word by an
    invisible character) cut from it too. Any other text comes back as one pass over it leaves it, every
    other character kept.
    """
    if not text:
        return text, {}
    result, found = _redact(text)
    shown = strip_invisible(text)
    if shown != text:
        redacted, seen = _redact(shown)
        known = {strip_invisible(value) for _, value in found}
        if any(value not in known for _, value in seen):
            result, found = _with(redacted, seen, found)
    return result, dict(Counter(kind for kind, _ in found))


def _with(
    text: str, found: list[tuple[str, str]], more: list[tuple[str, str]]
) -> tuple[str, list[tuple[str, str]]]:
    """``text`` (``found`` cut from it) with every secret of ``more`` cut as well, wherever it occurs,
    unless it is, or is part of, one of ``found`` (a value found in both, such as the ``x1`` of
    ``password=x1``, is not looked for again: the same characters elsewhere, ``0x1F``, are not a secret) or
    is too short not to occur in ordinary words (or in the markers)."""
    values = {value for _, value in found}
    joined = "\0".join(values)  # no value holds a NUL: strip_invisible removed them all
    found = list(found)
    for kind, value in more:
        value = strip_invisible(value)
        if len(value) >= _CARRIED and value not in values and value in text and value not in joined:
            found += [(kind, value)] * text.count(value)
            text = text.replace(value, marker(kind))
    return text, found


def redact(text: str) -> str:
    """:func:`redact_text` without the counts."""
    return redact_text(text)[0]
