"""The fixed words of the log lines operators watch (the queries of docs/operations.md and
infra/app/operations.bicep take them apart): ``<prefix> key=value ... reason=<free text>``.

Ids, agent names, ops and backend names hold no spaces (id and registry rules; they are squeezed here
anyway), and the free-text ``reason`` comes last, on one line and cut to a few hundred characters. A
reason is what the audit records: secret-free by construction, and redacted again by the log filter.
"""

from __future__ import annotations

GAVE_UP_LOG_PREFIX = "handoff gave up:"
"""A step, follow-up or shared-memory write that will not be tried again (retries exhausted, or a
permanent failure)."""
CROSS_LINK_FAILED_LOG_PREFIX = "handoff cross-link failed:"
"""The link to the target's thread could not be posted into the source thread (audit ``crossLinkFailed``)."""
_REASON_CHARS = 300
_WORD_CHARS = 100


def reason_text(value: object) -> str:
    """A reason as a log line ends with it: one line of at most a few hundred characters."""
    return " ".join(str(value or "unknown").split())[:_REASON_CHARS]


def word(value: object) -> str:
    """A ``key=value`` value: no whitespace, at most a hundred characters."""
    return "".join(str(value if value is not None else "none").split())[:_WORD_CHARS] or "none"


def gave_up_line(work: str, handoff_id: str, reason: object, **facts: object) -> str:
    """``handoff gave up: work=<op> handoff=<id> [key=value ...] reason=<why>``."""
    words = "".join(f" {key}={word(value)}" for key, value in facts.items())
    head = f"{GAVE_UP_LOG_PREFIX} work={word(work)} handoff={word(handoff_id)}"
    return f"{head}{words} reason={reason_text(reason)}"


def cross_link_failed_line(handoff_id: str, reason: object, how: str) -> str:
    """``handoff cross-link failed: handoff=<id> how=<failed|...> reason=<why>``."""
    head = f"{CROSS_LINK_FAILED_LOG_PREFIX} handoff={word(handoff_id)} how={word(how)}"
    return f"{head} reason={reason_text(reason)}"
