"""The tamper-evident audit chain: each event carries the SHA-256 of its canonical JSON, which includes
the previous event's hash, so editing, deleting, reordering or inserting a stored event breaks the chain
from that event on.

Pure functions: the storage adapter stamps events with :func:`event_hash` as it inserts them, and
:func:`verify_chain` recomputes the chain from what storage gives back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from handoff.domain.models import AuditEvent, WireModel

ALGORITHM = "sha256"


def audit_time(at: datetime) -> datetime:
    """``at`` in UTC, to the millisecond: what every storage keeps exactly, so a hash computed at write
    time is the one recomputed from what is read back."""
    at = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def canonical_event(
    handoff_id: str,
    seq: int,
    at: datetime,
    type: str,
    actor: str,
    details: dict[str, Any],
    prev_hash: str | None,
) -> str:
    """The canonical JSON of an event: sorted keys, no spaces, UTF-8, the time in UTC milliseconds."""
    document = {
        "handoffId": handoff_id,
        "seq": seq,
        "at": audit_time(at).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "type": type,
        "actor": actor,
        "details": details,
        "prevHash": prev_hash,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(
    handoff_id: str,
    seq: int,
    at: datetime,
    type: str,
    actor: str,
    details: dict[str, Any],
    prev_hash: str | None,
) -> str:
    """SHA-256 (hex) of the event's canonical JSON."""
    text = canonical_event(handoff_id, seq, at, type, actor, details, prev_hash)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class AuditVerification(WireModel):
    """Body of ``GET /api/handoffs/{id}/audit/verify``."""

    handoff_id: str
    valid: bool
    events: int = Field(description="Events read.")
    head_hash: str | None = Field(default=None, description="Hash of the last event, when the chain holds.")
    first_bad_seq: int | None = Field(
        default=None, description="The first sequence number at which the chain breaks."
    )
    reason: str | None = None
    algorithm: str = ALGORITHM


def verify_chain(handoff_id: str, events: Sequence[AuditEvent]) -> AuditVerification:
    """Recompute the chain over ``events`` (in storage order) and name the first event that breaks it.

    - an edited event: its recomputed hash differs from the one it carries;
    - a deleted event: a gap in the sequence numbers (or the next event's ``prevHash`` points elsewhere);
    - reordered or inserted events: a sequence number out of place, or a ``prevHash`` that is not the
      previous event's hash.
    Events written before the chain existed carry no hash; they are reported as unverifiable.
    """
    previous: str | None = None
    for expected, event in enumerate(events, start=1):

        def broken(reason: str, seq: int = event.seq) -> AuditVerification:
            return AuditVerification(
                handoff_id=handoff_id, valid=False, events=len(events), first_bad_seq=seq, reason=reason
            )

        if event.seq != expected:
            if event.seq > expected:
                return broken(f"event {expected} is missing (the next stored event is {event.seq})", expected)
            return broken(f"event {event.seq} is out of place (expected {expected})")
        if event.hash is None:
            return broken(f"event {event.seq} carries no hash")
        if event.prev_hash != previous:
            return broken(f"event {event.seq} does not follow the previous event's hash")
        recomputed = event_hash(
            handoff_id, event.seq, event.at, event.type, event.actor, event.details, event.prev_hash
        )
        if recomputed != event.hash:
            return broken(f"event {event.seq} was changed after it was written")
        previous = event.hash
    return AuditVerification(handoff_id=handoff_id, valid=True, events=len(events), head_hash=previous)
