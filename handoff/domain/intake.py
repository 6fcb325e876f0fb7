"""Poison-proof intake: the one reader of JSON that comes from outside the broker.

Every JSON document the broker parses (REST bodies, MCP tool arguments, the raw MCP and A2A bodies
before their SDKs parse them, Azure Monitor alerts, the shared-memory replay body, queue messages) is
read here, so that what is accepted can always be stored, read back, delivered and swept:

* the size is checked first (413);
* the nesting depth is checked with a linear scan of the raw text *before* parsing (arrays and
  objects outside strings), so a 10,000-deep array is a 4xx and never a ``RecursionError``; the
  storage layer's JSON reader (pydantic-core) gives up at 200 levels, far above :data:`MAX_DEPTH`;
* ``NaN``, ``Infinity`` and numbers too large for a double are refused (they would be stored as
  ``null``), and so are integers with more digits than Python converts;
* lone UTF-16 surrogates (``"\\ud800"``) are refused, naming the field: they cannot be encoded as
  UTF-8, so they could be neither stored, nor rendered into a thread, nor echoed in an error.

Pure functions, no SDK.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterator
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from handoff.domain.errors import (
    BadRequest,
    FieldError,
    Problem,
    Unprocessable,
    UnsupportedMediaType,
    check_body_size,
    single_field,
)
from handoff.domain.models import FROM_OUTSIDE, field_errors
from handoff.domain.redaction import redact_model

ModelT = TypeVar("ModelT", bound=BaseModel)

MAX_DEPTH = 32
"""Most arrays and objects nested in one another in a document the broker accepts (the outermost
object counts as 1)."""
# A raw JSON-RPC body (MCP, A2A) wraps the document it carries in a few levels of its own.
ENVELOPE_DEPTH = 8
MAX_RPC_BODY_BYTES = 1024 * 1024
# Queue messages are ids and counters; the service's limit for one message is 64 KiB.
MAX_QUEUE_MESSAGE_BYTES = 64 * 1024

# A string (closed, or running to the end of an unterminated text), an opening or a closing bracket.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)|[\[{]|[\]}]', re.DOTALL)
# A \u escape in the surrogate range: only then can a parsed string hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")


class InvalidJson(BadRequest):
    """The body is not JSON at all (400)."""


class _Refused(ValueError):
    """Raised from inside the JSON decoder's hooks; becomes a problem naming the body."""


def load_json(
    body: bytes | str,
    *,
    limit_bytes: int,
    what: str = "request body",
    invalid: type[Problem] = Unprocessable,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """Parse one JSON document from outside: 413 over ``limit_bytes``, 400 (:class:`InvalidJson`) when
    it is not JSON, ``invalid`` (422 by default) when it is JSON the broker cannot keep (nested deeper
    than ``max_depth``, a non-finite number, a lone surrogate). Never raises anything else."""
    if isinstance(body, str):
        check_body_size(body.encode("utf-8", "surrogatepass"), limit_bytes, what)
        text = body
    else:
        check_body_size(body, limit_bytes, what)
        try:
            text = body.decode(json.detect_encoding(body))
        except (UnicodeDecodeError, LookupError) as exc:
            raise InvalidJson(
                f"{what} is not valid JSON: it is not UTF-8 ({type(exc).__name__})",
                errors=[FieldError(field="/", message="not valid JSON (not UTF-8)")],
            ) from None
    check_depth(text, max_depth, what, invalid)
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except _Refused as exc:
        raise invalid(f"{what}: {exc}", errors=[FieldError(field="/", message=str(exc))]) from None
    except RecursionError:  # pragma: no cover - the depth scan stops this first
        raise invalid(
            f"{what} is nested too deeply", errors=[FieldError(field="/", message="nested too deeply")]
        ) from None
    except json.JSONDecodeError as exc:
        raise InvalidJson(
            f"{what} is not valid JSON: {_printable(str(exc))}",
            errors=[FieldError(field="/", message="not valid JSON")],
        ) from None
    except ValueError:  # an integer beyond the digits Python converts (sys.get_int_max_str_digits)
        message = f"an integer has more than {sys.get_int_max_str_digits()} digits"
        raise invalid(f"{what}: {message}", errors=[FieldError(field="/", message=message)]) from None
    if _SURROGATE_ESCAPE.search(text):
        check_text(data, invalid=invalid)
    return data


def check_json_body(
    body: bytes, *, limit_bytes: int, max_depth: int, what: str = "request body", invalid: type[Problem]
) -> None:
    """Size and depth of a raw body that a library parses itself (MCP and A2A JSON-RPC): 413 when too
    large, ``invalid`` when nested deeper than ``max_depth``. Leaves everything else to the library."""
    check_body_size(body, limit_bytes, what)
    try:
        text = body.decode(json.detect_encoding(body))
    except (UnicodeDecodeError, LookupError):
        return  # not text: the library answers with its own parse error
    check_depth(text, max_depth, what, invalid)


# application/json, or a structured syntax suffix (RFC 6839): application/problem+json, application/merge-
# patch+json and the like.
_JSON_MEDIA_TYPE = re.compile(r"application/(?:json|[a-z0-9!#$&^_.-]+\+json)")
_CHARSET = re.compile(r"""^\s*charset\s*=\s*"?([^";\s]*)"?\s*$""", re.IGNORECASE)


def check_json_content_type(content_type: str | None, body: bytes) -> None:
    """Refuse (415) a request body that does not say it is JSON.

    A body must come with ``Content-Type: application/json`` (or an ``application/*+json`` type), with
    ``charset=utf-8`` or no charset (JSON is UTF-8, RFC 8259); other parameters are ignored. A request
    without a body needs no Content-Type. So ``curl -d`` without ``-H 'Content-Type: application/json'``
    (it sends ``application/x-www-form-urlencoded``) is refused, naming the header, before anything is
    parsed."""
    if not body and not content_type:
        return
    media_type, _, parameters = (content_type or "").partition(";")
    charsets = [m.group(1).lower() for p in parameters.split(";") if (m := _CHARSET.match(p))]
    utf8 = all(charset in ("utf-8", "utf8") for charset in charsets)
    if utf8 and _JSON_MEDIA_TYPE.fullmatch(media_type.strip().lower()):
        return
    shown = _printable(content_type[:100]) if content_type else "missing"
    raise UnsupportedMediaType(
        f"the request body must be JSON: send Content-Type: application/json (got {shown})",
        errors=[FieldError(field="Content-Type", message="must be application/json")],
    )


def check_rpc_body(body: bytes) -> None:
    """:func:`check_json_body` for a JSON-RPC body (MCP, A2A) carrying a handoff document: up to
    :data:`MAX_RPC_BODY_BYTES` and :data:`MAX_DEPTH` plus the envelope's own levels; the document
    inside is checked against :data:`MAX_DEPTH` again when it is parsed."""
    check_json_body(
        body,
        limit_bytes=MAX_RPC_BODY_BYTES,
        max_depth=MAX_DEPTH + ENVELOPE_DEPTH,
        what="JSON-RPC body",
        invalid=Unprocessable,
    )


def check_depth(
    text: str, max_depth: int, what: str = "request body", invalid: type[Problem] = Unprocessable
) -> None:
    """Refuse a JSON text nesting arrays and objects deeper than ``max_depth``, in one linear pass that
    skips strings (so brackets inside them do not count) and stops at the first level too deep."""
    depth = 0
    for token in _TOKENS.finditer(text):
        char = text[token.start()]
        if char == '"':
            continue
        if char in "[{":
            depth += 1
            if depth > max_depth:
                message = f"nested deeper than {max_depth} levels of arrays and objects"
                raise invalid(
                    f"{what} is {message} (at character {token.start()})",
                    errors=[FieldError(field="/", message=message)],
                )
        else:
            depth -= 1


def nesting_depth(value: object, stop_after: int = MAX_DEPTH) -> int:
    """Depth of arrays and objects in an already parsed value (iterative; stops past ``stop_after``)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            deepest = max(deepest, depth)
            if deepest > stop_after:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def check_value(
    value: object, *, prefix: str = "", invalid: type[Problem] = Unprocessable, max_depth: int = MAX_DEPTH
) -> None:
    """The same limits for a value another library has parsed already (A2A data parts, queue
    messages): depth, finite numbers, no lone surrogates."""
    if nesting_depth(value, max_depth) > max_depth:
        message = f"nested deeper than {max_depth} levels of arrays and objects"
        raise invalid(
            f"{prefix or '/'}: {message}", errors=[FieldError(field=prefix or "/", message=message)]
        )
    for pointer, item in _walk(value, prefix):
        if isinstance(item, float) and not math.isfinite(item):
            raise invalid(
                f"{pointer}: not a finite number",
                errors=[FieldError(field=pointer, message="must be a finite number")],
            )
    check_text(value, prefix=prefix, invalid=invalid)


def check_text(value: object, *, prefix: str = "", invalid: type[Problem] = Unprocessable) -> None:
    """Refuse a lone UTF-16 surrogate in any string or object key, naming where it is."""
    for pointer, item in _walk(value, prefix):
        if isinstance(item, str) and _SURROGATE.search(item):
            raise invalid(
                f"{_printable(pointer) or '/'}: contains a lone UTF-16 surrogate, which is not text",
                errors=[
                    FieldError(field=_printable(pointer) or "/", message="contains a lone UTF-16 surrogate")
                ],
            )


def _walk(value: object, prefix: str) -> Iterator[tuple[str, object]]:
    """Every value and object key with its JSON Pointer (keys are reported at the member's pointer)."""
    stack: list[tuple[str, object]] = [(prefix, value)]
    while stack:
        pointer, item = stack.pop()
        yield pointer, item
        if isinstance(item, dict):
            for key, child in item.items():
                child_pointer = f"{pointer}/{_escape(str(key))}"
                yield child_pointer, key
                stack.append((child_pointer, child))
        elif isinstance(item, list | tuple):
            stack.extend((f"{pointer}/{index}", child) for index, child in enumerate(item))


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _printable(text: str) -> str:
    """``text`` with lone surrogates written as ``\\udXXX``, so it can be encoded and echoed."""
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _Refused(f"the number {text[:40]} is too large for a double")
    return number


def load_queue_message(body: bytes, what: str = "queue message") -> dict[str, Any]:
    """A work message from a queue: a JSON object within the queue's size and the depth limit. Raises a
    :class:`~handoff.domain.errors.Problem` for anything else; the worker parks such a message as poison."""
    message = load_json(body, limit_bytes=MAX_QUEUE_MESSAGE_BYTES, what=what, invalid=BadRequest)
    if not isinstance(message, dict):
        raise BadRequest(
            f"{what} is not a JSON object", errors=[FieldError(field="/", message="not a JSON object")]
        )
    return message


# ---------------------------------------------------------------- request bodies

MAX_BODY_BYTES = 256 * 1024
"""The largest REST (and MCP tool argument) body the broker reads."""


def parse_body(body: bytes, model: type[ModelT]) -> ModelT:
    """Parse a JSON request body into ``model``: 413 when too large, 400 when not JSON, 422 when it breaks
    the schema or the intake limits (nesting depth, finite numbers, text)."""
    return validate_document(load_json(body, limit_bytes=MAX_BODY_BYTES), model)


def validate_document(data: Any, model: type[ModelT], prefix: str = "") -> ModelT:
    """A parsed JSON document as ``model``, or the one 422 problem for it whatever brought it (a REST
    body, an A2A data part): every wrong field as a JSON Pointer under ``prefix``. Validated as a
    document from outside (:data:`~handoff.domain.models.FROM_OUTSIDE`): the rules only a new document
    follows apply (a PagerDuty incident id of PagerDuty's shape)."""
    if not isinstance(data, dict):
        raise single_field(Unprocessable, prefix or "/", "must be a JSON object")
    try:
        return model.model_validate(data, context={FROM_OUTSIDE: True})
    except ValidationError as exc:
        errors = field_errors(exc, prefix=prefix)
        summary = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
        raise Unprocessable(summary, errors=errors) from None


def redacted(model: ModelT, fields: tuple[str, ...]) -> tuple[ModelT, dict[str, int]]:
    """:func:`~handoff.domain.redaction.redact_model`, with a value that cannot be kept valid once its
    secret is cut out refused as 422 naming the field (never a 500)."""
    try:
        return redact_model(model, fields)
    except ValidationError as exc:
        errors = [
            FieldError(field=e.field, message="holds what looks like a secret; remove it")
            for e in field_errors(exc)
        ]
        raise Unprocessable("; ".join(f"{e.field}: {e.message}" for e in errors[:5]), errors=errors) from None
