from datetime import UTC, datetime, timedelta

from handoff.domain.audit import audit_time, canonical_event, event_hash, verify_chain
from handoff.domain.models import AuditEvent

HANDOFF = "3f2b6a0e-1c7d-4e5f-9a8b-0c1d2e3f4a5b"
START = datetime(2026, 12, 1, 2, 10, 0, 123456, tzinfo=UTC)


def chain(n: int = 5) -> list[AuditEvent]:
    events, previous = [], None
    for seq in range(1, n + 1):
        at = audit_time(START + timedelta(seconds=seq))
        details = {"attempt": seq, "note": "ünïcode ✓"}
        digest = event_hash(HANDOFF, seq, at, f"step{seq}", "broker", details, previous)
        events.append(AuditEvent(seq=seq, at=at, type=f"step{seq}", actor="broker", details=details,
                                 hash=digest, prev_hash=previous))  # fmt: skip
        previous = digest
    return events


def test_an_untouched_chain_holds_and_names_its_head():
    events = chain()
    result = verify_chain(HANDOFF, events)
    assert result.valid and result.first_bad_seq is None and result.events == 5
    assert result.head_hash == events[-1].hash


def test_an_edited_event_is_the_first_bad_one():
    events = chain()
    events[2] = events[2].model_copy(update={"details": {"attempt": 99}})
    result = verify_chain(HANDOFF, events)
    assert (result.valid, result.first_bad_seq) == (False, 3)
    assert "changed" in (result.reason or "")


def test_an_edit_that_recomputes_its_own_hash_breaks_the_next_link():
    events = chain()
    edited = events[1].model_copy(update={"actor": "someone-else"})
    edited = edited.model_copy(
        update={
            "hash": event_hash(
                HANDOFF, 2, edited.at, edited.type, edited.actor, edited.details, edited.prev_hash
            )
        }
    )
    events[1] = edited
    assert verify_chain(HANDOFF, events).first_bad_seq == 3


def test_a_deleted_event_is_named():
    events = chain()
    del events[1]
    result = verify_chain(HANDOFF, events)
    assert (result.valid, result.first_bad_seq) == (False, 2)
    assert "missing" in (result.reason or "")


def test_reordered_events_are_caught_at_the_first_swap():
    events = chain()
    events[1], events[3] = events[3], events[1]
    assert verify_chain(HANDOFF, events).first_bad_seq in (2, 4)
    # Swapping the contents but keeping the numbers in place is caught too.
    events = chain()
    a, b = events[1], events[3]
    events[1] = b.model_copy(update={"seq": 2})
    events[3] = a.model_copy(update={"seq": 4})
    assert verify_chain(HANDOFF, events).first_bad_seq == 2


def test_an_inserted_event_is_caught():
    events = chain()
    forged = events[2].model_copy(update={"type": "approved", "seq": 3})
    renumbered = [*events[:2], forged, *(e.model_copy(update={"seq": e.seq + 1}) for e in events[2:])]
    assert verify_chain(HANDOFF, renumbered).first_bad_seq == 3


def test_events_from_before_the_chain_are_unverifiable():
    events = [e.model_copy(update={"hash": None, "prev_hash": None}) for e in chain(2)]
    result = verify_chain(HANDOFF, events)
    assert (result.valid, result.first_bad_seq) == (False, 1)


def test_the_canonical_form_is_stable_and_in_utc_milliseconds():
    at = datetime(2026, 12, 1, 3, 10, 0, 123999, tzinfo=UTC)
    text = canonical_event(HANDOFF, 1, at, "accepted", "local", {"b": 1, "a": [1, "x"]}, None)
    assert text == (
        '{"actor":"local","at":"2026-12-01T03:10:00.123Z","details":{"a":[1,"x"],"b":1},'
        f'"handoffId":"{HANDOFF}","prevHash":null,"seq":1,"type":"accepted"}}'
    )
