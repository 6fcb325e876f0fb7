"""Caller text as data: the building blocks every message and shared-memory note renders caller text
with, so that no caller-supplied value can pass for the broker's own structure.

* A **single-line** value (a title, an id, a name) loses every line break and control character and is
  escaped (:func:`inline`) or put in a code span (:func:`code`), so it cannot start a line, a link, an
  image, emphasis, a heading, HTML or a code span of its own.
* A **multi-line** value (a summary, a hypothesis, a root cause) becomes a block quote in which every
  line starts with ``>`` (:func:`quote`, :func:`quote_list`), its inline markup escaped; code (a KQL
  query, JSON) is fenced inside the quote with a fence longer than any backtick run in it
  (:func:`quote_code`). So no caller line ever starts at the left margin.
* A **link** is only made to an ``https`` URL, percent-encoded so it cannot leave ``(...)``; any other
  URL is shown as inert code (:func:`link`).
* **Mentions and issue references** GitHub makes of text outside code (``@user``, ``@org/team``,
  ``#123``, ``owner/repo#123``, ``GH-123``: a notification, a cross-reference in the other issue's
  timeline, made with the broker's token) are broken by a zero-width space after the sign, written as
  the entity ``&#8203;``, which renders as the same characters (:func:`unlinked`). A URL GitHub makes a
  link of is left whole (what is inside a link is neither a mention nor a reference), except a GitHub
  issue or pull-request URL, which cross-references that issue too: it is shown as a code span.
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from collections.abc import Iterator
from urllib.parse import quote as percent_encode
from urllib.parse import urlsplit

# Every sequence some reader takes for a line break: CommonMark's three, and what str.splitlines(),
# browsers and models also break on (VT, FF, the file/group/record separators, NEL, LS, PS).
LINE_BREAKS = re.compile(r"\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
# Removed from caller text: control characters (Cc, NUL included; tabs are handled apart), the
# bidirectional embedding, override, isolate and mark controls (they reorder what a reader sees) and
# unpaired surrogates.
# Characters a reader cannot see but a model still reads: bidi controls, unpaired surrogates, zero-width
# spaces and joiners, word joiners, the BOM, interlinear annotations and the tag characters
# U+E0000-E007F that can spell hidden text. (A character class body, for the regular expressions.)
HIDDEN_CHARACTERS = (
    "\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb"
    "\ud800-\udfff\U000e0000-\U000e007f"
)
# What is removed from a line of caller text wherever it is shown, so that what stands either side of it
# joins up: the control characters that are not a line break (those part lines) or a tab (it becomes a
# space), and the hidden characters. Redaction looks for secrets in caller text without them too
# (:func:`strip_invisible`), so it sees the text a reader will see.
_INVISIBLE = re.compile(f"[\x00-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f{HIDDEN_CHARACTERS}]")
_PLAIN_HTTP = re.compile(r"(?i)\b(http)(?=://)")
_RULE_OR_UNDERLINE = re.compile(r"^[ \t]*[-=][-= \t]*$")
# Where GitHub would link a mention or an issue reference: "@" before a name (a word character before it
# makes an e-mail address, never a mention), "#" before a number (alone or after owner/repo), "GH-"
# before a number.
_REFERENCE = re.compile(r"(?<![A-Za-z0-9_])@(?=[A-Za-z0-9])|#(?=[0-9])|(?i:\bGH-)(?=[0-9])")
# Where GitHub's Markdown (cmark-gfm's extended autolinks) starts a link in text: a scheme http://,
# https:// or ftp:// (any case) not right after a letter, or "www." at the start or after whitespace or
# one of * _ ~ (.
_AUTOLINK_START = re.compile(r"(?<![A-Za-z])(?P<scheme>(?i:https?|ftp)://)|(?<![^ \t\n\v\f\r*_~(])www\.")
_AUTOLINK_SPACE = " \t\n\v\f\r"
# Trailing characters an autolink leaves out (a ")" only when unbalanced, ";" of an entity with it).
_AUTOLINK_TRAILING = "?!.,:*_~'\""
# A URL of a GitHub issue or pull request, which GitHub cross-references like "owner/repo#123": on any
# host (github.com, www.github.com or a GitHub Enterprise Server), any case.
_GITHUB_ISSUE_URL = re.compile(r"(?i)(?:https?://)?[^/?#]+/[^/?#]+/[^/?#]+/(?:issues|pulls?)/[0-9]")
# What escape() writes otherwise than as it is: the characters escaped wherever they are (code spans,
# emphasis, strikethrough, links and images, HTML and autolinks), an underscore unless it sits between two
# letters or digits (it then never opens or closes emphasis), an entity-like "&", "http" before "://"
# and the sign of a mention or an issue reference.
_MARKUP = re.compile(
    r"[\\`*~\[\]<]|(?<![^\W_])_|_(?![^\W_])"
    r"|&(?=#[0-9]{1,7};|#[xX][0-9A-Fa-f]{1,6};|[A-Za-z][A-Za-z0-9]{0,31};)"
    r"|(?P<http>(?i:\bhttp)(?=://))"
    r"|(?P<reference>(?<![A-Za-z0-9_])@(?=[A-Za-z0-9])|#(?=[0-9])|(?i:\bGH-)(?=[0-9]))"
)
# The characters of a bare URL Markdown could read as structure. GitHub links the URL as written, so a
# backslash escape would be part of the link: they are percent-encoded instead (the same resource).
_URL_MARKUP = re.compile(
    r"[\\`*~\[\]]|(?<![^\W_])_|_(?![^\W_])"
    r"|&(?=#[0-9]{1,7};|#[xX][0-9A-Fa-f]{1,6};|[A-Za-z][A-Za-z0-9]{0,31};)"
)
# Punctuation an autolink leaves out after it that escape() would escape, as a named entity: a backslash
# there would be taken into the link, an entity is left out like the character.
_AFTER_LINK = {"*": "&ast;", "_": "&lowbar;"}
_BACKSLASH_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
# A zero-width space: GitHub links neither "@\u200buser" nor "#\u200b123" (Renovate writes its release
# notes so). In Markdown as an entity, so the character is visible in the source.
ZERO_WIDTH_SPACE = "&#8203;"
# Characters kept as they are in a link destination; everything else is percent-encoded, so a
# destination never holds a space, a parenthesis, a bracket, an angle bracket, a backslash or a backtick.
_URL_SAFE = "-._~:/?#@!$&'*+,;=%"


def strip_invisible(text: str) -> str:
    """``text`` as a reader sees it once rendered: without the control characters (NUL included), bidi
    controls, zero-width and other hidden characters and unpaired surrogates that the rendering removes;
    line breaks and tabs are kept. ``text`` itself (the same object) when it holds none."""
    return _INVISIBLE.sub("", text)


def invisible_at(text: str) -> list[int]:
    """Where in ``text`` :func:`strip_invisible` removes a character, in order."""
    return [match.start() for match in _INVISIBLE.finditer(text)]


def _visible(text: str, *, keep_tabs: bool) -> str:
    """One line of ``text`` without what a reader cannot see (:func:`strip_invisible`); tabs become
    spaces unless kept."""
    text = strip_invisible(text)
    return text if keep_tabs else text.replace("\t", " ")


def single_line(value: object) -> str:
    """``value`` as one line: every line break becomes a space, control characters go, ends trimmed."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return _visible(LINE_BREAKS.sub(" ", text), keep_tabs=False).strip()


def lines_of(text: str, *, keep_tabs: bool = False) -> list[str]:
    """The lines of multi-line ``text``, split at every kind of line break, without control characters."""
    return [_visible(line, keep_tabs=keep_tabs).rstrip() for line in LINE_BREAKS.split(text)]


def _host_character(ch: str) -> bool:
    """Whether cmark-gfm takes ``ch`` for part of a host name: neither a space nor punctuation."""
    if ch.isspace():
        return False
    return ch not in string.punctuation if ch.isascii() else not unicodedata.category(ch).startswith("P")


def _domain_end(text: str, start: int, *, dotted: bool) -> int:
    """Where the domain that starts at ``text[start]`` ends, or -1 when an autolink takes none there:
    an underscore in one of its last two labels (unless it has more than ten), or no dot when one is
    needed. A backslash escape counts as the character it escapes."""
    i, dots, last, before_last = start + 1, 0, 0, 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            i += 1
        ch = text[i]
        if ch == "_":
            last += 1
        elif ch == ".":
            before_last, last, dots = last, 0, dots + 1
        elif ch != "-" and not _host_character(ch):
            break
        i += 1
    if ((before_last or last) and dots <= 10) or (dotted and not dots):
        return -1
    return i


def _autolink_end(text: str, start: int, end: int) -> int:
    """The end of the autolink ``text[start:end]`` once its trailing punctuation is left out: ``?!.,:*_~``
    and quotes, a ``)`` more than the ``(`` before it, and an entity-like ``&name;``."""
    opening, closing = text.count("(", start, end), text.count(")", start, end)
    while end > start:
        ch = text[end - 1]
        if ch == ")" and closing > opening:
            closing -= 1
        elif ch == ";":
            name = end - 2
            while name > start and text[name].isascii() and text[name].isalpha():
                name -= 1
            if name < end - 2 and text[name] == "&":
                end = name + 1
        elif ch not in _AUTOLINK_TRAILING:
            break
        end -= 1
    return end


def autolinks(text: str) -> Iterator[tuple[int, int]]:
    """Where GitHub makes a link of a bare URL in Markdown ``text`` (cmark-gfm's extended autolinks): a
    ``http://``, ``https://`` or ``ftp://`` URL with a host, or a ``www.`` domain, up to the next space or
    ``<`` and without trailing punctuation; (start, end) of each, in order. The start of ``text`` counts
    as the start of a line (the broker puts caller text after a space, ``(``, ``*`` or a line start)."""
    pos = 0
    while match := _AUTOLINK_START.search(text, pos):
        start = match.start()
        if match.group("scheme"):
            host = match.end()
            ok = host < len(text) and _host_character(text[host])
            end = _domain_end(text, host, dotted=False) if ok else -1
        else:
            end = _domain_end(text, start, dotted=True)
        if end < 0:
            pos = match.end()
            continue
        while end < len(text) and text[end] not in _AUTOLINK_SPACE and text[end] != "<":
            end += 1
        end = _autolink_end(text, start, end)
        if end > start:
            yield start, end
        pos = max(end, match.end())


def _issue_url_as_code(url: str) -> str | None:
    """A GitHub issue or pull-request URL (escaped Markdown) as a code span of its characters, with what
    follows it: GitHub neither links nor cross-references a URL in code. None for any other URL."""
    plain = _BACKSLASH_ESCAPE.sub(r"\1", url)
    if not _GITHUB_ISSUE_URL.match(plain):
        return None
    # A backslash the link ends with escapes the character after it, which the link left out: it stays
    # outside the code span with that character.
    if (len(url) - len(url.rstrip("\\"))) % 2:
        return code(_BACKSLASH_ESCAPE.sub(r"\1", url[:-1])) + "\\"
    return code(plain)


def unlinked(text: str, *, plain: bool = False) -> str:
    """``text`` with a zero-width space after each sign GitHub would make a mention or an issue reference
    of (``@user``, ``@org/team``, ``#123``, ``owner/repo#123``, ``GH-123``): the same characters to a
    reader, nothing linked, nobody notified.

    Markdown ``text`` takes the space as its entity, and a URL GitHub makes a link of (:func:`autolinks`)
    is left whole: inside a link, ``#@tenant`` or ``/@scope`` is neither a mention nor a reference, and a
    space there would break the link. A GitHub issue or pull-request URL, which GitHub would cross-
    reference, becomes a code span instead (the same characters, not linked). ``plain`` text such as an
    issue title links no URL: it takes the character itself (``"\u200b"``) after every sign."""
    if plain:
        return _REFERENCE.sub(lambda match: match.group() + "\u200b", text)
    out: list[str] = []
    pos = 0
    for start, end in (*autolinks(text), (len(text), len(text))):
        # Searched in place, so that what stands either side of the stretch counts as it does for GitHub.
        for match in _REFERENCE.finditer(text, pos, start):
            out += [text[pos : match.end()], ZERO_WIDTH_SPACE]
            pos = match.end()
        url = text[start:end]
        out += [text[pos:start], _issue_url_as_code(url) or url]
        pos = end
    return "".join(out)


def _escaped_text(line: str, start: int, end: int, *, after_link: bool) -> str:
    """``line[start:end]``, caller text outside a URL, escaped: markup backslash-escaped, ``http\\://``
    (never autolinked), a zero-width space after the sign of a mention or an issue reference. Right
    after a link, up to the next space, ``*`` and ``_`` are entities (:data:`_AFTER_LINK`)."""
    out: list[str] = []
    pos = start
    trailing = start  # the end of what follows a link up to the next space or "<"
    if after_link:
        trailing = next((i for i in range(start, end) if line[i] in _AUTOLINK_SPACE or line[i] == "<"), end)
    for match in _MARKUP.finditer(line, start, end):
        sign = match.group()
        if match.group("reference"):
            written = sign + ZERO_WIDTH_SPACE
        elif match.group("http"):
            written = sign + "\\"
        elif match.start() < trailing and sign in _AFTER_LINK:
            written = _AFTER_LINK[sign]
        else:
            written = "\\" + sign
        out += [line[pos : match.start()], written]
        pos = match.end()
    out.append(line[pos:end])
    return "".join(out)


def _url_markdown(url: str) -> str:
    """A bare URL GitHub links, as Markdown: a GitHub issue or pull-request URL as a code span (GitHub
    neither links nor cross-references a URL in code); any other URL with the characters Markdown could
    read as structure percent-encoded, so that it stays one link to the same resource and can open no
    code span, emphasis, link or HTML with the text around it."""
    if _GITHUB_ISSUE_URL.match(url):
        return code(url)
    return _URL_MARKUP.sub(lambda match: f"%{ord(match.group()):02X}", url)


def escape(line: str) -> str:
    """One line of caller text with its Markdown made inert (it renders as the same characters), and
    with no mention, issue reference or issue URL GitHub would link (:func:`unlinked`). A bare URL
    GitHub links (:func:`autolinks`; an ``http`` URL is never linked) is written by :func:`_url_markdown`."""
    plain_http = {match.start() for match in _PLAIN_HTTP.finditer(line)}
    out: list[str] = []
    pos = 0
    for start, end in (*autolinks(line), (len(line), len(line))):
        if start in plain_http:
            continue
        out += [_escaped_text(line, pos, start, after_link=pos > 0), _url_markdown(line[start:end])]
        pos = end
    text = "".join(out)
    # What only means something at the start of a line: headings, quotes, rules and setext underlines.
    body = text.lstrip(" \t")
    if body[:1] in ("#", ">") or _RULE_OR_UNDERLINE.match(body):
        return f"{text[: len(text) - len(body)]}\\{body}"
    return text


def inline(value: object) -> str:
    """A single-line value as escaped Markdown text."""
    return escape(single_line(value))


def code(value: object) -> str:
    """A single-line value as a code span (exact characters, nothing rendered inside)."""
    text = single_line(value)
    if not text:
        return "(empty)"
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def fence_for(text: str, minimum: int = 3) -> str:
    """A backtick fence longer than any backtick run inside ``text``, so the block cannot break."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(minimum, longest + 1)


def quote(text: str) -> list[str]:
    """Multi-line caller text as a block quote: every line starts with ``>``, its markup escaped."""
    return [f"> {escape(line)}" if line.strip() else ">" for line in lines_of(text)]


def quote_list(items: list[str], *, numbered: bool = False) -> list[str]:
    """A list of multi-line items inside one block quote (``- item`` or ``1. item``)."""
    out = []
    for n, item in enumerate(items, 1):
        bullet = f"{n}. " if numbered else "- "
        lines = lines_of(item)
        while lines and not lines[0].strip():
            lines.pop(0)
        while lines and not lines[-1].strip():
            lines.pop()
        first, *rest = lines or ["(empty)"]
        out.append(f"> {bullet}{escape(first)}".rstrip())
        out += [f"> {' ' * len(bullet)}{escape(line)}" if line.strip() else ">" for line in rest]
    return out


def quote_code(text: str, info: str = "") -> list[str]:
    """Code inside a block quote, fenced with more backticks than any run inside it."""
    body = lines_of(text, keep_tabs=True)
    fence = fence_for("\n".join(body))
    return [f"> {fence}{info}", *(f"> {line}" if line else ">" for line in body), f"> {fence}"]


def https_url(value: object, *, allow_http: bool = False) -> str | None:
    """``value`` as a link destination if it is an absolute ``https`` URL (or ``http`` when allowed),
    percent-encoded so it cannot end the destination early; None for any other scheme or a malformed
    URL."""
    text = str(value).strip()
    if not text or any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in text):
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme.lower() not in (("https", "http") if allow_http else ("https",)) or not parts.netloc:
        return None
    authority = f"{parts.scheme}://{parts.netloc}"  # brackets stay only around an IPv6 host
    return percent_encode(authority, safe=_URL_SAFE + "[]") + percent_encode(
        text[len(authority) :], safe=_URL_SAFE
    )


def link(title: object, url: object, *, trusted: bool = False) -> str:
    """``[title](url)`` for an https URL; otherwise the title and the URL as inert code. A ``trusted``
    URL (one the broker built from its own base URL) may also be http."""
    label = inline(title)
    target = https_url(url, allow_http=trusted)
    if target:
        return f"[{label or code(target)}]({target})"
    return f"{label} {code(url)} (not linked: only https links are)".lstrip()


def url_or_text(value: str) -> str:
    """A location the broker shows: an https URL as is (encoded), anything else as escaped text."""
    return https_url(value) or inline(value)


def cell(value: object) -> str:
    """A table cell: one line, escaped, pipes included."""
    return inline(value).replace("|", "\\|")
