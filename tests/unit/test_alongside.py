"""``alongside``: two independent requests at once, both finished before the caller goes on."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest

from handoff.services.alongside import alongside

LABEL: contextvars.ContextVar[str] = contextvars.ContextVar("label", default="none")


def test_the_two_run_at_the_same_time() -> None:
    side_started = threading.Event()

    def main() -> str:
        # Only a side that runs meanwhile can set the event this waits for.
        assert side_started.wait(timeout=5), "the side did not run while main ran"
        return "main's"

    assert alongside(side_started.set, main) == "main's"


def test_the_side_has_finished_when_it_returns() -> None:
    done: list[str] = []

    def side() -> None:
        time.sleep(0.05)
        done.append("side")

    alongside(side, lambda: None)
    assert done == ["side"]


def test_main_s_error_wins_and_the_side_still_finishes() -> None:
    done: list[str] = []

    def side() -> None:
        time.sleep(0.05)
        done.append("side")
        raise KeyError("side")

    def main() -> None:
        raise ValueError("main")

    with pytest.raises(ValueError, match="main"):
        alongside(side, main)
    assert done == ["side"]


def test_the_side_s_error_is_raised_when_main_succeeds() -> None:
    def side() -> None:
        raise KeyError("side")

    with pytest.raises(KeyError, match="side"):
        alongside(side, lambda: "fine")


def test_the_side_runs_in_the_caller_s_context() -> None:
    # Storage counters and trace context are context variables: the side's requests are the caller's.
    seen: list[str] = []
    token = LABEL.set("create_handoff")
    try:
        alongside(lambda: seen.append(LABEL.get()), lambda: None)
    finally:
        LABEL.reset(token)
    assert seen == ["create_handoff"]
