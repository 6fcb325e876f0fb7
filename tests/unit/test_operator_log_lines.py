"""The WARNING lines operators watch for work that stopped: a delivery, a follow-up or a shared-memory write
that gave up, and a cross-link that could not be posted. One line each, ``key=value`` words with the
handoff id, and the reason last (the audit's reason: secret-free)."""

from __future__ import annotations

import logging

import pytest

from handoff.domain.log_lines import (
    CROSS_LINK_FAILED_LOG_PREFIX,
    GAVE_UP_LOG_PREFIX,
    cross_link_failed_line,
    gave_up_line,
)
from handoff.domain.shared_memory.writes import WriteError
from tests.unit.conftest import World, build_world, handoff_body
from tests.unit.memory.shared_memory import make_record
from tests.unit.memory.shared_memory_world import H1, fail_with, make_world


def _lines(caplog: pytest.LogCaptureFixture, prefix: str) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.getMessage().startswith(prefix)]


def _accepted(world: World, target: str = "checkout") -> str:
    view, _ = world.accept(handoff_body(world.source_thread(), target=target))
    return view.id


def test_the_lines_are_words_then_the_reason_on_one_line() -> None:
    line = gave_up_line("deliver", "id 1", "line one\nline two", attempts=3, backend=None)
    assert (
        line == "handoff gave up: work=deliver handoff=id1 attempts=3 backend=none reason=line one line two"
    )
    assert len(gave_up_line("deliver", "x", "r" * 5000)) < 400
    assert (
        cross_link_failed_line("h", "", "sweeper")
        == "handoff cross-link failed: handoff=h how=sweeper reason=unknown"
    )


def test_a_delivery_that_gives_up_says_so_once(world: World, caplog: pytest.LogCaptureFixture) -> None:
    handoff_id = _accepted(world)
    world.agents.faults.fail_next(status=403, ops={"create_thread"})
    with caplog.at_level(logging.INFO, logger="handoff"):
        world.run()
    assert _lines(caplog, GAVE_UP_LOG_PREFIX) == [
        (
            logging.WARNING,
            f"handoff gave up: work=deliver handoff={handoff_id} attempts=1 "
            "reason=create_thread answered 403",
        )
    ]


def test_a_delivery_that_retries_says_nothing_until_it_gives_up(caplog: pytest.LogCaptureFixture) -> None:
    world = build_world(max_delivery_attempts=3)
    handoff_id = _accepted(world)
    world.agents.faults.fail_next(times=5, status=503, ops={"create_thread"})
    with caplog.at_level(logging.INFO, logger="handoff"):
        world.run()
    reason = "create_thread answered 503 (gave up after 3 attempts)"
    assert _lines(caplog, GAVE_UP_LOG_PREFIX) == [
        (logging.WARNING, f"handoff gave up: work=deliver handoff={handoff_id} attempts=3 reason={reason}")
    ]


def test_a_cross_link_that_fails_is_a_warning_with_the_handoff_and_reason(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    handoff_id = _accepted(world)
    world.agents.faults.fail_next(status=404, ops={"post_message"})
    with caplog.at_level(logging.INFO, logger="handoff"):
        world.run()
    assert world.state(handoff_id).crosslink == "failed"
    assert _lines(caplog, CROSS_LINK_FAILED_LOG_PREFIX) == [
        (
            logging.WARNING,
            f"handoff cross-link failed: handoff={handoff_id} how=failed reason=post_message answered 404",
        )
    ]


def test_a_follow_up_that_gives_up_says_so(caplog: pytest.LogCaptureFixture) -> None:
    world = build_world(max_delivery_attempts=2)
    handoff_id = _accepted(world, "partner")
    world.step()
    world.remote.faults.fail_next(times=5, status=503, ops={"get_task"})
    with caplog.at_level(logging.INFO, logger="handoff"):
        world.run()
    reason = "get_task answered 503 (gave up after 2 attempts)"
    assert _lines(caplog, GAVE_UP_LOG_PREFIX) == [
        (logging.WARNING, f"handoff gave up: work=a2aPoll handoff={handoff_id} attempts=2 reason={reason}")
    ]


def test_a_shared_memory_write_that_gives_up_says_so(caplog: pytest.LogCaptureFixture) -> None:
    world = make_world()
    world.store.add(make_record(H1, handbacks=1))
    fail_with(world, WriteError("404 Not Found", transient=False))
    with caplog.at_level(logging.INFO, logger="handoff"):
        world.service.process(world.message())
    assert _lines(caplog, GAVE_UP_LOG_PREFIX) == [
        (
            logging.WARNING,
            f"handoff gave up: work=sharedMemory handoff={H1} backend=gh point=handedBack seq=1 "
            "reason=404 Not Found",
        )
    ]
