"""Table batches prepared and parsed on the calling thread.

azure-core prepares the parts of a multipart request (a Table ``$batch``) and parses the parts of its
answer in a new ``ThreadPoolExecutor`` each time: two to three pools and their threads for every
entity-group transaction, for policies that only set a few headers. Under load that was the largest
item in the broker's CPU profile (``docs/performance.md``, "Where the time goes").
:func:`prepare_batches_inline` runs the same policies in the same order on the calling thread. It
replaces two private functions of azure-core, so it applies only to the azure-core version it was
written against (the pin in ``constraints.txt``); on any other version the SDK is left as it is, and a
test says so.
"""

from __future__ import annotations

import logging
from typing import Any

from azure.core import __version__ as azure_core_version

log = logging.getLogger(__name__)

# The azure-core version whose multipart internals prepare_batches_inline replaces.
INLINE_BATCHES_FOR = "1.41.0"

_inline = False


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

    # Both are looked up at call time: Pipeline._prepare_multipart calls the static method through
    # self, and HttpResponseImpl.parts calls the module's _parts_helper.
    replacements: list[tuple[Any, str, Any]] = [
        (_base.Pipeline, "_prepare_multipart_mixed_request", staticmethod(prepare)),
        (_http_response_impl, "_parts_helper", parts_of),
    ]
    for owner, name, replacement in replacements:
        setattr(owner, name, replacement)
    _inline = True
    return True
