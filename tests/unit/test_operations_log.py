"""The log lines operators watch (handoff/adapters/operations_log.py): one per lifecycle point and one
per message parked on a poison queue, in the shape the workbook and the alert rules of
infra/app/operations.bicep parse."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from handoff.adapters.operations_log import (
    LIFECYCLE_LOG_PREFIX,
    POISON_LOG_PREFIX,
    LoggedLifecycle,
    LoggedPoisonQueue,
)
from tests.unit.conftest import RecordingListener, World, build_world, handoff_body

# What the KQL `parse` of the workbook takes apart (tests/infra/test_templates.py checks the queries).
LINE = re.compile(
    rf"^{LIFECYCLE_LOG_PREFIX} point=(?P<point>\S+) handoff=(?P<handoff>\S+) source=(?P<source>\S+) "
    r"target=(?P<target>\S+) latencyMs=(?P<latency>\d+)"
    r"(?: thread=(?P<thread>\S+))?(?: outcome=(?P<outcome>\S+))?(?: reason=(?P<reason>.+))?$"
)


@pytest.fixture
def logged() -> tuple[World, list[tuple[str, str, dict[str, Any]]]]:
    seen: list[tuple[str, str, dict[str, Any]]] = []
    return build_world(listener=LoggedLifecycle(RecordingListener(seen))), seen


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, dict[str, str | None]]]:
    found = []
    for record in caplog.records:
        if record.getMessage().startswith(LIFECYCLE_LOG_PREFIX):
            match = LINE.match(record.getMessage())
            assert match, record.getMessage()
            found.append((record.levelno, match.groupdict()))
    return found


def test_delivered_and_handed_back_are_logged_and_passed_on(logged, caplog):
    world, seen = logged
    caplog.set_level(logging.INFO, logger="handoff")
    handoff_id = world.hand_off()
    world.clock.advance(90)
    world.hand_back(handoff_id)
    world.run()

    lines = _lines(caplog)
    assert [(level, line["point"]) for level, line in lines] == [
        (logging.INFO, "delivered"),
        (logging.INFO, "handedBack"),
    ]
    for _, line in lines:
        assert (line["handoff"], line["source"], line["target"]) == (handoff_id, "ops", "checkout")
    assert int(lines[1][1]["latency"] or 0) >= 90_000
    assert lines[1][1]["outcome"] == "mitigated"
    # The delivered line says where B's work is: the thread the agent opened.
    assert lines[0][1]["thread"] == world.state(handoff_id).target_thread_id
    assert lines[1][1]["thread"] is None
    assert [(point, id_) for id_, point, _ in seen] == [("delivered", handoff_id), ("handedBack", handoff_id)]


def test_a_failed_handoff_is_a_warning_with_its_reason(logged, caplog):
    world, seen = logged
    caplog.set_level(logging.INFO, logger="handoff")
    view, _ = world.accept(handoff_body(world.source_thread()))
    world.agents.faults.fail_next(status=403, ops={"create_thread"})
    world.run()

    ((level, line),) = _lines(caplog)
    assert level == logging.WARNING
    assert (line["point"], line["handoff"], line["reason"]) == (
        "failed",
        view.id,
        "create_thread answered 403",
    )
    assert seen[-1][1] == "failed"


POISON_LINE = re.compile(
    rf"^{POISON_LOG_PREFIX} queue=(?P<queue>\S+) op=(?P<op>\S+) handoff=(?P<handoff>\S+) "
    r"reason=(?P<reason>.+)$"
)


def test_a_poison_line_stays_one_line_whatever_the_message_holds(caplog):
    parked: list[dict[str, Any]] = []

    class Queue:
        def send(self, message: dict[str, Any], delay_seconds: float = 0) -> None:
            raise AssertionError("not sent")

        def send_poison(self, message: dict[str, Any]) -> None:
            parked.append(message)

    caplog.set_level(logging.INFO, logger="handoff")
    message = {"op": "hand back\nnow", "reason": "line one\nline two " + "x" * 1000}
    LoggedPoisonQueue(Queue(), "shared-memory-writes-poison").send_poison(message)

    assert parked == [message]
    (record,) = caplog.records
    text = record.getMessage()
    assert "\n" not in text and len(text) < 450
    assert text.startswith(
        f"{POISON_LOG_PREFIX} queue=shared-memory-writes-poison op=handbacknow handoff=none "
    )
