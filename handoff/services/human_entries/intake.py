"""The request path of a vendor's webhook: verify its signature, read the entry, and hand it to the
:class:`~handoff.services.human_entries.claiming.EntryClaimer` (nothing is posted here)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from handoff.domain.auth import Authorizer, Caller
from handoff.domain.errors import NotFound, Unauthorized, check_body_size
from handoff.domain.intake import load_json
from handoff.domain.shared_memory.config import WebhookBackend
from handoff.domain.shared_memory.webhooks import MAX_WEBHOOK_BYTES, is_genuine, read_delivery
from handoff.services.context import ServiceContext
from handoff.services.human_entries.claiming import MAX_INVESTIGATIONS, Answer, EntryClaimer

__all__ = ["MAX_INVESTIGATIONS", "Answer", "WebhookIntake"]
log = logging.getLogger("handoff")


class WebhookIntake:
    """Receives webhook deliveries."""

    def __init__(self, ctx: ServiceContext, claimer: EntryClaimer, environ: Mapping[str, str]) -> None:
        self.ctx = ctx
        self.claimer = claimer
        self.environ = environ

    def receive(self, backend_name: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """Verify, deduplicate, match and queue one webhook delivery; returns the answer and its status.

        Unknown backend (or one that takes no webhooks) 404; a missing or wrong signature (or token)
        401, logged in the security log, nothing changed; 202 when queued for an investigation, else
        200."""
        backend = self._backend(backend_name)
        check_body_size(body, MAX_WEBHOOK_BYTES, "webhook body")
        lower = {name.lower(): value for name, value in headers.items()}
        self._verify(backend, body, lower)
        now = self.ctx.clock()
        entry, why = read_delivery(backend, lower, load_json(body, limit_bytes=MAX_WEBHOOK_BYTES), now)
        if entry is None:
            return {"status": "ignored", "reason": why}, 200
        return self.claimer.take(backend, entry, now)

    def _backend(self, name: str) -> WebhookBackend:
        """The backend whose webhook this is: one that takes webhooks (and so names its secret), else
        404."""
        backend = self.ctx.registry.shared_memory.find(name)
        if backend is None or not backend.takes_webhooks:
            raise NotFound("no webhook for this backend")
        return backend

    def _verify(self, backend: WebhookBackend, body: bytes, headers: Mapping[str, str]) -> None:
        """Refuse (401, in the security log) a delivery without the vendor's valid signature."""
        setting = backend.webhook_secret_setting or ""
        secret = str(self.environ.get(setting) or "")
        if not secret:
            log.error("app setting %s (webhookSecretSetting) is not set: webhook refused", setting)
        if not is_genuine(backend, secret, body, headers):
            raise Authorizer.refuse(
                Caller("local", name=f"webhook:{backend.name}"),
                "deliver a webhook",
                f"webhooks/{backend.name}",
                Unauthorized("missing or invalid webhook signature"),
            )
