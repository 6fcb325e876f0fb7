"""The copies of handoffs a process keeps (``handoff/adapters/azure_storage/rows.py``): bounded by count
and by the weight of their requests, and a freshly read state keeps only the parts of the record that
still go with it."""

from __future__ import annotations

from datetime import UTC, datetime

from handoff.adapters.azure_storage.rows import StateCopies, StateCopy
from handoff.domain.models import HandbackRequest, HandoffRequest
from handoff.domain.records import (
    HandbackDelivery,
    HandoffState,
    StoredHandback,
    StoredRequest,
    state_version,
)
from tests.unit.conftest import handback_body, handoff_body

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _copy(etag: str = "e1", weight: int = 0, handbacks: tuple[int, ...] = ()) -> StateCopy:
    stored = StoredRequest(
        id="h", request=HandoffRequest.model_validate(handoff_body()), source_agent="ops",
        target_agent="checkout", root_id="h", body_hash="x", created_at=NOW, caller="local",
    )  # fmt: skip
    request = HandbackRequest.model_validate(handback_body())
    kept = tuple(
        StoredHandback(seq=seq, received_at=NOW, request=request, agent="checkout", caller="c")
        for seq in handbacks
    )
    state = HandoffState(updated_at=NOW, handbacks={seq: HandbackDelivery() for seq in handbacks})
    return StateCopy(state, etag, 0, None, stored, kept, weight)


def test_the_oldest_copies_go_first_past_the_count_or_the_weight() -> None:
    copies = StateCopies(capacity=2, max_weight=100)
    copies.put("a", _copy(weight=10))
    copies.put("b", _copy(weight=10))
    copies.get("a")  # used: "b" is now the oldest
    copies.put("c", _copy(weight=10))
    assert copies.get("a") is not None and copies.get("b") is None
    copies.put("d", _copy(weight=95))  # heavy: the rest make room
    assert [copies.get(key) is not None for key in "acd"] == [False, False, True]
    copies.put("d", _copy(weight=5))  # replaced, not added
    copies.put("e", _copy(weight=90))
    assert copies.get("d") is not None and copies.get("e") is not None


def test_a_state_read_again_keeps_the_hand_backs_only_while_they_still_go_with_it() -> None:
    earlier = _copy(handbacks=(1,), weight=7)
    same = StateCopy(HandoffState(updated_at=NOW, handbacks={1: HandbackDelivery()}), "e2", 3, "h3")
    kept = same.with_record_of(earlier)
    record = kept.record()
    assert record is not None and [hb.seq for hb in record.handbacks] == [1]
    assert record.version == state_version(same.state)
    assert (kept.weight, kept.audit_seq) == (7, 3)
    two = {1: HandbackDelivery(), 2: HandbackDelivery()}
    more = StateCopy(HandoffState(updated_at=NOW, handbacks=two), "e3", 4, "h4")
    partial = more.with_record_of(earlier)
    assert partial.stored is not None and partial.handbacks is None and partial.record() is None
