"""The engine: each rule of :data:`~handoff.domain.redaction.patterns.RULES` applied to a text, tried only
where the literals it needs occur; and to the text as its reader will see it, when that differs."""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import Counter
from itertools import cycle, islice

from handoff.domain.markdown import invisible_at, strip_invisible
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


# A replacement: where in a text (start, end) the secret of a kind was.
_Span = tuple[int, int, str]
# A marker in a redacted text and the part of the original text it stands for: (start, end) in the
# redacted text, (start, end) in the original, the kind.
_Region = tuple[int, int, int, int, str]


def _apply(
    rule: Rule, text: str, positions: _Positions, found: list[tuple[str, str]], spans: list[_Span]
) -> str:
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
            spans.append((raw.start(), raw.end(), kind))
            return marker(kind)
        start, end = match.start("secret"), match.end("secret")
        if has_value_groups and raw.group("uq") is not None and end - start > 1 and text[end - 1] == ".":
            end -= 1  # the full stop ending a sentence is not part of the value
        found.append((kind, text[start:end]))
        spans.append((start, end, kind))
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


def _moved(regions: list[_Region], spans: list[_Span]) -> list[_Region]:
    """``regions`` of a text once ``spans`` of it (in order, apart) are replaced by markers, with a region
    for each of those: a span that overlaps regions takes them in, and stands for all they stood for."""
    moved: list[_Region] = []
    i = shift = delta = 0  # new position - position; original position - position (past regions[:i])
    for start, end, kind in spans:
        while i < len(regions) and regions[i][1] <= start:
            at, to, first, last, was = regions[i]
            moved.append((at + shift, to + shift, first, last, was))
            delta, i = last - to, i + 1
        low, high, first = start, end, start + delta
        if i < len(regions) and regions[i][0] < start:
            low, first = regions[i][0], regions[i][2]
        while i < len(regions) and regions[i][0] < end:
            high, delta, i = max(high, regions[i][1]), regions[i][3] - regions[i][1], i + 1
        grown = len(marker(kind)) - (end - start)
        moved.append((low + shift, high + shift + grown, first, high + delta, kind))
        shift += grown
    moved += [(at + shift, to + shift, first, last, was) for at, to, first, last, was in regions[i:]]
    return moved


# Every secret contains one of these (lowercase); a short text with none is returned at once.
_TRIGGERS = tuple(sorted({needle.lower() for rule in RULES for needle in rule.needles}))
_SHORT = 512
# A secret found in a text returned as shown (see :func:`redact_text`) is cut where it was found and, if
# it has this many characters or more, wherever else it occurs (a shorter one could be part of ordinary
# words). At most this many distinct secrets are looked for so, each with one scan of the text: however
# many secrets a text holds, the work is a bounded number of scans.
_CARRIED = 8
_CARRIED_AT_MOST = 64
# A marker (the broker's, or text that looks like one), kept out of reach of the secrets looked for.
_MARKER = re.compile(re.escape(MARK) + r"[a-z_]+\]")
# A marker while secrets are looked for: its number between NULs (no secret holds a NUL, and none is as
# short as a number).
_HELD = re.compile("\0[0-9]+\0")


def _redact(text: str, cuts: list[_Span] | None = None) -> tuple[str, list[tuple[str, str]]]:
    """``text`` with every rule applied until none changes it, and what was replaced (kind, secret) in
    order. With ``cuts``, what each marker stands for in ``text`` is added to it (start, end, kind), in
    order.

    A marker can set apart a secret that the text around it hid from a rule already applied (a token
    right after a URL signature), so the rules are applied in turn, round and round, until each has been
    applied since the last replacement: a text without secrets is read once by each rule, one with
    secrets twice at most in practice, and never more than as many times as there are rules."""
    found: list[tuple[str, str]] = []
    if len(text) <= _SHORT:
        lowered = text.lower()
        if not any(needle in lowered for needle in _TRIGGERS):
            return text, found
    positions = _Positions(text)
    regions: list[_Region] = []
    unchanged = 0
    for rule in islice(cycle(RULES), len(RULES) ** 2):
        spans: list[_Span] = []
        redacted = _apply(rule, text, positions, found, spans)
        if redacted == text:
            unchanged += 1
            if unchanged == len(RULES):
                break
            continue
        text, positions, unchanged = redacted, _Positions(redacted), 0
        if cuts is not None:
            regions = _moved(regions, spans)
    if cuts is not None:
        cuts += [(first, last, kind) for _, _, first, last, kind in regions]
    return text, found


def redact_text(text: str) -> tuple[str, dict[str, int]]:
    """``text`` with every recognised secret replaced by ``[redacted:<kind>]``, and the count per kind.

    Secrets are also looked for in the text a reader will see: ``text`` without the invisible characters
    its rendering removes (:func:`~handoff.domain.markdown.strip_invisible`: zero-width spaces and
    joiners, the soft hyphen, bidi controls, tag characters, NUL ...), which would otherwise show whole a
    secret they split. Where ``text`` redacted would still show one once rendered, what comes back is
    the text as shown with every secret either reading found cut where it was found; a secret only the
    text as shown reveals is cut too, if it has eight characters or more, wherever else it occurs. Any
    other text comes back as the rules leave it, every other character kept.
    """
    if not text:
        return text, {}
    shown = strip_invisible(text)
    if shown == text:
        result, found = _redact(text)
        return result, dict(Counter(kind for kind, _ in found))
    cuts: list[_Span] = []
    result, found = _redact(text, cuts)
    seen_cuts: list[_Span] = []
    _, seen = _redact(shown, seen_cuts)
    if found or seen:
        removed = invisible_at(text)
        written = [  # where the secrets found in the text as written are in the text as shown
            (first - bisect_left(removed, first), last - bisect_left(removed, last), kind)
            for first, last, kind in cuts
        ]
        cut, cut_found = _cut(shown, [span for span in written if span[0] < span[1]], seen_cuts)
        # Carried elsewhere: only what the text as shown reveals, not what the text as written shows too
        # (which is left wherever else it stands, as in a text without invisible characters).
        written_values = {strip_invisible(value) for _, value in found}
        revealed = [(kind, value) for kind, value in seen if value not in written_values]
        cut, carried = _with(cut, revealed)
        # A secret cut where it stood against another sets that one apart: it is one now.
        cut, more = _redact(cut)
        if carried or more or not _covered(seen_cuts, written):
            result, found = cut, cut_found + carried + more
    return result, dict(Counter(kind for kind, _ in found))


def _covered(spans: list[_Span], by: list[_Span]) -> bool:
    """Whether every span of ``spans`` lies within spans of ``by`` (both in order, each apart)."""
    i = 0
    for start, end, _ in spans:
        while i < len(by) and by[i][1] <= start:
            i += 1
        at = start
        while at < end and i < len(by) and by[i][0] <= at:
            at = max(at, by[i][1])
            if by[i][1] <= end:
                i += 1
            else:
                break
        if at < end:
            return False
    return True


def _cut(text: str, *spans: list[_Span]) -> tuple[str, list[tuple[str, str]]]:
    """``text`` with a marker for each run of overlapping ``spans`` of it (each list in order, apart),
    naming the kind of the run's longest span; and what was cut (kind, secret), in order."""
    runs: list[tuple[int, int, str, int]] = []  # start, end, kind, the longest span's length
    for start, end, kind in sorted(span for group in spans for span in group):
        if runs and start < runs[-1][1]:
            first, last, was, longest = runs[-1]
            if end - start > longest:
                was, longest = kind, end - start
            runs[-1] = (first, max(last, end), was, longest)
        else:
            runs.append((start, end, kind, end - start))
    pieces: list[str] = []
    found: list[tuple[str, str]] = []
    at = 0
    for start, end, kind, _ in runs:
        pieces += [text[at:start], marker(kind)]
        found.append((kind, text[start:end]))
        at = end
    pieces.append(text[at:])
    return "".join(pieces), found


def _with(text: str, found: list[tuple[str, str]]) -> tuple[str, list[tuple[str, str]]]:
    """``text`` with each secret of ``found`` of :data:`_CARRIED` characters or more (as shown: without
    invisible characters) cut wherever it occurs outside a marker, the longest first; and what was cut.
    Only the first :data:`_CARRIED_AT_MOST` distinct secrets of ``found`` are looked for, each with one
    scan of ``text``."""
    carried: dict[str, str] = {}
    for kind, value in found:
        value = strip_invisible(value)
        if len(value) >= _CARRIED and value not in carried:
            carried[value] = kind
            if len(carried) == _CARRIED_AT_MOST:
                break
    markers: dict[str, str] = {}

    def hold(mark: str) -> str:
        return markers.setdefault(mark, f"\0{len(markers)}\0")

    held = _MARKER.sub(lambda match: hold(match.group()), text)
    cut: list[tuple[str, str]] = []
    for value in sorted(carried, key=len, reverse=True):
        count = held.count(value)
        if count:
            cut += [(carried[value], value)] * count
            held = held.replace(value, hold(marker(carried[value])))
    if not cut:
        return text, cut
    shown = {number: mark for mark, number in markers.items()}
    return _HELD.sub(lambda match: shown[match.group()], held), cut


def redact(text: str) -> str:
    """:func:`redact_text` without the counts."""
    return redact_text(text)[0]
