"""The broker's own log records redacted as they are made."""

from __future__ import annotations

import logging
import traceback

from handoff.domain.redaction.text import redact

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

    def redacting_record(*args: object, **kwargs: object) -> logging.LogRecord:
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
