"""Reading a rendered message the way a Markdown renderer (and a careful model) would: which lines are
the broker's structure (headings, marker lines, the header), which are inside fences or quotes, and
which links can be clicked."""

from __future__ import annotations

import html
import json
import re
import string
from typing import Any

MARKER_PREFIX = "handoff-ref:"
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_ATX = re.compile(r"^ {0,3}#{1,6}(?:[ \t]|$)")
_SETEXT = re.compile(r"^ {0,3}(?:=+|-+)[ \t]*$")
_QUOTE = re.compile(r"^ {0,3}>")
_LINK = re.compile(r"\[((?:\\.|[^\\\[\]])*)\]\(([^()\s]*)\)")


def unfenced(lines: list[str]) -> list[str]:
    """The lines outside fenced code blocks (CommonMark: a fence closes with the same character and at
    least the same length, and nothing after it)."""
    out: list[str] = []
    fence: str | None = None
    for line in lines:
        match = _FENCE.match(line)
        if fence is None:
            if match and not (match.group(1)[0] == "`" and "`" in match.group(2)):
                fence = match.group(1)
                continue
            out.append(line)
        elif (
            match
            and match.group(1)[0] == fence[0]
            and len(match.group(1)) >= len(fence)
            and not match.group(2).strip()
        ):
            fence = None
    return out


def top_level(text: str) -> list[str]:
    """Lines of the message outside column-0 fences."""
    return unfenced(text.split("\n"))


def headings(text: str) -> list[str]:
    """ATX headings outside fences, in order."""
    return [line for line in top_level(text) if _ATX.match(line)]


def setext_lines(text: str) -> list[str]:
    """Lines outside fences that would underline the line before into a heading (or break it)."""
    return [line for line in top_level(text) if _SETEXT.match(line)]


def marker_lines(text: str) -> list[str]:
    """Every line that is (after trimming) a ``handoff-ref:`` marker line, fenced or not."""
    return [line for line in text.split("\n") if line.strip().startswith(MARKER_PREFIX)]


def header_lines(text: str) -> list[str]:
    """Every line that starts like the broker's header ``[Handoff <id>]``."""
    return [line for line in text.split("\n") if line.lstrip().startswith("[Handoff")]


def quoted_blocks(text: str) -> list[list[str]]:
    """The contents of each run of blockquote lines at the top level (the ``>`` and one space removed)."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in top_level(text):
        if _QUOTE.match(line):
            content = line.lstrip(" ")[1:]
            content = content[1:] if content.startswith(" ") else content
            if current is None:
                current = []
                blocks.append(current)
            current.append(content)
        else:
            current = None
    return blocks


def structure_inside_quotes(text: str) -> list[str]:
    """Lines inside quotes (outside the quotes' own fences) that would become headings, nested quotes
    or setext underlines: caller text must never produce any."""
    found = []
    for block in quoted_blocks(text):
        for line in unfenced(block):
            if _ATX.match(line) or _SETEXT.match(line) or _QUOTE.match(line):
                found.append(line)
    return found


def strip_code_spans(line: str) -> str:
    """``line`` without its code spans (a run of n backticks up to the next run of exactly n)."""
    out, i = [], 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line):
            out.append(line[i : i + 2])
            i += 2
            continue
        if ch == "`":
            run = len(line[i:]) - len(line[i:].lstrip("`"))
            closing = re.compile(r"(?<!`)" + "`" * run + r"(?!`)")
            match = closing.search(line, i + run)
            if match:
                i = match.end()
                continue
            out.append("`" * run)
            i += run
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def unescaped(line: str, char: str) -> int:
    """How many times ``char`` occurs in ``line`` not preceded by a backslash escape."""
    count, i = 0, 0
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        count += line[i] == char
        i += 1
    return count


def prose_lines(text: str) -> list[str]:
    """Every line a renderer reads as text (outside fences at the top level and inside quotes), with
    code spans removed."""
    lines = [line for line in top_level(text) if not _QUOTE.match(line)]
    for block in quoted_blocks(text):
        lines += unfenced(block)
    return [strip_code_spans(line) for line in lines]


def links(text: str) -> list[tuple[str, str]]:
    """(text, destination) of every inline link a renderer would make from the message's prose."""
    return [(m.group(1), m.group(2)) for line in prose_lines(text) for m in _LINK.finditer(line)]


def open_brackets(text: str) -> int:
    """Unescaped ``[`` in the prose, not counting the header's ``[Handoff``."""
    total = sum(unescaped(line, "[") for line in prose_lines(text))
    return total - len([line for line in top_level(text) if line.startswith("[Handoff ")])


def raw_html(text: str) -> list[str]:
    """Prose lines with an unescaped ``<`` (raw HTML, autolinks, comments)."""
    return [line for line in prose_lines(text) if unescaped(line, "<")]


def payload_of(text: str) -> dict[str, Any]:
    """The fenced ``json`` payload at the end of a start message."""
    section = text.split("\n## Payload\n", 1)[1]
    match = re.search(r"^(`{3,})json\n(.*?)\n\1$", section, re.S | re.M)
    assert match, "start message has no json block"
    return json.loads(match.group(2))


# What GitHub links in rendered text outside code: a mention ("@" before a name, not after a word
# character), an issue reference ("#" before a number, after owner/repo or alone; "GH-" before one).
_GITHUB_AUTOLINK = re.compile(r"(?<![A-Za-z0-9_])@[A-Za-z0-9][\w/-]*|[\w./-]*#[0-9]+|(?i:\bGH-[0-9]+)")
_ENTITY_REF = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{0,31});")
# cmark-gfm's extended autolinks, as GitHub renders them: "http://", "https://" or "ftp://" (any case, not
# after a letter) then a character that is neither a space nor punctuation, or "www." at the start or
# after whitespace or one of *_~( ; up to whitespace or "<".
_ASCII_PUNCTUATION = re.escape(string.punctuation)
_GFM_CANDIDATE = re.compile(
    rf"(?:(?<![A-Za-z])(?i:https?|ftp)://(?=[^\s{_ASCII_PUNCTUATION}])|(?<![^ \t\n\v\f\r*_~(])www\.)"
    r"[^ \t\n\v\f\r<]*"
)
_GFM_DOMAIN = re.compile(r"(?:\\?[^\s!-,/:-@\[\]^`{-~\\])+")
_GFM_TRAILING = re.compile(r"(?:[?!.,:*_~'\"]|&[A-Za-z]+;|;)$")
# A GitHub issue or pull-request URL, which GitHub cross-references from a link (a "mentioned this"), on
# github.com or a GitHub Enterprise Server host.
_GITHUB_ISSUE_URL = re.compile(r"(?i)^(?:https?://)?[^/?#]+/[^/?#]+/[^/?#]+/(?:issues|pull)/\d")


def gfm_autolinks(line: str) -> list[tuple[int, int]]:
    """(start, end) of every bare URL GitHub's Markdown makes a link of in ``line`` (escaped Markdown
    text, outside code): the scheme or ``www.``, a domain without an underscore in its last two labels
    (``www.`` needs a dot), the rest up to whitespace or ``<``, less trailing punctuation, unbalanced
    ``)`` and entity-like ``&name;``."""
    found: list[tuple[int, int]] = []
    pos = 0
    while match := _GFM_CANDIDATE.search(line, pos):
        url = match.group()
        host = url.index("://") + 3 if "://" in url[:8] else 0
        domain = _GFM_DOMAIN.match(url, host)
        labels = domain.group().replace("\\", "").split(".") if domain else []
        if not domain or any("_" in label for label in labels[-2:]) or (host == 0 and len(labels) < 2):
            pos = match.start() + 1
            continue
        while True:
            trailing = _GFM_TRAILING.search(url)
            if trailing:
                url = url[: trailing.start()]
            elif url.endswith(")") and url.count(")") > url.count("("):
                url = url[:-1]
            else:
                break
        found.append((match.start(), match.start() + len(url)))
        pos = match.start() + max(len(url), 1)
    return found


def as_rendered(line: str) -> str:
    """The text a Markdown renderer makes of ``line``: backslash escapes resolved, entities decoded."""
    out, i = [], 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line) and line[i + 1] in string.punctuation:
            out.append(line[i + 1])
            i += 2
            continue
        entity = _ENTITY_REF.match(line, i)
        if entity:
            out.append(html.unescape(entity.group()))
            i = entity.end()
            continue
        out.append(line[i])
        i += 1
    return "".join(out)


def bare_urls(text: str) -> list[str]:
    """Every bare URL GitHub makes a link of in the message's prose (outside fences, code spans, HTML
    comments and inline links), as written: GitHub links the source characters, so a backslash escape
    inside one is in the link and on screen."""
    found = []
    for line in prose_lines(text):
        line = _LINK.sub(" ", re.sub(r"<!--.*?-->", "", line))
        found += [line[start:end] for start, end in gfm_autolinks(line)]
    return found


def github_autolinks(text: str) -> list[str]:
    """What GitHub would link in the message's prose and notify or cross-reference with it, as rendered
    (outside fences, code spans, HTML comments and links): mentions, issue references, and bare URLs
    of an issue or pull request. A mention or a reference inside a URL GitHub links is part of the link."""
    found = []
    for line in prose_lines(text):
        line = _LINK.sub(" ", re.sub(r"<!--.*?-->", "", line))
        rest, pos = [], 0
        for start, end in gfm_autolinks(line):
            url = as_rendered(line[start:end])
            if _GITHUB_ISSUE_URL.match(url):
                found.append(url)
            rest.append(line[pos:start])
            pos = end
        rest.append(line[pos:])
        found += _GITHUB_AUTOLINK.findall(" ".join(as_rendered(part) for part in rest))
    return found


def as_read(text: str) -> str:
    """What a reader sees of rendered text: escapes resolved, entities decoded, zero-width spaces gone."""
    return as_rendered(text).replace("\u200b", "")
