"""Table batches prepared and parsed on the calling thread, their bodies written without ``email``.

azure-core prepares the parts of a multipart request (a Table ``$batch``) and parses the parts of its
answer in a new ``ThreadPoolExecutor`` each time: two to three pools and their threads for every
entity-group transaction, for policies that only set a few headers. Under load that was the largest
item in the broker's CPU profile (``docs/performance.md``, "Where the time goes"); the next largest was
the body itself, which azure-core builds as an ``email.message.Message`` and flattens with the ``email``
package's generator (parsing every header it writes back through the header registry).
:func:`prepare_batches_inline` runs the same policies in the same order on the calling thread, and
writes the same body bytes directly (:func:`multipart_body`; a test compares the two byte for byte). It
replaces private functions of azure-core, so it applies only to the azure-core version it was written
against (the pin in ``constraints.txt``); on any other version the SDK is left as it is, and a test says
so.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from azure.core import __version__ as azure_core_version

log = logging.getLogger(__name__)

# The azure-core version whose multipart internals prepare_batches_inline replaces.
INLINE_BATCHES_FOR = "1.41.0"

_inline = False
_CRLF = b"\r\n"
_LINE_END = re.compile(rb"\r\n|\r|\n")


def prepare_batches_inline() -> bool:
    """Run azure-core's per-part policies of multipart requests and answers on the calling thread.

    Returns whether it is in effect (only on :data:`INLINE_BATCHES_FOR`). Idempotent.
    """
    global _inline
    if _inline:
        return True
    if azure_core_version != INLINE_BATCHES_FOR:
        log.info(
            "azure-core %s: Table batches keep the SDK's thread pools (inline preparation is written for %s)",
            azure_core_version,
            INLINE_BATCHES_FOR,
        )
        return False
    from azure.core.pipeline import PipelineContext, PipelineRequest, PipelineResponse, _base
    from azure.core.pipeline._tools import await_result
    from azure.core.rest import _http_response_impl

    def prepare(request: Any) -> None:
        # azure-core's Pipeline._prepare_multipart_mixed_request, without the thread pool.
        info = request.multipart_mixed_info
        if not info:
            return
        parts, policies, options = info[0], info[1], info[3]
        for part in parts:
            if part.multipart_mixed_info:  # a changeset holds the batch's operations
                prepare(part)
            pipeline_request = PipelineRequest(part, PipelineContext(None, **options))
            for policy in policies:
                await_result(policy.on_request, pipeline_request)

    def parts_of(response: Any) -> list[Any]:
        # azure-core's utils._pipeline_transport_rest_shared._parts_helper, without the thread pool.
        content_type = response.content_type
        if not content_type or not content_type.startswith("multipart/mixed"):
            raise ValueError("You can't get parts if the response is not multipart/mixed")
        responses: list[Any] = response._get_raw_parts()
        info = response.request.multipart_mixed_info
        if info:
            for part in responses:
                context = PipelineContext(None)
                pipeline_request = PipelineRequest(part.request, context)
                pipeline_response = PipelineResponse(part.request, part, context=context)
                for policy in info[1]:
                    await_result(policy.on_response, pipeline_request, pipeline_response)
        return responses

    from azure.core.pipeline.transport import _base as transport_base
    from azure.core.rest import _helpers

    original_body = getattr(_helpers, "_prepare_multipart_body_helper")  # noqa: B009 - private, not exported

    def body(request: Any, content_index: int = 0) -> int:
        # azure-core's _prepare_multipart_body_helper (email generator) for a request with a boundary.
        info = request.multipart_mixed_info
        if info and not info[2]:
            return int(original_body(request, content_index))  # the generator picks the boundary
        return multipart_body(request, content_index)

    # All are looked up at call time: Pipeline._prepare_multipart calls the static method through
    # self, HttpResponseImpl.parts calls the module's _parts_helper, and both request classes call
    # their module's _prepare_multipart_body_helper.
    replacements: list[tuple[Any, str, Any]] = [
        (_base.Pipeline, "_prepare_multipart_mixed_request", staticmethod(prepare)),
        (_http_response_impl, "_parts_helper", parts_of),
        (_helpers, "_prepare_multipart_body_helper", body),
        (transport_base, "_prepare_multipart_body_helper", body),
    ]
    for owner, name, replacement in replacements:
        setattr(owner, name, replacement)
    _inline = True
    return True


def multipart_body(request: Any, content_index: int = 0) -> int:
    """Set the ``multipart/mixed`` body of ``request`` from its parts, as azure-core 1.41.0's
    ``_prepare_multipart_body_helper`` does (the same bytes), without the ``email`` package; returns the
    next part's Content-ID. Does nothing for a request that is not multipart.

    What the ``email`` generator writes, which this follows: each part's headers then a blank line; an
    ``application/http`` part's payload with its line ends made CRLF; a nested multipart part (a
    changeset) as it is; the parts between ``--boundary`` lines, closed by ``--boundary--``.
    """
    info = request.multipart_mixed_info
    if not info:
        return 0
    parts: list[bytes] = []
    for part in info[0]:
        if part.multipart_mixed_info:
            content_index = part.prepare_multipart_body(content_index=content_index)
            payload = part.serialize()
            # The changeset's own request line and headers go: its body starts at its first boundary.
            payload = payload[payload.index(b"--") :]
            head = b"Content-Type: " + _header_bytes(part.headers["Content-Type"]) + _CRLF
        else:
            head = (
                b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
                + b"Content-ID: " + str(content_index).encode("ascii") + _CRLF
            )  # fmt: skip
            payload = _LINE_END.sub(_CRLF, part.serialize())
            content_index += 1
        parts.append(head + _CRLF + payload)
    boundary = str(info[2])
    delimiter = b"--" + boundary.encode("ascii")
    request.set_bytes_body(
        delimiter + _CRLF + (_CRLF + delimiter + _CRLF).join(parts) + _CRLF + delimiter + b"--" + _CRLF
    )
    request.headers["Content-Type"] = "multipart/mixed; boundary=" + boundary
    return content_index


def _header_bytes(value: str) -> bytes:
    # As the generator writes a header value it does not refold: the lines joined by CRLF.
    return _CRLF.join(line.encode("ascii", "surrogateescape") for line in value.splitlines())
