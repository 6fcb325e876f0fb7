"""Draw a :class:`~handoff.domain.timeline.SequenceDiagram` as SVG, without a browser or Mermaid.

Participants are columns with a box at the top and the bottom and a dashed lifeline between; each message
is a horizontal arrow with its label above it (dashed for answers, red with a cross for failures), each
note a yellow box over its participants. Widths come from an estimate of the text's width, so columns
move apart as far as their longest label needs.

Every text is XML-escaped here even though the diagram's labels are already safe text; no attribute
holds caller text. The SVG has no script, no links and no external references.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from xml.sax.saxutils import escape

from handoff.domain.timeline import Message, Note, SequenceDiagram

FONT_SIZE = 12
CHAR_WIDTH = 7.0  # a generous average for 12 px sans-serif, so labels fit their columns
MARGIN = 20.0
BOX_HEIGHT = 34.0
MIN_BOX_WIDTH = 100.0
MIN_GAP = 150.0
ROW = 38.0
NOTE_HEIGHT = 26.0
INK = "#333333"
FAILED = "#c62828"


def text_width(text: str) -> float:
    """The estimated width of ``text`` in pixels."""
    return len(text) * CHAR_WIDTH


@dataclass
class _Layout:
    """Where each participant's column is, and how tall the diagram is."""

    centers: dict[str, float]
    widths: dict[str, float]
    left: float
    right: float

    @classmethod
    def of(cls, diagram: SequenceDiagram) -> _Layout:
        keys = [p.key for p in diagram.participants]
        widths = {p.key: max(MIN_BOX_WIDTH, text_width(p.label) + 24) for p in diagram.participants}
        gaps = [max(MIN_GAP, (widths[a] + widths[b]) / 2 + 20) for a, b in pairwise(keys)]
        index = {key: i for i, key in enumerate(keys)}
        spans: list[tuple[int, int, float]] = []
        for step in diagram.steps:
            if isinstance(step, Message) and step.sender != step.receiver:
                low, high = sorted((index[step.sender], index[step.receiver]))
                spans.append((low, high, text_width(step.label) + 40))
        # Short spans first: a long message then only widens what its shorter neighbours left too narrow.
        for low, high, need in sorted(spans, key=lambda span: span[1] - span[0]):
            missing = need - sum(gaps[low:high])
            if missing > 0:
                for i in range(low, high):
                    gaps[i] += missing / (high - low)
        centers: dict[str, float] = {}
        x = 0.0
        for i, key in enumerate(keys):
            centers[key] = x
            x += gaps[i] if i < len(gaps) else 0
        left = min((centers[k] - widths[k] / 2 for k in keys), default=0.0)
        right = max((centers[k] + widths[k] / 2 for k in keys), default=0.0)
        layout = cls(centers, widths, left, right)
        for step in diagram.steps:
            if isinstance(step, Note):
                start, end = layout.note_span(step)
                left, right = min(left, start), max(right, end)
        # Move everything right so the leftmost box or note starts at the margin.
        shift = MARGIN - left
        return cls({key: x + shift for key, x in centers.items()}, widths, MARGIN, right + shift)

    def note_span(self, note: Note) -> tuple[float, float]:
        """Left and right edge of a note: over its participants, and wide enough for its text."""
        xs = [self.centers[key] for key in note.over]
        low, high = min(xs) - 40, max(xs) + 40
        need = text_width(note.label) + 20
        if high - low < need:
            middle = (low + high) / 2
            low, high = middle - need / 2, middle + need / 2
        return low, high


def _text(x: float, y: float, text: str, anchor: str = "middle", fill: str = INK) -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}">{escape(text)}</text>'


def _boxes(diagram: SequenceDiagram, layout: _Layout, y: float) -> list[str]:
    parts = []
    for p in diagram.participants:
        x, width = layout.centers[p.key], layout.widths[p.key]
        parts.append(
            f'<rect x="{x - width / 2:.1f}" y="{y:.1f}" width="{width:.1f}" height="{BOX_HEIGHT:.1f}" '
            f'rx="4" fill="#eaeaf7" stroke="{INK}"/>'
        )
        parts.append(_text(x, y + BOX_HEIGHT / 2 + FONT_SIZE / 3, p.label))
    return parts


def _message(step: Message, layout: _Layout, y: float) -> list[str]:
    x1, x2 = layout.centers[step.sender], layout.centers[step.receiver]
    color = FAILED if step.style == "failed" else INK
    dash = ' stroke-dasharray="6 4"' if step.style == "dashed" else ""
    head = "" if step.style == "failed" else ' marker-end="url(#arrow)"'
    parts = [
        _text((x1 + x2) / 2, y - 7, step.label, fill=color),
        f'<line x1="{x1:.1f}" y1="{y:.1f}" x2="{x2:.1f}" y2="{y:.1f}" stroke="{color}" '
        f'stroke-width="1.5"{dash}{head}/>',
    ]
    if step.style == "failed":  # a cross where the message did not arrive
        end = x2 - 6 if x2 > x1 else x2 + 6
        parts.append(
            f'<path d="M{end - 5:.1f},{y - 5:.1f} L{end + 5:.1f},{y + 5:.1f} '
            f'M{end - 5:.1f},{y + 5:.1f} L{end + 5:.1f},{y - 5:.1f}" stroke="{color}" stroke-width="2"/>'
        )
    return parts


def _note(step: Note, layout: _Layout, y: float) -> list[str]:
    low, high = layout.note_span(step)
    top = y - NOTE_HEIGHT / 2 - 4
    return [
        f'<rect x="{low:.1f}" y="{top:.1f}" width="{high - low:.1f}" height="{NOTE_HEIGHT:.1f}" '
        f'fill="#fff5ad" stroke="#aaaa33"/>',
        _text((low + high) / 2, top + NOTE_HEIGHT / 2 + FONT_SIZE / 3, step.label),
    ]


def to_svg(diagram: SequenceDiagram, title: str = "Handoff timeline") -> str:
    """The diagram as a standalone SVG document."""
    layout = _Layout.of(diagram)
    width = layout.right + MARGIN
    first_row = MARGIN + BOX_HEIGHT + ROW
    bottom_boxes = first_row + ROW * len(diagram.steps)
    height = bottom_boxes + BOX_HEIGHT + MARGIN
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="Helvetica, Arial, sans-serif" '
        f'font-size="{FONT_SIZE}" role="img">',
        f"<title>{escape(title)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
        f'markerHeight="8" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{INK}"/></marker></defs>',
        '<rect width="100%" height="100%" fill="#ffffff"/>',
    ]
    for x in layout.centers.values():
        parts.append(
            f'<line x1="{x:.1f}" y1="{MARGIN + BOX_HEIGHT:.1f}" x2="{x:.1f}" y2="{bottom_boxes:.1f}" '
            f'stroke="#999999" stroke-dasharray="4 4"/>'
        )
    parts += _boxes(diagram, layout, MARGIN)
    for row, step in enumerate(diagram.steps):
        y = first_row + ROW * row
        parts += _message(step, layout, y) if isinstance(step, Message) else _note(step, layout, y)
    parts += _boxes(diagram, layout, bottom_boxes)
    parts.append("</svg>")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + "\n".join(parts) + "\n"
