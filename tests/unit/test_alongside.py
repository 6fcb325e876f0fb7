"""``alongside``: two independent requests at once, both finished before the caller goes on."""

from __future__ import annotations

import contextvars
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from handoff.services.alongside import SIDE_THREADS, alongside

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


@pytest.fixture(params=["at once", "one after the other"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways ``alongside`` runs: on a side thread, or (no thread to be had, as when the process is
    shutting down) the caller doing both itself. The answers are the same either way."""
    if request.param == "one after the other":

        def no_threads(*_: object, **__: object) -> None:
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")

        monkeypatch.setattr(ThreadPoolExecutor, "submit", no_threads)
    return str(request.param)


def test_it_answers_with_main_s_result(mode: str) -> None:
    done: list[str] = []
    assert alongside(lambda: done.append("side"), lambda: 7) == 7
    assert done == ["side"]


def test_main_s_error_wins_and_the_side_still_finishes(mode: str) -> None:
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


def test_the_side_s_error_is_raised_when_main_succeeds(mode: str) -> None:
    done: list[str] = []

    def side() -> None:
        raise KeyError("side")

    with pytest.raises(KeyError, match="side"):
        alongside(side, lambda: done.append("main"))
    assert done == ["main"]


def test_the_side_runs_in_the_caller_s_context() -> None:
    # Storage counters and trace context are context variables: the side's requests are the caller's.
    seen: list[str] = []
    token = LABEL.set("create_handoff")
    try:
        alongside(lambda: seen.append(LABEL.get()), lambda: None)
    finally:
        LABEL.reset(token)
    assert seen == ["create_handoff"]


def test_with_every_side_thread_busy_the_caller_does_both_itself() -> None:
    # A burst of slow sides (say, a hand-back's many history rows) never makes another caller wait.
    release = threading.Event()
    busy = [
        threading.Thread(target=alongside, args=(release.wait, lambda: None)) for _ in range(SIDE_THREADS)
    ]
    ran_on: list[str] = []
    try:
        for thread in busy:
            thread.start()
        time.sleep(0.1)  # every side thread now waits on ``release``
        order: list[str] = []

        def side() -> None:
            ran_on.append(threading.current_thread().name)
            order.append("side")

        assert alongside(side, lambda: order.append("main") or "main's") == "main's"
        assert order == ["side", "main"] and ran_on == [threading.current_thread().name]
    finally:
        release.set()
        for thread in busy:
            thread.join()
    # Free again: the next side runs on a side thread.
    alongside(lambda: ran_on.append(threading.current_thread().name), lambda: None)
    assert ran_on[-1].startswith("alongside")
