"""The request path of a vendor's webhook: verify its signature, read the entry, find the investigations
it belongs to, take it once and queue it (nothing is posted here)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from handoff.domain.auth import Authorizer, Caller
from handoff.domain.errors import NotFound, Unauthorized, Unprocessable, check_body_size, single_field
from handoff.domain.intake import load_json
from handoff.domain.records import HandoffRecord
from handoff.domain.registry import Registry
from handoff.domain.shared_memory.config import GitHubBackend, PagerDutyBackend, WebhookBackend
from handoff.domain.shared_memory.destinations import is_shared_record
from handoff.domain.shared_memory.human_entries import ACTIVE, MAX_ENTRY_ID, HumanEntry, is_override, is_own
from handoff.domain.shared_memory.webhooks import MAX_WEBHOOK_BYTES, is_genuine, read_delivery
from handoff.ports import HandoffStore, InboundStore
from handoff.services.human_entries.fanout import EntryFanOut

log = logging.getLogger("handoff")
# An entry reaches at most this many investigations indexed on its record.
MAX_INVESTIGATIONS = 50
# The JSON answer to the vendor and its status.
Answer = tuple[dict[str, str | int | bool], int]


class WebhookIntake:
    """Receives signed webhook deliveries."""

    def __init__(
        self,
        *,
        registry: Registry,
        inbound: InboundStore,
        handoffs: HandoffStore,
        fanout: EntryFanOut,
        environ: Mapping[str, str],
        clock: Callable[[], datetime],
    ) -> None:
        self.registry = registry
        self.inbound = inbound
        self.handoffs = handoffs
        self.fanout = fanout
        self.environ = environ
        self.clock = clock

    def receive(self, backend_name: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """Verify, deduplicate, match and queue one webhook delivery; returns the answer and its status.

        Unknown backend (or one without ``webhookSecretSetting``) 404; a missing or wrong signature 401,
        logged in the security log, nothing changed; 202 when queued for an investigation, else 200."""
        backend = self._backend(backend_name)
        check_body_size(body, MAX_WEBHOOK_BYTES, "webhook body")
        lower = {name.lower(): value for name, value in headers.items()}
        self._verify(backend, body, lower)
        now = self.clock()
        entry, why = read_delivery(backend, lower, load_json(body, limit_bytes=MAX_WEBHOOK_BYTES), now)
        if entry is None:
            return {"status": "ignored", "reason": why}, 200
        if not entry.has_valid_id:
            # It becomes a table key and a marker: a vendor's ids are short and printable.
            raise single_field(Unprocessable, "/entryId", f"must be 1-{MAX_ENTRY_ID} printable characters")
        if is_own(backend, entry):
            return {"status": "ignored", "reason": "the broker's own entry"}, 200
        records = self._matching(backend, entry)
        if not records:
            log.info(
                "human entry %s on %s %s matches no active investigation; ignored",
                entry.entry_id,
                backend.name,
                entry.destination,
            )
            return {"status": "ignored", "reason": "no active investigation on this record"}, 200
        return self._take(backend, entry, records, now)

    def _backend(self, name: str) -> WebhookBackend:
        """The backend whose webhook this is: one that takes webhooks and names its secret, else 404."""
        backend = self.registry.shared_memory.find(name)
        if not isinstance(backend, GitHubBackend | PagerDutyBackend) or not backend.webhook_secret_setting:
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

    def _matching(self, backend: WebhookBackend, entry: HumanEntry) -> list[HandoffRecord]:
        """The active investigations the entry belongs to: those indexed on its record (on a shared
        record only those it quotes; where it quotes some of them, only those)."""
        ids = self.inbound.handoffs_at(backend.name, entry.destination)
        quoted = entry.quoted_handoff_ids()
        if quoted & set(ids):
            ids = [i for i in ids if i in quoted]
        elif is_shared_record(backend, entry.destination):
            return []
        records = []
        for handoff_id in ids[:MAX_INVESTIGATIONS]:
            record = self.handoffs.get(handoff_id)
            if record is not None and record.state.status in ACTIVE:
                records.append(record)
        return records

    def _take(
        self, backend: WebhookBackend, entry: HumanEntry, records: list[HandoffRecord], now: datetime
    ) -> Answer:
        """Claim the entry (a replayed delivery finds it claimed) and queue it; a failure to queue
        releases the claim so the vendor's retry is taken."""
        override = is_override(entry.text)
        claimed = self.inbound.claim_entry(
            backend.name,
            entry.entry_id,
            {"DeliveryId": entry.delivery_id, "Destination": entry.destination, "ReceivedAt": now},
        )
        if not claimed:
            return {"status": "duplicate"}, 200
        try:
            queued = self.fanout.fan_out(backend, entry, records, override)
        except Exception:
            self.inbound.release_entry(backend.name, entry.entry_id)
            raise
        return {"status": "queued", "investigations": queued, "override": override}, 202
