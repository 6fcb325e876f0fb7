"""The look-back of a retry: the gateway pages through a thread (or an agent's threads) newest first until
the broker's own item is found, the list ends, or the items are older than the first attempt allows,
whatever the thread's size; servers that ignore the order or ``$skip`` are handled without guessing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from handoff.adapters.sre_agent import RECENT, SEARCH_PAGES, SreAgentGateway, parse_time
from handoff.domain.messages import marker
from handoff.domain.records import AgentCallError
from handoff.domain.registry import AgentConfig
from handoff.settings import Settings

HID = "6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
BASE = "https://ops--1.abc.eastus.azuresre.ai"
AGENT = AgentConfig.model_validate(
    {"name": "ops", "resourceId": "/subscriptions/s/resourceGroups/r/providers/Microsoft.App/agents/ops",
     "endpoint": BASE}
)  # fmt: skip
T0 = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)


def stamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def crosslink(handoff_id: str = HID) -> str:
    return f"[Handoff {handoff_id}] Handed off\n\nSee the thread.\n\n{marker(handoff_id, 'crosslink')}"


class Thread:
    """A simulated thread's message list with the paging a server may or may not honour."""

    def __init__(self, texts: list[str], *, ignore_order: bool = False, ignore_skip: bool = False) -> None:
        # oldest first, one second apart
        self.messages = [
            {"id": f"m{n}", "timeStamp": stamp(T0 + timedelta(seconds=n)), "text": text}
            for n, text in enumerate(texts)
        ]
        self.ignore_order = ignore_order
        self.ignore_skip = ignore_skip
        self.requests: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        params = request.url.params
        items = list(self.messages)
        if not self.ignore_order and "desc" in (params.get("$orderby") or params.get("orderby") or ""):
            items.reverse()
        skip = 0 if self.ignore_skip else int(params.get("$skip") or params.get("skip") or 0)
        top = int(params.get("$top") or params.get("top") or len(items))
        return httpx.Response(200, json={"value": items[skip : skip + top]})


class Credential:
    def get_token(self, *scopes: str) -> Any:
        return type("Token", (), {"token": "t"})()


def gateway(thread: Thread) -> SreAgentGateway:
    return SreAgentGateway(
        Settings(), Credential(), httpx.Client(transport=httpx.MockTransport(thread.handler))
    )


def chatter(count: int) -> list[str]:
    return [
        f"[Handoff {f'0000000{n % 10}-0000-4000-8000-000000000000'}] other\n\nhandoff-ref: x/{n}"
        for n in range(count)
    ]


def test_a_marker_below_the_newest_fifty_is_found():
    # The broker's cross-link, then 120 newer messages of a busy thread (other handoffs' cross-links).
    thread = Thread([crosslink(), *chatter(120)])
    found = gateway(thread).find_message(
        AGENT, "t-1", marker(HID, "crosslink"), since=T0 - timedelta(minutes=5)
    )
    assert found is not None and found["id"] == "m0"
    assert len(thread.requests) == 3  # 121 messages, 50 a page
    second = thread.requests[1].url.params
    assert (second["$skip"], second["skip"], second["$top"], second["top"]) == ("50", "50", "50", "50")


def test_the_first_page_is_asked_as_before_and_a_short_thread_takes_one_request():
    thread = Thread([crosslink(), *chatter(3)])
    assert gateway(thread).has_message(AGENT, "t-1", marker(HID, "crosslink"))
    [only] = thread.requests
    assert "$skip" not in only.url.params and only.url.params["$orderby"] == "timeStamp desc"


def test_the_search_stops_at_messages_older_than_the_first_attempt():
    # 300 messages, none the broker's: the first attempt was after message 200 was written.
    thread = Thread(chatter(300))
    since = T0 + timedelta(seconds=200)
    assert gateway(thread).find_message(AGENT, "t-1", marker(HID, "crosslink"), since=since) is None
    assert len(thread.requests) == 3  # pages 299..250, 249..200, 199..150: older than `since`, stop


def test_a_server_that_ignores_the_order_is_read_to_the_end():
    # Oldest first whatever was asked: the newest items are on the last page, so no stopping early.
    thread = Thread([*chatter(130), crosslink()], ignore_order=True)
    found = gateway(thread).find_message(AGENT, "t-1", marker(HID, "crosslink"), since=T0 + timedelta(days=1))
    assert found is not None and found["id"] == "m130"
    assert len(thread.requests) == 3


def test_absent_means_the_list_ended():
    thread = Thread(chatter(120), ignore_order=True)
    assert not gateway(thread).has_message(
        AGENT, "t-1", marker(HID, "crosslink"), since=T0 + timedelta(days=1)
    )
    assert len(thread.requests) == 3


def test_a_server_that_ignores_skip_gives_no_guess():
    # The same newest page again and again, all of it newer than the first attempt: the broker cannot
    # tell whether its message is further down, so it neither posts again nor claims it is there.
    thread = Thread(chatter(120), ignore_skip=True)
    with pytest.raises(AgentCallError, match="ignores \\$skip") as info:
        gateway(thread).find_message(AGENT, "t-1", marker(HID, "crosslink"), since=T0)
    assert info.value.transient is False and len(thread.requests) == 2


def test_the_pages_are_capped():
    thread = Thread(chatter(RECENT * SEARCH_PAGES + 10))
    with pytest.raises(AgentCallError, match="not found in the newest") as info:
        gateway(thread).find_message(AGENT, "t-1", marker(HID, "crosslink"), since=None)
    assert info.value.transient is False and len(thread.requests) == SEARCH_PAGES


def test_find_thread_pages_through_the_agents_threads_newest_first():
    start = f"[Handoff {HID}] Exception burst\n\nbody\n\n{marker(HID, 'start')}"
    threads = [
        {"id": f"th-{n}", "title": "x", "createdTimestamp": stamp(T0 + timedelta(seconds=n)),
         "startMessage": {"text": start if n == 5 else f"thread {n}"}}
        for n in range(140)
    ]  # fmt: skip
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        skip = int(request.url.params.get("$skip") or 0)
        return httpx.Response(200, json={"value": list(reversed(threads))[skip : skip + RECENT]})

    agents = SreAgentGateway(Settings(), Credential(), httpx.Client(transport=httpx.MockTransport(handler)))
    assert agents.find_thread(AGENT, HID, since=T0 - timedelta(minutes=5)) == "th-5"
    assert [r.url.params.get("$skip") for r in requests] == [None, "50", "100"]
    requests.clear()
    # Created before the first attempt: the broker's thread cannot be among them.
    assert agents.find_thread(AGENT, HID, since=T0 + timedelta(seconds=100)) is None
    assert len(requests) == 1


def test_post_message_returns_the_new_messages_id():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "msg-42", "text": "x"})

    agents = SreAgentGateway(Settings(), Credential(), httpx.Client(transport=httpx.MockTransport(handler)))
    assert agents.post_message(AGENT, "t-1", "hello") == "msg-42"


def test_a_failing_token_endpoint_is_a_transient_failure_of_the_step():
    class Failing:
        def get_token(self, *scopes: str) -> Any:
            raise RuntimeError("token endpoint answered 500")

    agents = SreAgentGateway(
        Settings(), Failing(), httpx.Client(transport=httpx.MockTransport(lambda r: None))
    )
    with pytest.raises(AgentCallError, match=r"token request .* failed: RuntimeError") as info:
        agents.post_message(AGENT, "t-1", "hello")
    assert info.value.transient is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-21T02:10:05Z", datetime(2026, 11, 21, 2, 10, 5, tzinfo=UTC)),
        ("2026-11-21T02:10:05.1234567Z", datetime(2026, 11, 21, 2, 10, 5, 123456, tzinfo=UTC)),
        ("2026-11-21T03:10:05+01:00", datetime(2026, 11, 21, 2, 10, 5, tzinfo=UTC)),
        ("2026-11-21T02:10:05", datetime(2026, 11, 21, 2, 10, 5, tzinfo=UTC)),
        ("yesterday", None),
        (None, None),
    ],
)
def test_agent_timestamps_are_read_in_their_forms(text, expected):
    assert parse_time(text) == expected
