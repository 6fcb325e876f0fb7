"""The egress policy: where the broker's outbound HTTP calls may go, and how much they may bring back.

Every client from :mod:`handoff.adapters.http` sends through :class:`EgressTransport` (or its async
twin), which for each request, before any connection is made:

* allows ``https``, and ``http`` only to loopback when the call is made for a registry entry with
  ``allowInsecureLocal`` (the request extension :data:`ALLOW_INSECURE_LOCAL`, or the client default);
* resolves the host (an injectable resolver, ``socket.getaddrinfo`` by default) and refuses the call
  when any address is a cloud metadata address (always), or loopback (unless ``allowInsecureLocal``),
  private, shared (CGNAT), link-local, unspecified, multicast or otherwise not global, unless the
  address lies in a network of ``HANDOFF_EGRESS_ALLOWED_NETWORKS``;
* connects to the address it checked (the URL's host is replaced by it; ``Host`` and the TLS server
  name stay the original name, so certificates are verified as before), so a second DNS answer cannot
  swap in another address between the check and the connection;
* caps the response body at ``HANDOFF_MAX_RESPONSE_BYTES`` while it streams in (decoded size: gzip and
  deflate are decoded here under the cap, other encodings are refused) and stops a body that is still
  arriving when the call's whole time budget is spent.

A refusal is an :class:`EgressError` (an ``httpx.RequestError``), which the one classification in
:mod:`handoff.adapters.http` turns into a permanent, never retried, failure.

The modules: :mod:`.policy` (the decision), :mod:`.body` (the capped body) and :mod:`.transports`
(check, resolve, pin and send).
"""

from handoff.adapters.egress.body import too_large
from handoff.adapters.egress.policy import (
    ALLOW_INSECURE_LOCAL,
    DEFAULT_MAX_RESPONSE_BYTES,
    METADATA_ADDRESSES,
    EgressError,
    EgressPolicy,
    IPAddress,
    Resolver,
    default_resolver,
)
from handoff.adapters.egress.transports import AsyncEgressTransport, EgressTransport

__all__ = [
    "ALLOW_INSECURE_LOCAL",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "METADATA_ADDRESSES",
    "AsyncEgressTransport",
    "EgressError",
    "EgressPolicy",
    "EgressTransport",
    "IPAddress",
    "Resolver",
    "default_resolver",
    "too_large",
]
