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

Secrets are looked for in the text a reader will see as well: rendering removes the characters a reader
cannot see (zero-width spaces and joiners, the soft hyphen, bidi controls, tag characters, NUL ...;
:func:`handoff.domain.markdown.strip_invisible`), so a secret split by them would be shown whole. A text
that, redacted as written, would still show a secret once they are removed is kept as it will be seen,
with every secret found in either reading cut; any other text keeps every character it had.

The package is pure (no I/O) and fast: every pattern is compiled once, each runs only when a literal it
needs occurs in the text, and none can backtrack super-linearly, so 256 KiB take a few milliseconds.
Redacting already redacted text changes nothing and counts nothing.

The package: :mod:`.patterns` (the rules as data), :mod:`.text` (the engine), :mod:`.values` (JSON values),
:mod:`.wire` (wire models), :mod:`.logs` (log records).
"""

from handoff.domain.redaction.logs import install_log_redaction
from handoff.domain.redaction.patterns import MARK, RULES, is_placeholder, marker, secret_name_kind
from handoff.domain.redaction.text import redact, redact_text
from handoff.domain.redaction.values import merge_counts, redact_json
from handoff.domain.redaction.wire import HANDBACK_TEXT_FIELDS, HANDOFF_TEXT_FIELDS, redact_model

__all__ = [
    "HANDBACK_TEXT_FIELDS",
    "HANDOFF_TEXT_FIELDS",
    "MARK",
    "RULES",
    "install_log_redaction",
    "is_placeholder",
    "marker",
    "merge_counts",
    "redact",
    "redact_json",
    "redact_model",
    "redact_text",
    "secret_name_kind",
]
