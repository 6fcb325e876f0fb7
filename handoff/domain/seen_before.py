"""What people wrote on earlier investigations, as the "Seen before" section of a start message shows
it: **human overrides first** (a person told the agents to stop or change course — the first thing the
next investigation of the same resources should know), then the other notes, newest first in each,
a few per investigation, each on one line as data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from handoff.domain.markdown import inline, single_line

# Notes shown per earlier investigation, and characters of each.
MAX_NOTES = 3
MAX_NOTE_CHARS = 300


def ordered_notes(notes: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """``notes`` (the history's ``humanNotes``, oldest first) with overrides first, newest first
    within overrides and within the other notes, at most :data:`MAX_NOTES`."""
    readable = [note for note in notes if isinstance(note, Mapping)]
    newest = sorted(readable, key=lambda note: str(note.get("at") or ""), reverse=True)
    overrides = [note for note in newest if note.get("override") is True]
    others = [note for note in newest if note.get("override") is not True]
    return [*overrides, *others][:MAX_NOTES]


def human_note_lines(item: Mapping[str, Any]) -> list[str]:
    """The sub-items of one earlier investigation's human notes (people's text: single-line, escaped,
    capped)."""
    notes = item.get("humanNotes")
    if not isinstance(notes, list):
        return []
    lines = []
    for note in ordered_notes(notes):
        kind = "Human override" if note.get("override") is True else "Human note"
        when = inline(str(note.get("at") or "")[:16].replace("T", " "))
        text = single_line(str(note.get("text") or ""))
        cut = " …" if len(text) > MAX_NOTE_CHARS else ""
        lines.append(
            f"  - {kind} by @{inline(note.get('author') or 'someone')} on {inline(note.get('backend') or '')}"
            f", {when} UTC: {inline(text[:MAX_NOTE_CHARS])}{cut}"
        )
    return lines
