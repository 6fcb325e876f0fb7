"""The response body under the egress policy: capped at ``HANDOFF_MAX_RESPONSE_BYTES`` while it streams
in (decoded size: gzip and deflate are decoded here under the cap, other encodings are refused), and
stopped when it is still arriving after the call's whole time budget."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterator

import httpx

from handoff.adapters.egress.policy import EgressError, EgressPolicy, refused


class BodyMeter:
    """Counts (and, for gzip/deflate, decodes) a body as it arrives; raises past the cap or deadline."""

    def __init__(
        self, request: httpx.Request, policy: EgressPolicy, encoding: str, deadline: float | None
    ) -> None:
        self.request = request
        self.limit = policy.max_response_bytes
        self.clock = policy.clock
        self.deadline = deadline
        self.total = 0
        self.decoder = zlib.decompressobj(32 + zlib.MAX_WBITS) if encoding else None

    def feed(self, chunk: bytes) -> bytes:
        """The decoded bytes of ``chunk``, counted against the cap (past the deadline: a read timeout)."""
        if self.deadline is not None and self.clock() > self.deadline:
            raise httpx.ReadTimeout(
                f"{self.request.method} {self.request.url.copy_with(query=None)}: the answer was still "
                "arriving when the call's time ran out",
                request=self.request,
            )
        if self.decoder is not None:
            try:
                chunk = self.decoder.decompress(chunk, self.limit - self.total + 1)
            except zlib.error as exc:
                raise httpx.DecodingError(f"invalid compressed body: {exc}", request=self.request) from None
        return self._count(chunk)

    def flush(self) -> bytes:
        """What the decoder still holds at the end of the body, counted against the cap."""
        if self.decoder is None:
            return b""
        try:
            return self._count(self.decoder.flush())
        except zlib.error as exc:
            raise httpx.DecodingError(f"invalid compressed body: {exc}", request=self.request) from None

    def _count(self, data: bytes) -> bytes:
        self.total += len(data)
        if self.total > self.limit:
            raise EgressError(too_large(self.request, self.limit), request=self.request)
        return data


def too_large(request: httpx.Request, limit: int) -> str:
    """The reason of a refused answer over the cap."""
    return f"{refused(request)}: response larger than {limit} bytes (HANDOFF_MAX_RESPONSE_BYTES)"


class SyncBody(httpx.SyncByteStream):
    """A sync answer's body read through a :class:`BodyMeter`."""

    def __init__(self, response: httpx.Response, meter: BodyMeter) -> None:
        self.response = response
        self.meter = meter

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.response.stream:  # type: ignore[union-attr]  # a sync transport's stream is sync
            data = self.meter.feed(chunk)
            if data:
                yield data
        tail = self.meter.flush()
        if tail:
            yield tail

    def close(self) -> None:
        self.response.close()


class AsyncBody(httpx.AsyncByteStream):
    """An async answer's body read through a :class:`BodyMeter`."""

    def __init__(self, response: httpx.Response, meter: BodyMeter) -> None:
        self.response = response
        self.meter = meter

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.response.stream:  # type: ignore[union-attr]  # an async transport's is async
            data = self.meter.feed(chunk)
            if data:
                yield data
        tail = self.meter.flush()
        if tail:
            yield tail

    async def aclose(self) -> None:
        await self.response.aclose()


def body_plan(request: httpx.Request, response: httpx.Response, limit: int) -> tuple[str | None, str]:
    """``(refusal or None, encoding to decode)`` from the answer's headers, before its body is read."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        encoding = ""
    elif encoding not in ("gzip", "x-gzip", "deflate"):
        return f"{refused(request)}: unsupported Content-Encoding {encoding!r}", encoding
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        return too_large(request, limit), encoding
    return None, encoding


def headers_after_decoding(response: httpx.Response, encoding: str) -> httpx.Headers:
    """The answer's headers for the body handed on (decoded here when ``encoding`` is set)."""
    headers = httpx.Headers(response.headers)
    if encoding:
        # The body handed on is decoded here, so its encoding and length no longer apply.
        for name in ("content-encoding", "content-length"):
            if name in headers:
                del headers[name]
    return headers
