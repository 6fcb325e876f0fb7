"""Secret redaction: credentials in caller and remote text are replaced by ``[redacted:<kind>]``.

The broker stores, renders, delivers, indexes and echoes what callers and remote systems send it. Before
it does, every free-text value goes through :func:`redact_text` (or :func:`redact_json` for JSON values,
:func:`redact_model` for wire models), which replaces each credential it recognises with a marker naming
its kind and counts what it replaced. What a person needs to follow the text stays: the name of the key
(``password=[redacted:password]``), the user and host of a URL
(``postgres://app:[redacted:url_password]@db.contoso.com``), the parameters of a SAS URL except its
signature.

Recognition is by shape, not by entropy: token formats with a fixed prefix (``ghp_``, ``xoxb-``,
``AKIA``, ``AIza``, ``eyJ…``, PEM blocks, the ``8Q~`` of Entra client secrets) anywhere, and values that
are labelled as secrets (``AccountKey=``, ``sig=``, ``password=``, ``"token": "…"``, ``Bearer …``). An
unlabelled random string is left alone, which keeps GUIDs, commit SHAs, hashes and resource IDs intact.

The module is pure (no I/O) and fast: every pattern is compiled once, each runs only when a literal it
needs occurs in the text, and none can backtrack super-linearly, so 256 KiB take a few milliseconds.
Redacting already redacted text changes nothing and counts nothing.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

MARK = "[redacted:"
ModelT = TypeVar("ModelT", bound=BaseModel)


def marker(kind: str) -> str:
    """The text that replaces a secret of ``kind``."""
    return f"{MARK}{kind}]"


# ---------------------------------------------------------------- what is not a secret

# Values that only stand for a secret: empty, masked, templated, a variable, a Key Vault reference, a word
# that says there is nothing. A labelled value like these is left as it is.
_PLACEHOLDER = re.compile(
    r"""(?ix)
    [-_*x#•.?…\s]*                                  # "", ***, xxxx, ..., ----
    | <[^<>]*> | \[[^\[\]]*\] | \(\s*\) | \{[^{}]*\} | \{\{.*\}\}       # <token>, [secret], {token}, {{ x }}
    | \$\{[^}]*\} | \$\([^)]*\) | \$[A-Za-z_][A-Za-z0-9_]* | %[A-Za-z_][A-Za-z0-9_]*%   # ${X} $(x) $X %X%
    | null | none | nil | undefined | n/?a | empty | true | false | unset | not[\s_-]?set
    | redacted | hidden | masked | omitted | removed | placeholder
    | your[\w\s-]* | my[_-]?(?:password|secret|token|key)
    | @Microsoft\.KeyVault\(.*\)
    """
)


def is_placeholder(value: str) -> bool:
    """True when ``value`` only stands for a secret (or is already redacted)."""
    return MARK in value or _PLACEHOLDER.fullmatch(value.strip().strip("\"'")) is not None


def _secretish(value: str) -> bool:
    # Loosely labelled values ("password: x", "token = x") must look like a credential: at least six
    # characters with a digit or a symbol. Keeps prose ("Token: expired") and code (KQL "password =
    # UserPassword") apart from "password: hunter2!".
    return len(value) >= 6 and re.search(r"[0-9]|[^A-Za-z0-9]", value) is not None


# ---------------------------------------------------------------- rules

Check = Callable[[re.Match[str]], bool]


@dataclass(frozen=True)
class _Rule:
    """One kind of secret: a pattern whose group ``secret`` is replaced (the whole match without one).

    ``needles`` are literals every match contains (lowercase unless ``cased``). Where the pattern is
    tried: only where a needle occurs (in the lowercased text, or in the text itself when ``cased``),
    starting there or up to ``back`` characters before; or, with ``scan``, the pattern scans the text
    itself, which is as fast as a substring search because every such pattern starts with a literal (the
    boundary checks come after it as look-behinds).
    """

    kind: str | Callable[[re.Match[str]], str]
    pattern: re.Pattern[str]
    needles: tuple[str, ...]
    check: Check | None = None
    back: int = 0
    cased: bool = False
    scan: bool = False

    def kind_of(self, match: re.Match[str]) -> str:
        return self.kind if isinstance(self.kind, str) else self.kind(match)


def _has_digit_and_letter(match: re.Match[str]) -> bool:
    value = match.group("secret")
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


def _aws_label(match: re.Match[str]) -> bool:
    # "secret_access_key" / "SecretAccessKey" on their own, "aws_secret" / "AWS_SECRET_KEY" with the prefix.
    before = match.string[max(0, match.start() - 4) : match.start()].lower()
    return match.group("access") is not None or before.endswith(("aws_", "aws-", "aws"))


def _not_placeholder(match: re.Match[str]) -> bool:
    return not is_placeholder(match.group("secret"))


def _basic_credentials(match: re.Match[str]) -> bool:
    value = match.group("secret")
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    user, sep, password = decoded.partition(":")
    return bool(sep and user and password and decoded.isprintable())


_KV_KEY = r"passw(?:or)?d|pwd|secret(?:[_-]?key)?|token|api[_-]?key|apikey"


def _kv_kind(match: re.Match[str]) -> str:
    key = match.group("key").lower()
    if key.startswith(("pass", "pwd")):
        return "password"
    if key.startswith("api"):
        return "api_key"
    if key.startswith("secret"):
        before = match.string[max(0, match.start() - 7) : match.start()].lower().replace("-", "_")
        return "client_secret" if before.endswith(("client_", "client")) else "secret"
    return "token"


def _kv_check(match: re.Match[str]) -> bool:
    value = match.group("secret")
    if is_placeholder(value):
        return False
    if match.group("key").lower() == "pwd" and value.startswith(("/", "~")):
        return False  # a shell's working directory, not a password
    if match.group("uq") is None:
        return True  # quoted: a deliberate value
    op = match.group("op")
    loose = ":" in op or op != op.strip()
    return _secretish(value) if loose else True


_B64 = r"A-Za-z0-9+/"
_URL_B64 = r"A-Za-z0-9_\-"

# Order matters: specific shapes first, so "token=ghp_…" counts a GitHub token and "Bearer eyJ…" a JWT;
# later rules skip what earlier ones already replaced.
RULES: tuple[_Rule, ...] = (
    _Rule(
        "private_key",
        re.compile(
            r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
            r"(?:(?:[^-]++|-(?!----))*+-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
            # cut short (an error body's first 200 characters): whole lines, and a last one at the end
            r"|(?:(?:\s|\\n)*+[A-Za-z0-9+/=]{40,})*+(?:(?:\s|\\n)*+[A-Za-z0-9+/=]++\s*+\Z)?)"
        ),
        ("-----begin",),
        scan=True,
    ),
    _Rule(
        "jwt",
        re.compile(
            rf"(?P<secret>eyJ(?<![{_URL_B64}]...)[{_URL_B64}]{{8,}}\.eyJ[{_URL_B64}]{{8,}}\.[{_URL_B64}]*+)"
        ),
        ("eyj",),
        scan=True,
    ),
    _Rule(
        "github_token",
        re.compile(r"(?P<secret>gh(?<![A-Za-z0-9]..)[pousr]_[A-Za-z0-9]{36,251})(?![A-Za-z0-9_])"),
        ("gh",),
        scan=True,
    ),
    _Rule(
        "github_token",
        re.compile(r"(?P<secret>github_pat_(?<![A-Za-z0-9_].{11})[A-Za-z0-9_]{22,251})(?![A-Za-z0-9_])"),
        ("github_pat_",),
        scan=True,
    ),
    _Rule(
        "slack_webhook",
        re.compile(r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<secret>[\w/-]{20,})"),
        ("hooks.slack.com/",),
        scan=True,
    ),
    _Rule(
        "teams_webhook",
        re.compile(r"webhook\.office\.com/webhookb2/(?P<secret>[^\s\"'<>`]{20,})"),
        ("webhook.office.com/webhookb2/",),
        scan=True,
    ),
    _Rule(
        "slack_token",
        re.compile(r"(?P<secret>xox(?<![A-Za-z0-9-]...)[abposr]-[A-Za-z0-9-]{10,})"),
        ("xox",),
        _has_digit_and_letter,
        scan=True,
    ),
    _Rule(
        "google_api_key",
        re.compile(r"(?P<secret>AIza(?<![A-Za-z0-9_-]....)[A-Za-z0-9_-]{35})(?![A-Za-z0-9_-])"),
        ("aiza",),
        scan=True,
    ),
    _Rule(
        "stripe_key",
        re.compile(r"(?<![A-Za-z0-9_])(?P<secret>[sr]k_live_[A-Za-z0-9]{20,})"),
        ("sk_live_", "rk_live_"),
        cased=True,
    ),
    _Rule(
        "npm_token",
        re.compile(r"(?P<secret>npm_(?<![A-Za-z0-9_]....)[A-Za-z0-9]{36})(?![A-Za-z0-9])"),
        ("npm_",),
        scan=True,
    ),
    _Rule(
        "aws_access_key_id",
        re.compile(r"(?P<secret>A(?:KIA|SIA)(?<![A-Za-z0-9]....)[A-Z2-7]{16})(?![A-Za-z0-9])"),
        ("akia", "asia"),
        scan=True,
    ),
    _Rule(
        "aws_secret_access_key",
        re.compile(
            r"(?i:secret(?P<access>[_-]?access)?(?:[_-]?key)?)"
            rf"\\?[\"']?\s*[:=]\s*\\?[\"']?(?P<secret>[{_B64}]{{40}})(?![{_B64}=])"
        ),
        ("secret",),
        _aws_label,
    ),
    _Rule(
        "azure_client_secret",
        re.compile(r"(?<![\w~.-])(?P<secret>[\w~.-]{3}\dQ~[\w~.-]{31,34})(?![\w~-])", re.ASCII),
        ("Q~",),
        back=4,
        cased=True,
    ),
    _Rule(
        "account_key",
        re.compile(rf"(?i)(?<![A-Za-z0-9])(?:Account|SharedAccess)Key\s*=\s*(?P<secret>[{_B64}=]{{8,}})"),
        ("accountkey", "sharedaccesskey"),
    ),
    _Rule(
        "sas_token",
        re.compile(r"(?i)(?<![A-Za-z0-9])SharedAccessSignature\s*=\s*(?P<secret>[^;\s\"'<>]{8,})"),
        ("sharedaccesssignature",),
    ),
    _Rule(
        "sas_signature",
        re.compile(r"(?i)(?<![A-Za-z0-9_])sig=(?P<secret>[A-Za-z0-9%+/=_-]{16,})"),
        ("sig=",),
    ),
    _Rule(
        "url_signature",
        re.compile(r"(?i)(?<![A-Za-z0-9_])X-(?:Amz|Goog)-Signature=(?P<secret>[0-9a-f]{32,})"),
        ("-signature=",),
        back=6,
    ),
    _Rule(
        "account_key",  # an 88-character base64 key (Azure Storage, Cosmos DB, ...) under a *key label
        re.compile(rf"(?i)key[0-9]?\\?[\"']?\s*[:=]\s*\\?[\"']?(?P<secret>[{_B64}]{{86}}==)(?![{_B64}=])"),
        ("key",),
    ),
    _Rule(
        "basic_auth",
        re.compile(rf"(?i)(?<![A-Za-z0-9])basic\s+(?P<secret>[{_B64}]{{6,}}={{0,2}})(?![{_B64}=])"),
        ("basic",),
        _basic_credentials,
    ),
    _Rule(
        "url_password",
        # a password may hold "#" and "?" (unencoded, as people type them); the host follows the last "@"
        re.compile(r"://(?<=[A-Za-z0-9]://)[^\s:/?#@\[\]\"'<>`]*+:(?P<secret>[^\s/\[\]\"'<>`]+)@(?=[\w\[])"),
        ("://",),
        _not_placeholder,
        scan=True,
    ),
    _Rule(
        "bearer_token",
        re.compile(r"(?i)(?<![A-Za-z0-9])bearer\s+(?P<secret>[A-Za-z0-9\-._~+/]{16,}+=*)"),
        ("bearer",),
        _has_digit_and_letter,
    ),
    _Rule(
        _kv_kind,
        re.compile(
            rf"(?i)(?P<key>{_KV_KEY})(?![A-Za-z0-9])"
            r"(?:\\?[\"'])?"
            r"(?P<op>[ \t]*:[ \t]*|=(?![=~])|[ \t]+=(?![=~])[ \t]+)"  # key=v, key = v, key: v
            r"(?:\\\"(?P<secret>(?:[^\"\\\n]|\\[^\"\n])*+)\\\""  # \"escaped JSON\"
            r"|\"(?P<secret2>(?:[^\"\\\n]|\\.)*+)\""  # "double quoted"
            r"|'(?P<secret3>[^'\n]*+)'"  # 'single quoted'
            r"|(?P<uq>[^\s\"'&;,<>\[\]{}()|\\`]++)(?![({]))"  # unquoted, not a call or a template
        ),
        ("pass", "pwd", "secret", "token", "api"),
        _kv_check,
    ),
)


# The key/value rule captures its value in one of four groups; name them all "secret" for the rest.
class _KvMatch:
    """A view of a key/value match whose ``secret`` group is whichever value group matched."""

    def __init__(self, match: re.Match[str]) -> None:
        self.match = match
        self.name = next(
            (name for name in ("secret", "secret2", "secret3", "uq") if match.group(name) is not None),
            "secret",
        )

    def group(self, name: str) -> Any:
        return self.match.group(self.name if name == "secret" else name)

    def start(self, name: str | int = 0) -> int:
        return self.match.start(self.name if name == "secret" else name)

    def end(self, name: str | int = 0) -> int:
        return self.match.end(self.name if name == "secret" else name)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.match, attr)


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

    def of(self, rule: _Rule) -> list[int] | None:
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


def _apply(rule: _Rule, text: str, positions: _Positions, counts: Counter[str]) -> str:
    has_value_groups = "uq" in rule.pattern.groupindex
    has_secret = "secret" in rule.pattern.groupindex

    def replace(raw: re.Match[str]) -> str:
        match: Any = _KvMatch(raw) if has_value_groups else raw
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


# ---------------------------------------------------------------- JSON values

# A dict key (or KQL column) naming a credential: its string value is a secret whatever it looks like.
_SECRET_NAME = re.compile(
    r"(?i)(?:passw(?:or)?d|pwd|secret|token|api[_-]?key|apikey|secret[_-]?key|access[_-]?key"
    r"|account[_-]?key|shared[_-]?access[_-]?key|private[_-]?key|client[_-]?secret|sig)"
)


def secret_name_kind(name: str) -> str | None:
    """The kind of secret a field called ``name`` holds (``dbPassword`` → ``password``), or None."""
    match = _SECRET_NAME.search(name)
    if match is None or match.end() != len(name):
        return None
    word = match.group(0).lower().replace("-", "").replace("_", "")
    if word in ("password", "passwd", "pwd"):
        return "password"
    if word in ("apikey",):
        return "api_key"
    if word in ("accountkey", "sharedaccesskey", "accesskey"):
        return "account_key"
    if word == "privatekey":
        return "private_key"
    if word == "sig":
        return "sas_signature"
    if word == "token":
        return "token"
    if word == "clientsecret" or (
        word == "secret" and name.lower().replace("_", "").endswith("clientsecret")
    ):
        return "client_secret"
    return "secret"


def _redact_value(value: str, name_kind: str | None, counts: Counter[str]) -> str:
    text, found = redact_text(value)
    counts.update(found)
    if name_kind is not None and not is_placeholder(text):
        counts[name_kind] += 1
        return marker(name_kind)
    return text


def _walk(value: Any, counts: Counter[str], name_kind: str | None = None) -> Any:
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


def _redact_secret_columns(table: dict[str, Any], counts: Counter[str]) -> None:
    """Cells of a KQL table under a column named like a credential (``password``, ``clientSecret``)."""
    columns, rows = table.get("columns"), table.get("rows")
    if not isinstance(columns, list) or not isinstance(rows, list):
        return
    kinds = {i: secret_name_kind(c) for i, c in enumerate(columns) if isinstance(c, str)}
    kinds = {i: k for i, k in kinds.items() if k is not None}
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


def redact_json(value: Any) -> tuple[Any, dict[str, int]]:
    """A JSON value (dicts, lists, strings, numbers) with secrets redacted, and the count per kind.

    Strings are redacted with :func:`redact_text`, dict keys too (two keys that become equal are kept
    apart with a `` #2`` suffix). A string under a key that names a credential (``password``,
    ``clientSecret``, ``accessToken``, ``apiKey``, ``AccountKey``, ``sig`` ...) is replaced whole unless it
    is a placeholder, and so are the cells of a KQL table (``{"kind": "kql", "columns", "rows"}``) under
    such a column. Numbers, booleans and null are kept: they are not credentials.
    """
    strings: list[str] = []
    # Most values hold no secret: one pass over all their text together says so (a secret found there,
    # even one spanning two strings, sends the value through the walk below).
    if not _collect(value, strings) and not redact_text("\n".join(strings))[1]:
        return value, {}
    counts: Counter[str] = Counter()
    return _walk(value, counts), dict(counts)


def _collect(value: Any, strings: list[str]) -> bool:
    """Gather the strings (keys included) of a JSON value; True when a field or KQL column is named
    like a credential (its value is redacted whatever it looks like)."""
    named = False
    stack = [value]
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


# ---------------------------------------------------------------- wire models


def redact_model(model: ModelT, fields: Iterable[str]) -> tuple[ModelT, dict[str, int]]:
    """``model`` with the JSON of ``fields`` (wire names) redacted, validated again, and the counts.

    The same object comes back when there is nothing to redact. A marker longer than what it replaced
    can push a string past its field's ``max_length``; such a string is shortened to the limit (the
    secret is already gone), so the result always validates, now and when it is read back from storage.
    """
    data = model.model_dump(mode="json", by_alias=True)
    counts: Counter[str] = Counter()
    for name in fields:
        if data.get(name) is not None:
            data[name], found = redact_json(data[name])
            counts.update(found)
    if not counts:
        return model, {}
    for _ in range(1000):
        try:
            return type(model).model_validate(data), merge_counts(counts)
        except ValidationError as exc:
            if not _repair(data, exc):
                raise
    raise ValueError("could not fit the redacted request into its schema")  # pragma: no cover


def _repair(data: Any, exc: ValidationError) -> bool:
    """Make a redacted document valid again: a string pushed past its ``max_length`` by a marker is
    shortened (the secret is already gone); an item of a list that no longer has its shape (a resource ID
    a secret was cut out of) is dropped. False when an error is of neither kind."""
    repaired = False
    drops: list[tuple[list[Any], int]] = []
    for error in exc.errors(include_url=False):
        limit = (error.get("ctx") or {}).get("max_length")
        parent, key = _locate(data, error["loc"])
        if parent is None:
            return False
        if error["type"] == "string_too_long" and isinstance(limit, int) and isinstance(parent[key], str):
            parent[key] = parent[key][: max(limit - 1, 0)] + "…"
            repaired = True
        elif isinstance(parent, list) and isinstance(key, int) and isinstance(parent[key], str):
            drops.append((parent, key))
        else:
            return False
    for parent, key in sorted(drops, key=lambda drop: -drop[1]):
        del parent[key]
        repaired = True
    return repaired


def _locate(data: Any, loc: tuple[int | str, ...]) -> tuple[Any, int | str]:
    """The container and key a pydantic error location points at (union tags skipped)."""
    parent: Any = None
    key: int | str = ""
    current = data
    for part in loc:
        if isinstance(current, dict):
            if part not in current:
                continue  # a discriminated union's tag: not a level of the JSON
            parent, key, current = current, part, current[part]
        elif isinstance(current, list) and isinstance(part, int) and part < len(current):
            parent, key, current = current, part, current[part]
        else:
            return None, ""
    return parent, key


# The caller-written text of the two requests (wire names); ids, agent names and enums are validated
# elsewhere and left as they are.
HANDOFF_TEXT_FIELDS = ("context", "correlationId")
HANDBACK_TEXT_FIELDS = ("summary", "rootCause", "recommendedActions", "evidence")


# ---------------------------------------------------------------- logs

_LOG_PREFIX = "handoff"
_installed = False


def install_log_redaction() -> None:
    """Redact the broker's own log records (logger ``handoff`` and below) as they are made: the message
    with its arguments, and the text of an exception (a validation error quotes the caller's input), so
    no secret reaches a log whatever a log line or a traceback carries. Idempotent."""
    global _installed
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()

    def redacting_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        if record.name == _LOG_PREFIX or record.name.startswith(_LOG_PREFIX + "."):
            try:
                record.msg, record.args = redact(record.getMessage()), None
                if record.exc_info and record.exc_info[1] is not None:
                    text = "".join(traceback.format_exception(*record.exc_info))
                    record.exc_text, record.exc_info = redact(text.rstrip("\n")), None
            except Exception:  # a log line must never fail the work that logs it
                record.msg, record.args = "(log line could not be redacted)", None
        return record

    logging.setLogRecordFactory(redacting_record)
