"""What every part of the shared-memory worker records the same way: a write given up (its state, the
audit event naming the replay route, the poison queue) and a write that waits on purpose."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from handoff.domain.audit_events import Actor, EventType
from handoff.domain.ids import is_uuid
from handoff.domain.log_lines import gave_up_line
from handoff.domain.records import HandoffRecord
from handoff.domain.shared_memory.writes import WriteRow, parse_write_key
from handoff.ports import DeliveryQueue, HandoffStore, WriteStateStore

log = logging.getLogger("handoff")


def record_of(store: HandoffStore, handoff_id: str) -> HandoffRecord | None:
    """The handoff, or None when the id is not one (or unknown)."""
    return store.get(handoff_id) if is_uuid(handoff_id) else None


class WriteLedger:
    """Records the settling of writes in their state rows, the audit and the poison queue."""

    def __init__(
        self,
        state: WriteStateStore,
        store: HandoffStore,
        queue: DeliveryQueue,
        clock: Callable[[], datetime],
    ) -> None:
        self.state = state
        self.store = store
        self.queue = queue
        self.clock = clock

    def fail(self, handoff_id: str, key: str, message: dict[str, Any], reason: str) -> None:
        """Mark the write ``key`` failed for good (operators can replay it) and poison its message."""
        point, seq, backend = parse_write_key(key)
        self.state.put_write(
            handoff_id, key, {"Status": "failed", "Error": reason, "UpdatedAt": self.clock()}
        )
        self.store.append_audit(
            handoff_id,
            EventType.SHARED_MEMORY_FAILED,
            Actor.BROKER,
            {
                "backend": backend,
                "point": point,
                "seq": seq,
                "reason": reason,
                "replay": f"POST /api/handoffs/{handoff_id}/shared-memory/replay",
            },
        )
        self.queue.send_poison({**message, "reason": reason})
        log.warning(
            "%s",
            gave_up_line("sharedMemory", handoff_id, reason, backend=backend, point=point, seq=seq),
        )

    def later(self, handoff_id: str, key: str, current: WriteRow, delay: float) -> None:
        """Note that a write already under way waits ``delay`` seconds on purpose (the sweeper leaves
        it alone until then); a write not yet tried has nothing to note."""
        if current.get("Status") == "pending":
            self.state.put_write(handoff_id, key, {"RetryAt": self.clock() + timedelta(seconds=delay)})
