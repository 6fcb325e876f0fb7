"""What is a secret and what is not: the rules (a pattern per kind of credential, with the literals it needs
and the checks it must pass), the placeholders that only stand for a secret, and the field names that label
one. Data and small predicates; the engine that applies them is :mod:`handoff.domain.redaction.text`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from handoff.domain.markdown import strip_invisible

MARK = "[redacted:"


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


class SecretMatch(Protocol):
    """What the rules' checks read of a match: :class:`re.Match`, or the key/value rule's view of one."""

    @property
    def string(self) -> str: ...

    def group(self, name: str, /) -> str | None: ...

    def start(self, name: str | int = 0, /) -> int: ...

    def end(self, name: str | int = 0, /) -> int: ...


Check = Callable[[SecretMatch], bool]


def _filled(match: SecretMatch, name: str) -> str:
    """A group that is set whenever a check runs (the secret, the key/value rule's key and operator)."""
    return match.group(name) or ""


@dataclass(frozen=True)
class Rule:
    """One kind of secret: a pattern whose group ``secret`` is replaced (the whole match without one).

    ``needles`` are literals every match contains (lowercase unless ``cased``). Where the pattern is
    tried: only where a needle occurs (in the lowercased text, or in the text itself when ``cased``),
    starting there or up to ``back`` characters before; or, with ``scan``, the pattern scans the text
    itself, which is as fast as a substring search because every such pattern starts with a literal (the
    boundary checks come after it as look-behinds).
    """

    kind: str | Callable[[SecretMatch], str]
    pattern: re.Pattern[str]
    needles: tuple[str, ...]
    check: Check | None = None
    back: int = 0
    cased: bool = False
    scan: bool = False

    def kind_of(self, match: SecretMatch) -> str:
        """The kind of secret ``match`` is (a fixed one, or read from the match)."""
        return self.kind if isinstance(self.kind, str) else self.kind(match)


def _has_digit_and_letter(match: SecretMatch) -> bool:
    value = _filled(match, "secret")
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


def _aws_label(match: SecretMatch) -> bool:
    # "secret_access_key" / "SecretAccessKey" on their own, "aws_secret" / "AWS_SECRET_KEY" with the prefix.
    before = match.string[max(0, match.start() - 4) : match.start()].lower()
    return match.group("access") is not None or before.endswith(("aws_", "aws-", "aws"))


def _not_placeholder(match: SecretMatch) -> bool:
    return not is_placeholder(_filled(match, "secret"))


def _basic_credentials(match: SecretMatch) -> bool:
    value = _filled(match, "secret")
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    user, sep, password = decoded.partition(":")
    return bool(sep and user and password and decoded.isprintable())


_KV_KEY = r"passw(?:or)?d|pwd|secret(?:[_-]?key)?|token|api[_-]?key|apikey"


def _kv_kind(match: SecretMatch) -> str:
    key = _filled(match, "key").lower()
    if key.startswith(("pass", "pwd")):
        return "password"
    if key.startswith("api"):
        return "api_key"
    if key.startswith("secret"):
        before = match.string[max(0, match.start() - 7) : match.start()].lower().replace("-", "_")
        return "client_secret" if before.endswith(("client_", "client")) else "secret"
    return "token"


def _kv_check(match: SecretMatch) -> bool:
    value = _filled(match, "secret")
    if is_placeholder(value):
        return False
    if _filled(match, "key").lower() == "pwd" and value.startswith(("/", "~")):
        return False  # a shell's working directory, not a password
    if match.group("uq") is None:
        return True  # quoted: a deliberate value
    op = _filled(match, "op")
    loose = ":" in op or op != op.strip()
    return _secretish(value) if loose else True


_B64 = r"A-Za-z0-9+/"
_URL_B64 = r"A-Za-z0-9_\-"

# Order matters: specific shapes first, so "token=ghp_…" counts a GitHub token and "Bearer eyJ…" a JWT;
# later rules skip what earlier ones already replaced.
RULES: tuple[Rule, ...] = (
    Rule(
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
    Rule(
        "jwt",
        re.compile(
            rf"(?P<secret>eyJ(?<![{_URL_B64}]...)[{_URL_B64}]{{8,}}\.eyJ[{_URL_B64}]{{8,}}\.[{_URL_B64}]*+)"
        ),
        ("eyj",),
        scan=True,
    ),
    Rule(
        "github_token",
        re.compile(r"(?P<secret>gh(?<![A-Za-z0-9]..)[pousr]_[A-Za-z0-9]{36,251})(?![A-Za-z0-9_])"),
        ("gh",),
        scan=True,
    ),
    Rule(
        "github_token",
        re.compile(r"(?P<secret>github_pat_(?<![A-Za-z0-9_].{11})[A-Za-z0-9_]{22,251})(?![A-Za-z0-9_])"),
        ("github_pat_",),
        scan=True,
    ),
    Rule(
        "slack_webhook",
        re.compile(r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<secret>[\w/-]{20,})"),
        ("hooks.slack.com/",),
        scan=True,
    ),
    Rule(
        "teams_webhook",
        re.compile(r"webhook\.office\.com/webhookb2/(?P<secret>[^\s\"'<>`]{20,})"),
        ("webhook.office.com/webhookb2/",),
        scan=True,
    ),
    Rule(
        "slack_token",
        re.compile(r"(?P<secret>xox(?<![A-Za-z0-9-]...)[abposr]-[A-Za-z0-9-]{10,})"),
        ("xox",),
        _has_digit_and_letter,
        scan=True,
    ),
    Rule(
        "google_api_key",
        re.compile(r"(?P<secret>AIza(?<![A-Za-z0-9_-]....)[A-Za-z0-9_-]{35})(?![A-Za-z0-9_-])"),
        ("aiza",),
        scan=True,
    ),
    Rule(
        "stripe_key",
        re.compile(r"(?<![A-Za-z0-9_])(?P<secret>[sr]k_live_[A-Za-z0-9]{20,})"),
        ("sk_live_", "rk_live_"),
        cased=True,
    ),
    Rule(
        "npm_token",
        re.compile(r"(?P<secret>npm_(?<![A-Za-z0-9_]....)[A-Za-z0-9]{36})(?![A-Za-z0-9])"),
        ("npm_",),
        scan=True,
    ),
    Rule(
        "aws_access_key_id",
        re.compile(r"(?P<secret>A(?:KIA|SIA)(?<![A-Za-z0-9]....)[A-Z2-7]{16})(?![A-Za-z0-9])"),
        ("akia", "asia"),
        scan=True,
    ),
    Rule(
        "aws_secret_access_key",
        re.compile(
            r"(?i:secret(?P<access>[_-]?access)?(?:[_-]?key)?)"
            rf"\\?[\"']?\s*[:=]\s*\\?[\"']?(?P<secret>[{_B64}]{{40}})(?![{_B64}=])"
        ),
        ("secret",),
        _aws_label,
    ),
    Rule(
        "azure_client_secret",
        re.compile(r"(?<![\w~.-])(?P<secret>[\w~.-]{3}\dQ~[\w~.-]{31,34})(?![\w~-])", re.ASCII),
        ("Q~",),
        back=4,
        cased=True,
    ),
    Rule(
        "account_key",
        re.compile(rf"(?i)(?<![A-Za-z0-9])(?:Account|SharedAccess)Key\s*=\s*(?P<secret>[{_B64}=]{{8,}})"),
        ("accountkey", "sharedaccesskey"),
    ),
    Rule(
        "sas_token",
        re.compile(r"(?i)(?<![A-Za-z0-9])SharedAccessSignature\s*=\s*(?P<secret>[^;\s\"'<>]{8,})"),
        ("sharedaccesssignature",),
    ),
    Rule(
        "sas_signature",
        re.compile(r"(?i)(?<![A-Za-z0-9_])sig=(?P<secret>[A-Za-z0-9%+/=_-]{16,})"),
        ("sig=",),
    ),
    Rule(
        "url_signature",
        re.compile(r"(?i)(?<![A-Za-z0-9_])X-(?:Amz|Goog)-Signature=(?P<secret>[0-9a-f]{32,})"),
        ("-signature=",),
        back=6,
    ),
    Rule(
        "account_key",  # an 88-character base64 key (Azure Storage, Cosmos DB, ...) under a *key label
        re.compile(rf"(?i)key[0-9]?\\?[\"']?\s*[:=]\s*\\?[\"']?(?P<secret>[{_B64}]{{86}}==)(?![{_B64}=])"),
        ("key",),
    ),
    Rule(
        "basic_auth",
        re.compile(rf"(?i)(?<![A-Za-z0-9])basic\s+(?P<secret>[{_B64}]{{6,}}={{0,2}})(?![{_B64}=])"),
        ("basic",),
        _basic_credentials,
    ),
    Rule(
        "url_password",
        # a password may hold "#" and "?" (unencoded, as people type them); the host follows the last "@"
        re.compile(r"://(?<=[A-Za-z0-9]://)[^\s:/?#@\[\]\"'<>`]*+:(?P<secret>[^\s/\[\]\"'<>`]+)@(?=[\w\[])"),
        ("://",),
        _not_placeholder,
        scan=True,
    ),
    Rule(
        "bearer_token",
        re.compile(r"(?i)(?<![A-Za-z0-9])bearer\s+(?P<secret>[A-Za-z0-9\-._~+/]{16,}+=*)"),
        ("bearer",),
        _has_digit_and_letter,
    ),
    Rule(
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


# ---------------------------------------------------------------- field names

# A dict key (or KQL column) naming a credential: its string value is a secret whatever it looks like.
_SECRET_NAME = re.compile(
    r"(?i)(?:passw(?:or)?d|pwd|secret|token|api[_-]?key|apikey|secret[_-]?key|access[_-]?key"
    r"|account[_-]?key|shared[_-]?access[_-]?key|private[_-]?key|client[_-]?secret|sig)"
)


def secret_name_kind(name: str) -> str | None:
    """The kind of secret a field called ``name`` holds (``dbPassword`` → ``password``), or None. The name
    as its reader will see it counts (``pass`` and ``word`` split by a zero-width space is ``password``)."""
    name = strip_invisible(name)
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
