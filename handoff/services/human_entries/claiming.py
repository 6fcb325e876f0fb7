"""One person's entry, however it arrived (a webhook or a poll): skipped when it is the broker's own or
belongs to no active investigation, else claimed once per backend and entry id and queued for the
agents of each investigation it belongs to."""

from __future__ import annotations

import logging
from datetime import datetime

from handoff.domain.errors import Unprocessable, single_field
from handoff.domain.records import HandoffRecord
from handoff.domain.shared_memory.config import WebhookBackend
from handoff.domain.shared_memory.destinations import is_shared_record
from handoff.domain.shared_memory.human_entries import ACTIVE, MAX_ENTRY_ID, HumanEntry, is_override, is_own
from handoff.ports import InboundStore
from handoff.services.context import ServiceContext
from handoff.services.human_entries.fanout import EntryFanOut

log = logging.getLogger("handoff")
# An entry reaches at most this many investigations indexed on its record.
MAX_INVESTIGATIONS = 50
# Why an entry was ignored.
NONE_ACTIVE = "no active investigation on this record"
SHARED = "several investigations share this record: quote the handoff id the entry is for"
# The JSON answer to the vendor and its status.
Answer = tuple[dict[str, str | int | bool], int]


class EntryClaimer:
    """Takes an entry once and queues it for the investigations it belongs to."""

    def __init__(self, ctx: ServiceContext, inbound: InboundStore, fanout: EntryFanOut) -> None:
        self.ctx = ctx
        self.inbound = inbound
        self.fanout = fanout

    def take(self, backend: WebhookBackend, entry: HumanEntry, now: datetime) -> Answer:
        """``queued`` (202), or ``duplicate``/``ignored`` with the reason (200); 422 for an entry id
        that cannot be a key."""
        if not entry.has_valid_id:
            # It becomes a table key and a marker: a vendor's ids are short and printable.
            raise single_field(Unprocessable, "/entryId", f"must be 1-{MAX_ENTRY_ID} printable characters")
        if is_own(backend, entry):
            return {"status": "ignored", "reason": "the broker's own entry"}, 200
        records, reason = self.matching(backend, entry)
        if not records:
            # People meant a note on a shared record for someone: operators should see it went nowhere.
            level, why = (
                (logging.INFO, "matches no active investigation")
                if reason == NONE_ACTIVE
                else (logging.WARNING, "quotes none of the chains sharing it")
            )
            log.log(
                level,
                "human entry %s on %s %s %s; ignored",
                entry.entry_id,
                backend.name,
                entry.destination,
                why,
            )
            return {"status": "ignored", "reason": reason}, 200
        return self._claim(backend, entry, records, now)

    def matching(self, backend: WebhookBackend, entry: HumanEntry) -> tuple[list[HandoffRecord], str]:
        """The active investigations the entry belongs to: those indexed on its record that it quotes;
        when it quotes none, all of them, but only where they are one investigation chain.

        A record on which investigations of several chains are active (the backend's fixed issue, or one
        that callers named: a caller can name any incident or issue the backend may write to) is shared:
        an entry there belongs only to the investigations it quotes. Otherwise naming another team's
        incident would bring its people's notes into the caller's threads. Closed investigations take no
        entries and count for nothing, so a chain that once named a record does not make it shared for
        good. Past :data:`MAX_INVESTIGATIONS` the chains are not all read, so such a record counts as
        shared too."""
        ids = self.inbound.handoffs_at(backend.name, entry.destination)
        quoted = entry.quoted_handoff_ids()
        addressed = [i for i in ids if i in quoted][:MAX_INVESTIGATIONS]
        if not addressed and (is_shared_record(backend, entry.destination) or len(ids) > MAX_INVESTIGATIONS):
            return [], SHARED
        found = (record for record in map(self.ctx.store.get, addressed or ids) if record is not None)
        records = [record for record in found if record.state.status in ACTIVE]
        if not addressed and len({record.stored.root_id for record in records}) > 1:
            return [], SHARED
        return records, NONE_ACTIVE

    def _claim(
        self, backend: WebhookBackend, entry: HumanEntry, records: list[HandoffRecord], now: datetime
    ) -> Answer:
        """Claim the entry (a replayed delivery, or a poll after the webhook, finds it claimed) and
        queue it; a failure to queue releases the claim so the vendor's retry (or the next poll) takes
        it."""
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
